"""Channel events -> Kazoo-style webhook payloads (pure, no I/O).

``channel_payload(event, ...)`` turns the headers of one CHANNEL_CREATE,
CHANNEL_ANSWER, CHANNEL_BRIDGE or CHANNEL_HANGUP_COMPLETE event (a
``Mapping[str, str]`` from ``eslhook.source.parsing.parse_event``, plain or
json alike) into the dict a hook receives.  Every payload key lists its
sources in the tables below (the orders are mod_kazoo's field definitions,
then eslhook's fallback), first present wins; an empty value counts as
absent, and a key whose sources are all absent is left out of the payload.
The keys Kazoo integrations read beyond these are in ``mapping_keys.py``.

``from`` and ``to`` are the leg's own and stable over its webhooks: on an
outbound leg FreeSWITCH sets ``sip_from_uri`` / ``sip_to_uri`` only once
answered (a gateway's From user is its username), and ``presence_id`` there
names the callee, so that leg's ``from`` is its caller's number at
``sip_from_host`` (port cut: a gateway leg's changes) and its ``to`` its
request URI, all set from CHANNEL_CREATE on; URI parameters (``;line=...``)
are cut.  The caller's number is one FreeSWITCH does not rewrite: the
origination / effective variables, else on a bridge's B-leg (it has
``Other-Type: originator`` from its first event) ``Caller-Caller-ID-Number``,
set once from the A-leg, else (an originated leg, whose Caller-Caller-ID-*
a CALL_UPDATE rewrites to the far end) ``Caller-Orig-Caller-ID-Number``.

This runs for every event (thousands per second), so each header is read
once through ``event.get`` and the whole event is only scanned when
custom channel variables were asked for.

What the real captures taught (tests/captures/README.md): FreeSWITCH only
sets ``sip_term_status`` / ``proto_specific_hangup_cause`` when it
*received* the final SIP status or BYE.  When it refused the INVITE or sent
the BYE itself, the SIP status it sent is derived here from the Q.850 cause
with mod_sofia's own ``hangup_cause_to_sip`` table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from .accounts import AccountDirectory
from .channelvars import VARIABLE_PREFIX
from .config import PayloadConfig
from .events import HOOK_EVENT_BY_EVENT_NAME  # the dispatch, from the registry
from .mapping_keys import (DEFAULT_SETTINGS, add_custom_variables, add_kazoo_keys,
                           header_getter, is_true, kazoo_variables)
from .payload import BridgeKey, CallerKey, ChannelPayload, SecondsKey

logger = logging.getLogger(__name__)

# An event's header lookup (``event.get``), bound once per event.
HeaderGetter = Callable[[str], str | None]

# Seconds from 0000-01-01 (proleptic gregorian, Erlang's calendar) to 1970.
GREGORIAN_UNIX_OFFSET_SECONDS = 62_167_219_200

# mod_sofia's hangup_cause_to_sip() (mod_sofia.c): the final status sofia
# sends for a Q.850 cause when FreeSWITCH refuses an INVITE.  Reproduced as
# data; causes not listed get DEFAULT_REFUSE_SIP_STATUS, as in the C switch.
SIP_STATUS_BY_HANGUP_CAUSE = {
    "UNALLOCATED_NUMBER": 404,
    "NO_ROUTE_TRANSIT_NET": 404,
    "NO_ROUTE_DESTINATION": 404,
    "USER_BUSY": 486,
    "NO_USER_RESPONSE": 408,
    "NO_ANSWER": 480,
    "SUBSCRIBER_ABSENT": 480,
    "CALL_REJECTED": 603,
    "NUMBER_CHANGED": 410,
    "REDIRECTION_TO_NEW_DESTINATION": 410,
    "DESTINATION_OUT_OF_ORDER": 502,
    "INVALID_PROFILE": 502,
    "INVALID_NUMBER_FORMAT": 484,
    "INVALID_URL": 484,
    "INVALID_GATEWAY": 484,
    "FACILITY_REJECTED": 501,
    "NORMAL_UNSPECIFIED": 480,
    "REQUESTED_CHAN_UNAVAIL": 503,
    "NORMAL_CIRCUIT_CONGESTION": 503,
    "NETWORK_OUT_OF_ORDER": 503,
    "NORMAL_TEMPORARY_FAILURE": 503,
    "SWITCH_CONGESTION": 503,
    "GATEWAY_DOWN": 503,
    "OUTGOING_CALL_BARRED": 403,
    "INCOMING_CALL_BARRED": 403,
    "BEARERCAPABILITY_NOTAUTH": 403,
    "BEARERCAPABILITY_NOTAVAIL": 503,
    "BEARERCAPABILITY_NOTIMPL": 488,
    "INCOMPATIBLE_DESTINATION": 488,
    "FACILITY_NOT_IMPLEMENTED": 501,
    "SERVICE_NOT_IMPLEMENTED": 501,
    "RECOVERY_ON_TIMER_EXPIRE": 504,
    "ORIGINATOR_CANCEL": 487,
    "EXCHANGE_ROUTING_ERROR": 483,
    # mod_sofia's own additions, beyond RFC 4497:
    "BUSY_EVERYWHERE": 600,
    "DECLINE": 603,
    "DOES_NOT_EXIST_ANYWHERE": 604,
    "NOT_ACCEPTABLE": 606,
    "UNWANTED": 607,
}
DEFAULT_REFUSE_SIP_STATUS = 480

# Payload key -> event headers to try, first non-empty wins.
REQUEST_SOURCES = ("variable_sip_req_uri", "variable_sip_invite_req_uri",
                   "variable_sip_loopback_req_uri", "variable_sip_to_uri",
                   "variable_sip_invite_to_uri",
                   "Caller-Destination-Number")     # eslhook's: a leg without SIP
TO_SOURCES = ("variable_sip_to_uri", "variable_sip_invite_to_uri")   # then request's
FROM_SOURCES = ("variable_sip_from_uri", "variable_presence_id",
                "variable_sip_invite_from_uri", "variable_sip_loopback_from_uri")
# An outbound leg's (module docstring): "<number>@<sip_from_host>", else these.
OUTBOUND_FROM_NUMBER_SOURCES = ("variable_origination_caller_id_number",
                                "variable_effective_caller_id_number")
B_LEG_FROM_NUMBER_SOURCES = ("Caller-Caller-ID-Number", "Caller-Orig-Caller-ID-Number")
ORIGINATED_FROM_NUMBER_SOURCES = ("Caller-Orig-Caller-ID-Number", "Caller-Caller-ID-Number")
OUTBOUND_FROM_SOURCES = ("variable_sip_invite_from_uri", "variable_sip_loopback_from_uri")
FIRST_PRESENT_SOURCES: tuple[tuple[CallerKey, tuple[str, ...]], ...] = (
    ("call_id", ("Unique-ID",)),
    ("sip_call_id", ("variable_sip_call_id",)),
    ("other_leg_call_id", ("Other-Leg-Unique-ID", "variable_bridge_uuid",
                           "variable_originating_leg_uuid")),
    ("caller_id_name", ("variable_origination_caller_id_name",
                        "variable_effective_caller_id_name",
                        "Caller-Caller-ID-Name")),
    ("caller_id_number", ("variable_origination_caller_id_number",
                          "variable_effective_caller_id_number",
                          "Caller-Caller-ID-Number")),
    ("callee_id_name", ("variable_origination_callee_id_name",
                        "variable_effective_callee_id_name",
                        "Caller-Callee-ID-Name", "Other-Leg-Caller-ID-Name")),
    ("callee_id_number", ("variable_origination_callee_id_number",
                          "variable_effective_callee_id_number",
                          "Caller-Callee-ID-Number", "Other-Leg-Caller-ID-Number")),
)

# channel_bridge only (Kazoo's webhooks_channel_util): payload key -> sources.
BRIDGE_SOURCES: tuple[tuple[BridgeKey, tuple[str, ...]], ...] = (
    ("other_leg_destination_number", ("Other-Leg-Destination-Number",)),
    ("original_number", ("variable_ecallmgr_Original-Number",
                         "Caller-RDNIS", "Caller-Destination-Number")),  # then eslhook's
)

# channel_destroy only: hangup_cause's sources (mod_kazoo's hangup-cause.xml:
# while ``bridge`` runs, the bridge's cause comes before the leg's own).
HANGUP_CAUSE_SOURCES_IN_BRIDGE = ("variable_originate_failed_cause",
                                  "variable_bridge_hangup_cause",
                                  "variable_hangup_cause", "Hangup-Cause")
HANGUP_CAUSE_SOURCES = ("variable_originate_failed_cause", "variable_hangup_cause",
                        "variable_bridge_hangup_cause", "Hangup-Cause")
# payload key -> integer-valued channel variable.
DESTROY_SECONDS_SOURCES: tuple[tuple[SecondsKey, str], ...] = (
    ("duration_seconds", "variable_duration"),
    ("ringing_seconds", "variable_progresssec"),
)
# billing_seconds: ceil(billmsec / 1000) as mod_kazoo's call-duration.xml;
# billsec (FreeSWITCH's floor) only when billmsec is missing.
BILLING_MILLISECONDS = "variable_billmsec"
BILLING_SECONDS = "variable_billsec"

ECALLMGR_ACCOUNT_VARIABLE = "variable_ecallmgr_Account-ID"
NO_VARIABLES: tuple[dict[str, str], dict[str, str]] = ({}, {})   # never written to
REALM_SOURCES = ("variable_domain_name", "variable_sip_req_host",
                 "variable_sip_to_host", "variable_sip_from_host")


def _account_for_host(accounts: AccountDirectory, host: str | None) -> str | None:
    """The account owning a SIP host; outbound legs add a port (``h:5080``)."""
    if not host:
        return None
    account_id = accounts.account_for_realm(host)
    if account_id is None and ":" in host:
        name, _, port = host.rpartition(":")
        if port.isdigit() and name:
            account_id = accounts.account_for_realm(name.strip("[]"))
    return account_id


def resolve_account(event: Mapping[str, str], accounts: AccountDirectory,
                    ecallmgr: Mapping[str, str] | None = None,
                    get: HeaderGetter | None = None) -> str | None:
    """The account a channel belongs to, or None when unassigned.

    First that applies:
    1. ``variable_<accounts.account_variable>``, only if it names a
       configured account;
    2. ``variable_ecallmgr_Account-ID`` (Kazoo's own), same rule;
    3. the first of domain_name, sip_req_host, sip_to_host, sip_from_host
       that is a realm of an account (a ``:port`` suffix is ignored);
    4. ``accounts.default_account_id``.

    A variable naming an unknown account is skipped rather than trusted:
    hooks are looked up by account id, so an id we do not know could only
    reach nobody (or, worse, be a typo that hides the call from its real
    owner); the realm and the default still get their chance.  ``get``:
    the caller's lookup of the event's headers (``header_getter``), if any.
    """
    get = get or event.get
    for account_id in (get(VARIABLE_PREFIX + accounts.account_variable),
                       # ``ecallmgr``: the event's ecallmgr_* variables, already found
                       get(ECALLMGR_ACCOUNT_VARIABLE) if ecallmgr is None
                       else ecallmgr.get("Account-ID")):
        if account_id and account_id in accounts:
            return account_id
    for name in REALM_SOURCES:
        account_id = _account_for_host(accounts, get(name))
        if account_id is not None:
            return account_id
    return accounts.default_account_id


def _int_header(get: HeaderGetter, name: str) -> int | None:
    """A non-negative integer header; anything else is left out, not fatal."""
    value = get(name)
    if not value:
        return None
    # int() would take " 1", "-1", "1_0", and raise past 4300 digits; a
    # uint64 has at most 20.
    if len(value) <= 20 and value.isascii() and value.isdigit():
        return int(value)
    logger.debug("ignoring non-integer %s=%r", name, value[:40])
    return None


def _gregorian_seconds(get: HeaderGetter) -> int | None:
    micros = _int_header(get, "Event-Date-Timestamp")
    if micros is None:
        return None
    # rounded up, as mod_kazoo's timestamp.xml
    return -(-micros // 1_000_000) + GREGORIAN_UNIX_OFFSET_SECONDS


def _was_answered(get: HeaderGetter) -> bool:
    answered = get("variable_answer_epoch") or get("Caller-Channel-Answered-Time")
    return bool(answered) and answered != "0"


def _hangup_code(get: HeaderGetter, hangup_cause: str | None, channel_name: str) -> str | None:
    """The SIP status that ended the leg (``sip:486``), or None if unknown.

    What FreeSWITCH received comes first.  On a SIP leg without it,
    FreeSWITCH sent the status itself: 200 for an answered call ended
    NORMAL_CLEARING (a BYE), else what mod_sofia sends for the cause.
    """
    code = (get("variable_proto_specific_hangup_cause")
            or get("variable_last_bridge_proto_specific_hangup_cause"))
    if code:
        return code
    status = get("variable_sip_term_status")
    if status:
        return "sip:" + status
    if not hangup_cause or not channel_name.startswith("sofia/"):
        return None
    if hangup_cause == "NORMAL_CLEARING" and _was_answered(get):
        return "sip:200"
    return "sip:%d" % SIP_STATUS_BY_HANGUP_CAUSE.get(hangup_cause, DEFAULT_REFUSE_SIP_STATUS)


def _first(get: HeaderGetter, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = get(name)
        if value:
            return value
    return None


def _add_destroy_fields(payload: ChannelPayload, get: HeaderGetter, channel_name: str) -> None:
    in_bridge = get("variable_current_application") == "bridge"
    cause = _first(get, HANGUP_CAUSE_SOURCES_IN_BRIDGE if in_bridge else HANGUP_CAUSE_SOURCES)
    if cause:
        payload["hangup_cause"] = cause
    code = _hangup_code(get, cause, channel_name)
    if code:
        payload["hangup_code"] = code
    for key, name in DESTROY_SECONDS_SOURCES:
        seconds = _int_header(get, name)
        if seconds is not None:
            payload[key] = seconds
    millis = _int_header(get, BILLING_MILLISECONDS)
    billing = -(-millis // 1000) if millis is not None else _int_header(get, BILLING_SECONDS)
    if billing is not None:
        payload["billing_seconds"] = billing


def _is_internal_leg(get: HeaderGetter, channel_name: str) -> bool:
    return is_true(get("variable_is_loopback")) or channel_name.startswith("loopback/")


def _without_parameters(uri: str | None) -> str | None:
    """``1003@h:5070;line=x`` -> ``1003@h:5070`` (a ``sip:`` scheme is cut too)."""
    if not uri:
        return None
    uri = uri.split(";", 1)[0].strip("<>")
    return uri[4:] if uri.startswith("sip:") else uri


def _without_port(host: str | None) -> str | None:
    if host and host.rpartition(":")[2].isdigit() and (host.count(":") == 1 or "]:" in host):
        return host.rpartition(":")[0]
    return host


def _outbound_caller_number(get: HeaderGetter) -> str | None:
    return (_first(get, OUTBOUND_FROM_NUMBER_SOURCES)
            or _first(get, B_LEG_FROM_NUMBER_SOURCES if get("Other-Type") == "originator"
                      else ORIGINATED_FROM_NUMBER_SOURCES))


def _add_from_to(payload: ChannelPayload, get: HeaderGetter, request: str | None) -> None:
    """The leg's ``from`` and ``to`` (module docstring: outbound legs)."""
    if payload.get("call_direction") == "outbound":   # Call-Direction, read once
        number, host = _outbound_caller_number(get), _without_port(get("variable_sip_from_host"))
        from_uri = ("%s@%s" % (number, host) if number and host
                    else _first(get, OUTBOUND_FROM_SOURCES))
        to_uri = request
    else:
        from_uri = _first(get, FROM_SOURCES)
        to_uri = _first(get, TO_SOURCES) or request
    to_uri, from_uri = _without_parameters(to_uri), _without_parameters(from_uri)
    if to_uri:
        payload["to"] = to_uri
    if from_uri:
        payload["from"] = from_uri


def channel_payload(event: Mapping[str, str], *, switch: str,
                    accounts: AccountDirectory,
                    channel_variables: tuple[str, ...] = (),
                    settings: PayloadConfig = DEFAULT_SETTINGS) -> ChannelPayload | None:
    """The webhook payload for a channel event, None if not a mapped event.

    ``channel_variables``: globs for ``custom_channel_vars`` (when empty,
    ``settings.channel_variables``); ``settings``: the config's ``payload``.
    """
    get = header_getter(event)
    hook_event = HOOK_EVENT_BY_EVENT_NAME.get(get("Event-Name") or "")
    if hook_event is None:
        return None
    payload: ChannelPayload = {"hook_event": hook_event}
    direction = get("Call-Direction")
    if direction:
        payload["call_direction"] = direction
    timestamp = _gregorian_seconds(get)
    if timestamp is not None:
        payload["timestamp"] = timestamp
    # first: a plain event's picker then learns the two prefixes before any
    # single ecallmgr_ name (resolve_account's), which they already cover
    if settings.kazoo_variables:
        applications, ecallmgr = kazoo_variables(event, get)
        account_id = resolve_account(event, accounts, ecallmgr, get)
    else:
        applications, ecallmgr = NO_VARIABLES
        account_id = resolve_account(event, accounts, get=get)
    if account_id is not None:
        payload["account_id"] = account_id
    request = _first(get, REQUEST_SOURCES)
    if request:
        payload["request"] = request
    _add_from_to(payload, get, request)
    for key, names in FIRST_PRESENT_SOURCES:
        for name in names:      # inline: a call per key was ~2 % of an event
            value = get(name)
            if value:
                payload[key] = value
                break
    channel_name = get("Channel-Name") or ""
    payload["is_internal_leg"] = _is_internal_leg(get, channel_name)
    add_kazoo_keys(payload, get, ecallmgr, settings, accounts)
    if hook_event == "channel_destroy":
        _add_destroy_fields(payload, get, channel_name)
    elif hook_event == "channel_bridge":
        for bridge_key, names in BRIDGE_SOURCES:
            value = _first(get, names)
            if value:
                payload[bridge_key] = value
    payload["switch"] = switch
    core_uuid, sequence = get("Core-UUID"), get("Event-Sequence")
    if core_uuid and sequence:
        payload["event_id"] = "%s-%s" % (core_uuid, sequence)
    add_custom_variables(payload, event, applications, ecallmgr,
                         channel_variables or settings.channel_variables)
    return payload
