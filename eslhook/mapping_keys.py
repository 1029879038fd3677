"""The payload keys Kazoo integrations read beyond the call's identity (pure, no I/O).

``mapping.channel_payload`` builds a payload's core (who, where, when, how it
ended); the keys here come each from named FreeSWITCH channel variables, most of
them the ones Kazoo's own ecallmgr sets (``ecallmgr_*``), with what FreeSWITCH
itself says when no ecallmgr ran:

- ``custom_application_vars``: the ``cav_*`` variables, prefix stripped
  (mod_kazoo's ``Custom-Application-Vars.xml``).
- ``custom_channel_vars``: the ``ecallmgr_*`` variables, prefix stripped (as
  Kazoo's Custom-Channel-Vars), plus the variables matching the configured
  globs under their own names.
- ``authorizing_id`` / ``authorizing_type``: ``ecallmgr_Authorizing-ID`` /
  ``-Type`` when set; else a digest-authenticated leg is ``device``
  ``<sip_auth_username>@<sip_auth_realm>``; else a gateway leg
  (``sip_gateway_name``) is ``resource`` with the gateway's name.
- ``owner_id``: the directory variable ``owner_id``, else ``ecallmgr_Owner-ID``.
- ``local_resource_id`` / ``local_resource_used``, on legs through a resource
  only (``sip_gateway_name``, else ``ecallmgr_Resource-ID``): the resource, and
  false when ``ecallmgr_Global-Resource`` says it was a global one.
- ``call_forwarded`` (always): a Diversion or History-Info header came in.
- ``inception``: ``ecallmgr_Inception``.
- ``emergency_resource_used`` (always): the configured variable is true, or
  the destination number matches the configured pattern.
- ``reseller_id`` (the account tree's) and ``cluster_id`` (config).

Kept apart from ``mapping.py`` so each module fits its job: this one grows
with every key Kazoo adds, that one holds the per-event dispatch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping

from .accounts import AccountDirectory
from .channelvars import VARIABLE_PREFIX, channel_variable_prefixes, find_channel_variables
from .config import PayloadConfig
from .payload import ChannelPayload

Get = Callable[[str], "str | None"]

TRUE_FLAGS = frozenset(("1", "true", "yes", "on"))
CAV_PREFIX = "cav_"
ECALLMGR_PREFIX = "ecallmgr_"
KAZOO_NAME_PREFIXES = (VARIABLE_PREFIX + CAV_PREFIX, VARIABLE_PREFIX + ECALLMGR_PREFIX)
FORWARDING_HEADERS = ("variable_sip_h_Diversion", "variable_sip_h_History-Info")
DEFAULT_SETTINGS = PayloadConfig()


def header_getter(event: Mapping[str, str]) -> Get:
    """``event.get``, or the event's own faster one-argument lookup when it
    has one (a picked plain event: ``PickedPlainEvent.lookup``, made anew
    per call: take one per event and pass it on)."""
    lookup = getattr(event, "lookup", None)
    return event.get if lookup is None else lookup()


def is_true(value: str | None) -> bool:
    return bool(value) and value.lower() in TRUE_FLAGS   # type: ignore[union-attr]


def matching_variables(event: Mapping[str, str], globs: tuple[str, ...]) -> dict[str, str]:
    """Channel variables (name without ``variable_``) matching any glob, non-empty."""
    if not globs:
        return {}
    # A picked plain event names the candidates without parsing its whole
    # block (parsing.PickedPlainEvent); any other mapping is scanned whole.
    names_with = getattr(event, "names_with", None)
    names = event if names_with is None else names_with(channel_variable_prefixes(globs))
    get = event.get
    found = {}
    for name in find_channel_variables(names, globs):
        value = get(name)
        if value:
            found[name[len(VARIABLE_PREFIX):]] = value
    return found


def kazoo_variables(event: Mapping[str, str], get: Get | None = None,
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """(``cav_*``, ``ecallmgr_*``) variables, each without its prefix, non-empty.

    Every event is scanned for them, so this is the cheap form of
    ``matching_variables`` for two literal prefixes (no glob to confirm): one
    ``str.find`` per name over the joined names, in C.  The ``ecallmgr_*`` keys
    of ``add_kazoo_keys`` are read from the result, not header by header.
    ``get``: the caller's lookup of the event's headers, if any.
    """
    names_with = getattr(event, "names_with", None)
    names = event if names_with is None else names_with(KAZOO_NAME_PREFIXES)
    text = "\n%s\n" % "\n".join(names)
    get = get or event.get
    applications: dict[str, str] = {}
    ecallmgr: dict[str, str] = {}
    for needle, found in (("\n" + KAZOO_NAME_PREFIXES[0], applications),
                          ("\n" + KAZOO_NAME_PREFIXES[1], ecallmgr)):
        at = text.find(needle)
        while at >= 0:
            end = text.find("\n", at + 1)
            value = get(text[at + 1:end])
            if value:
                found[text[at + len(needle):end]] = value
            at = text.find(needle, end)
    return applications, ecallmgr


def add_custom_variables(payload: ChannelPayload, event: Mapping[str, str], applications: dict[str, str],
                         ecallmgr: dict[str, str], globs: tuple[str, ...]) -> None:
    """``custom_application_vars`` and ``custom_channel_vars``, when any."""
    if applications:
        payload["custom_application_vars"] = applications
    channels = dict(ecallmgr)
    channels.update(matching_variables(event, globs))
    if channels:
        payload["custom_channel_vars"] = channels


def add_kazoo_keys(payload: ChannelPayload, get: Get, ecallmgr: dict[str, str],
                   settings: PayloadConfig, accounts: AccountDirectory) -> None:
    """Every key of the module docstring but the custom variables."""
    kind, ident = ecallmgr.get("Authorizing-Type"), ecallmgr.get("Authorizing-ID")
    gateway = get("variable_sip_gateway_name")
    if not (kind and ident):
        # what FreeSWITCH itself tells: a digest device, else a gateway
        user, realm = get("variable_sip_auth_username"), get("variable_sip_auth_realm")
        if user and realm:
            kind, ident = kind or "device", ident or "%s@%s" % (user, realm)
        elif gateway:
            kind, ident = kind or "resource", ident or gateway
    if ident:
        payload["authorizing_id"] = ident
    if kind:
        payload["authorizing_type"] = kind
    owner = get("variable_owner_id") or ecallmgr.get("Owner-ID")
    if owner:
        payload["owner_id"] = owner
    resource = gateway or ecallmgr.get("Resource-ID")
    if resource:
        is_global = is_true(ecallmgr.get("Global-Resource"))
        if not is_global:
            payload["local_resource_id"] = resource
        payload["local_resource_used"] = not is_global
    payload["call_forwarded"] = bool(get(FORWARDING_HEADERS[0]) or get(FORWARDING_HEADERS[1]))
    inception = ecallmgr.get("Inception")
    if inception:
        payload["inception"] = inception
    payload["emergency_resource_used"] = _is_emergency(get, ecallmgr, settings)
    account_id = payload.get("account_id")
    reseller = accounts.reseller_of(account_id) if account_id else None
    if reseller:
        payload["reseller_id"] = reseller
    if settings.cluster_id:
        payload["cluster_id"] = settings.cluster_id


def _is_emergency(get: Get, ecallmgr: dict[str, str], settings: PayloadConfig) -> bool:
    name = settings.emergency_variable
    flag = (ecallmgr.get(name[len(ECALLMGR_PREFIX):]) if name.startswith(ECALLMGR_PREFIX)
            else get(VARIABLE_PREFIX + name))
    if is_true(flag):
        return True
    if settings.emergency_numbers is None:
        return False
    number = get("Caller-Destination-Number")
    return number is not None and _pattern(settings.emergency_numbers)(number) is not None


@functools.lru_cache(maxsize=16)
def _pattern(pattern: str) -> Callable[[str], "re.Match[str] | None"]:
    return re.compile(pattern).fullmatch
