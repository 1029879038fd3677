"""Channel events -> Kazoo-style webhook payloads (pure, no I/O).

``channel_payload(event, ...)`` turns the headers of one CHANNEL_CREATE,
CHANNEL_ANSWER or CHANNEL_HANGUP_COMPLETE event (a ``Mapping[str, str]``
from ``eslhook.source.parsing.parse_event``, plain or json alike) into the
dict a hook receives.  Every payload key lists its sources in the tables
below, first present wins; an empty value counts as absent, and a key
whose sources are all absent is left out of the payload.

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
from .channelvars import VARIABLE_PREFIX, channel_variable_prefixes, find_channel_variables
from .events import HOOK_EVENT_BY_EVENT_NAME  # the dispatch, from the registry
from .payload import CallerKey, ChannelPayload, SecondsKey

logger = logging.getLogger(__name__)

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

# An event's header lookup (``event.get``), bound once per event.
HeaderGetter = Callable[[str], str | None]

# Payload key -> event headers to try, first non-empty wins.
FIRST_PRESENT_SOURCES: tuple[tuple[CallerKey, tuple[str, ...]], ...] = (
    ("request", ("variable_sip_req_uri", "variable_sip_loopback_req_uri",
                 "Caller-Destination-Number")),
    ("to", ("variable_sip_to_uri", "variable_sip_invite_to_uri")),  # then request
    ("from", ("variable_sip_from_uri", "variable_presence_id",
              "variable_sip_invite_from_uri")),
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
                        "Caller-Callee-ID-Name")),
    ("callee_id_number", ("variable_origination_callee_id_number",
                          "variable_effective_callee_id_number",
                          "Caller-Callee-ID-Number")),
)

# channel_destroy only: payload key -> integer-valued channel variable.
DESTROY_SECONDS_SOURCES: tuple[tuple[SecondsKey, str], ...] = (
    ("duration_seconds", "variable_duration"),
    ("billing_seconds", "variable_billsec"),
    ("ringing_seconds", "variable_progresssec"),
)

ECALLMGR_ACCOUNT_VARIABLE = "variable_ecallmgr_Account-ID"
REALM_SOURCES = ("variable_domain_name", "variable_sip_req_host",
                 "variable_sip_to_host", "variable_sip_from_host")
TRUE_FLAGS = frozenset(("1", "true"))


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


def resolve_account(event: Mapping[str, str], accounts: AccountDirectory) -> str | None:
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
    owner); the realm and the default still get their chance.
    """
    get = event.get
    for name in (VARIABLE_PREFIX + accounts.account_variable, ECALLMGR_ACCOUNT_VARIABLE):
        account_id = get(name)
        if account_id and account_id in accounts:
            return account_id
    for name in REALM_SOURCES:
        account_id = _account_for_host(accounts, get(name))
        if account_id is not None:
            return account_id
    return accounts.default_account_id


def custom_channel_variables(event: Mapping[str, str],
                             globs: tuple[str, ...]) -> dict[str, str]:
    """Channel variables (name without ``variable_``) matching any glob."""
    if not globs:
        return {}
    globs = tuple(globs)
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
    return micros // 1_000_000 + GREGORIAN_UNIX_OFFSET_SECONDS


def _was_answered(get: HeaderGetter) -> bool:
    answered = get("variable_answer_epoch") or get("Caller-Channel-Answered-Time")
    return bool(answered) and answered != "0"


def _hangup_code(get: HeaderGetter, hangup_cause: str | None,
                 channel_name: str) -> str | None:
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


def _add_destroy_fields(payload: ChannelPayload, get: HeaderGetter, channel_name: str) -> None:
    cause = get("variable_hangup_cause") or get("Hangup-Cause")
    if cause:
        payload["hangup_cause"] = cause
    code = _hangup_code(get, cause, channel_name)
    if code:
        payload["hangup_code"] = code
    for key, name in DESTROY_SECONDS_SOURCES:
        seconds = _int_header(get, name)
        if seconds is not None:
            payload[key] = seconds


def _is_internal_leg(get: HeaderGetter, channel_name: str) -> bool:
    loopback_flag = get("variable_is_loopback")
    if loopback_flag and loopback_flag.lower() in TRUE_FLAGS:
        return True
    return channel_name.startswith("loopback/")


def channel_payload(event: Mapping[str, str], *, switch: str,
                    accounts: AccountDirectory,
                    channel_variables: tuple[str, ...] = ()) -> ChannelPayload | None:
    """The webhook payload for a channel event, None if not a mapped event."""
    get = event.get
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
    account_id = resolve_account(event, accounts)
    if account_id is not None:
        payload["account_id"] = account_id
    for key, names in FIRST_PRESENT_SOURCES:
        for name in names:      # inline: a call per key was ~2 % of an event
            value = get(name)
            if value:
                payload[key] = value
                break
    if "to" not in payload and "request" in payload:
        payload["to"] = payload["request"]
    channel_name = get("Channel-Name") or ""
    payload["is_internal_leg"] = _is_internal_leg(get, channel_name)
    if hook_event == "channel_destroy":
        _add_destroy_fields(payload, get, channel_name)
    payload["switch"] = switch
    core_uuid, sequence = get("Core-UUID"), get("Event-Sequence")
    if core_uuid and sequence:
        payload["event_id"] = "%s-%s" % (core_uuid, sequence)
    if channel_variables:
        custom = custom_channel_variables(event, channel_variables)
        if custom:
            payload["custom_channel_vars"] = custom
    return payload
