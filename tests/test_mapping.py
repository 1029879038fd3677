"""Payload mapping, field by field, against the real single-call captures.

Expected values were read by hand from tests/captures/json-single-calls.esl
(see tests/captures/README.md for what each call did).  Both capture files
hold the same events in the same order, recorded at the same time.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig
from eslhook.mapping import (
    HOOK_EVENT_BY_EVENT_NAME,
    SIP_STATUS_BY_HANGUP_CAUSE,
    channel_payload,
    resolve_account,
)
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event

CAPTURES = Path(__file__).resolve().parent / "captures"
SWITCH = "fs-test"
CORE_UUID = "f8136d9c-bd7c-4a9e-b280-42f4dd7310ac"
KAZOO_ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"   # ecallmgr_Account-ID of 1005

# Inbound SIP leg Unique-IDs of the sipp calls (README table).
FS_BYE = "b3ad3a4c-1a85-4543-aab9-4a2e60dd8e05"        # 1000, FreeSWITCH sends BYE
CALLER_BYE = "7c72c5c5-88d0-4d18-b23c-e5622784bfa7"    # 1000, caller sends BYE
BUSY = "c5b885aa-4331-4b15-9c39-84ce1a3d4b2c"          # 1001, 486
NO_ANSWER = "2f96102e-e34a-4c84-b413-1e9c69205bd2"     # 1002, 180 then 480
CANCEL = "655cfab0-6c01-44d6-83b9-d03d74ab45a2"        # 1002, caller CANCELs
TO_LOOPBACK = "cfca46c9-87c3-4a16-adde-c01e9abd390c"   # 1003, bridged to loopback
LOOPBACK_A_OF_1003 = "84f6b423-99b1-4e67-8ff0-2769d67252be"
NOT_FOUND = "49eef2c8-ba91-4331-b942-d4e761e790d2"     # 1004, 404
CUSTOM_VARS = "0d2ca66c-0caf-4300-a774-4602bb2132dc"   # 1005
TO_SIP = "e85b86c6-379c-4f32-841e-35bf39b5046a"        # 1006, bridged to SIP
SIP_OUTBOUND_OF_1006 = "e3a3f5dc-7868-4d12-8ebe-64a6aa70b6b2"
# ESL-originated: loopback/1001 (USER_BUSY) B leg, and sofia/1001 (486) legs.
LOOPBACK_BUSY_B = "39b776ce-dbf6-4cce-825b-42b0427725ca"
ESL_SIP_OUTBOUND_BUSY = "bf5fe469-d965-40d6-a6ff-d56bc3ee458d"
ESL_SIP_INBOUND_BUSY = "f723ae87-fc2c-4e43-84a6-524c4860044a"


def load_events(name: str) -> list:
    data = (CAPTURES / name).read_bytes()
    return [e for e in (parse_event(f) for f in split_frames(data)) if e is not None]


@pytest.fixture(scope="module")
def plain_events():
    return load_events("plain-single-calls.esl")


@pytest.fixture(scope="module")
def json_events():
    return load_events("json-single-calls.esl")


@pytest.fixture(scope="module")
def by_leg(json_events):
    """(Unique-ID, Event-Name) -> json event headers."""
    return {(e.get("Unique-ID"), e["Event-Name"]): e for e in json_events
            if e["Event-Name"] in HOOK_EVENT_BY_EVENT_NAME}


NO_ACCOUNTS = AccountDirectory()


def payload(event, accounts=NO_ACCOUNTS, channel_variables=()):
    return channel_payload(event, switch=SWITCH, accounts=accounts,
                           channel_variables=channel_variables)


def destroy(by_leg, unique_id, **kwargs):
    return payload(by_leg[(unique_id, "CHANNEL_HANGUP_COMPLETE")], **kwargs)


# --- whole payloads ---------------------------------------------------------

def test_busy_sip_call_maps_to_the_whole_expected_destroy_payload(by_leg):
    assert destroy(by_leg, BUSY) == {
        "hook_event": "channel_destroy",
        "call_direction": "inbound",
        "timestamp": 1795908341 + 62167219200,   # Event-Date-Timestamp 1795908340.3..., up
        "request": "1001@127.0.0.1:5080",
        "to": "1001@127.0.0.1:5080",
        "from": "+15551234567@127.0.0.1:5070",
        "call_id": BUSY,
        "sip_call_id": "1-31423@127.0.0.1",
        "caller_id_name": "Alice Example",
        "caller_id_number": "+15551234567",
        "is_internal_leg": False,
        "call_forwarded": False,
        "emergency_resource_used": False,
        "hangup_cause": "USER_BUSY",
        "hangup_code": "sip:486",
        "duration_seconds": 0,
        "billing_seconds": 0,
        "ringing_seconds": 0,
        "switch": SWITCH,
        "event_id": CORE_UUID + "-1758",
    }


def test_create_of_sip_call_maps_to_the_whole_expected_payload(by_leg):
    assert payload(by_leg[(FS_BYE, "CHANNEL_CREATE")]) == {
        "hook_event": "channel_create",
        "call_direction": "inbound",
        "timestamp": 63963127535,   # 1795908334827796 us -> gregorian seconds, rounded up
        "request": "1000@127.0.0.1:5080",
        "to": "1000@127.0.0.1:5080",
        "from": "+15551234567@127.0.0.1:5070",
        "call_id": FS_BYE,
        "sip_call_id": "1-31407@127.0.0.1",
        "caller_id_name": "Alice Example",
        "caller_id_number": "+15551234567",
        "is_internal_leg": False,
        "call_forwarded": False,
        "emergency_resource_used": False,
        "switch": SWITCH,
        "event_id": CORE_UUID + "-1701",
    }


def test_answer_maps_to_channel_answer_without_destroy_fields(by_leg):
    answer = payload(by_leg[(FS_BYE, "CHANNEL_ANSWER")])
    assert answer["hook_event"] == "channel_answer"
    assert answer["event_id"] == CORE_UUID + "-1707"
    for key in ("hangup_cause", "hangup_code", "duration_seconds",
                "billing_seconds", "ringing_seconds"):
        assert key not in answer


# --- hangup_code: where it comes from --------------------------------------

@pytest.mark.parametrize("unique_id, cause, code", [
    (BUSY, "USER_BUSY", "sip:486"),                  # FreeSWITCH refused
    (NOT_FOUND, "UNALLOCATED_NUMBER", "sip:404"),    # FreeSWITCH refused
    (NO_ANSWER, "NO_ANSWER", "sip:480"),             # FreeSWITCH refused after 180
    (FS_BYE, "NORMAL_CLEARING", "sip:200"),          # FreeSWITCH sent BYE
])
def test_hangup_code_of_what_freeswitch_sent_itself(by_leg, unique_id, cause, code):
    event = by_leg[(unique_id, "CHANNEL_HANGUP_COMPLETE")]
    # The capture really lacks what FreeSWITCH would only set on receipt.
    for name in ("variable_sip_term_status", "variable_proto_specific_hangup_cause",
                 "variable_last_bridge_proto_specific_hangup_cause"):
        assert name not in event
    got = payload(event)
    assert (got["hangup_cause"], got["hangup_code"]) == (cause, code)


def test_hangup_code_of_what_freeswitch_received(by_leg):
    cancel = destroy(by_leg, CANCEL)
    assert (cancel["hangup_cause"], cancel["hangup_code"]) == ("ORIGINATOR_CANCEL", "sip:487")
    assert (cancel["duration_seconds"], cancel["billing_seconds"]) == (1, 0)
    caller_bye = destroy(by_leg, CALLER_BYE)
    assert (caller_bye["hangup_cause"], caller_bye["hangup_code"]) == ("NORMAL_CLEARING", "sip:200")
    busy_outbound = destroy(by_leg, ESL_SIP_OUTBOUND_BUSY)
    assert busy_outbound["hangup_code"] == "sip:486"
    assert busy_outbound["call_direction"] == "outbound"


def test_hangup_code_from_sip_term_status_alone(by_leg):
    event = dict(by_leg[(CALLER_BYE, "CHANNEL_HANGUP_COMPLETE")])
    del event["variable_proto_specific_hangup_cause"]
    event["variable_sip_term_status"] = "603"
    assert payload(event)["hangup_code"] == "sip:603"


def test_hangup_code_of_bridged_leg_comes_from_the_other_legs_status(by_leg):
    # The 1006 inbound leg was hung up by FreeSWITCH after the outbound leg
    # got BYE: only last_bridge_proto_specific_hangup_cause says so.
    event = by_leg[(TO_SIP, "CHANNEL_HANGUP_COMPLETE")]
    assert event["variable_last_bridge_proto_specific_hangup_cause"] == "sip:200"
    assert destroy(by_leg, TO_SIP)["hangup_code"] == "sip:200"


def test_loopback_legs_have_no_hangup_code(by_leg):
    busy_b = destroy(by_leg, LOOPBACK_BUSY_B)
    assert busy_b["hangup_cause"] == "USER_BUSY"
    assert "hangup_code" not in busy_b
    assert "hangup_code" not in destroy(by_leg, LOOPBACK_A_OF_1003)


@pytest.mark.parametrize("cause, status", [
    ("CALL_REJECTED", 603), ("NO_ROUTE_DESTINATION", 404), ("NO_USER_RESPONSE", 408),
    ("RECOVERY_ON_TIMER_EXPIRE", 504), ("NORMAL_TEMPORARY_FAILURE", 503),
    ("INCOMPATIBLE_DESTINATION", 488), ("OUTGOING_CALL_BARRED", 403),
    ("EXCHANGE_ROUTING_ERROR", 483), ("DECLINE", 603), ("UNWANTED", 607),
    ("SYSTEM_SHUTDOWN", 480),          # not in mod_sofia's table: its default
    ("NORMAL_CLEARING", 480),          # unanswered: FreeSWITCH refused with 480
])
def test_hangup_code_for_other_causes_follows_mod_sofia(by_leg, cause, status):
    event = dict(by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_hangup_cause"] = event["Hangup-Cause"] = cause
    assert payload(event)["hangup_code"] == "sip:%d" % status


def test_answered_sip_leg_ended_by_freeswitch_with_another_cause(by_leg):
    event = dict(by_leg[(FS_BYE, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_hangup_cause"] = event["Hangup-Cause"] = "MEDIA_TIMEOUT"
    assert payload(event)["hangup_code"] == "sip:480"


def test_sip_status_table_has_mod_sofias_size():
    # 39 cases in hangup_cause_to_sip(), each a distinct cause name.
    assert len(SIP_STATUS_BY_HANGUP_CAUSE) == 39
    assert all(400 <= s <= 699 for s in SIP_STATUS_BY_HANGUP_CAUSE.values())


# --- legs, directions, other leg --------------------------------------------

def test_bridged_sip_call_names_its_loopback_leg_and_back(by_leg):
    inbound = destroy(by_leg, TO_LOOPBACK)
    loopback = destroy(by_leg, LOOPBACK_A_OF_1003)
    assert inbound["other_leg_call_id"] == LOOPBACK_A_OF_1003
    assert loopback["other_leg_call_id"] == TO_LOOPBACK
    assert (inbound["is_internal_leg"], loopback["is_internal_leg"]) == (False, True)
    assert (inbound["call_direction"], loopback["call_direction"]) == ("inbound", "outbound")
    # The loopback leg knows no SIP URIs: to falls back to request.
    assert loopback["request"] == loopback["to"] == "1000"
    assert "from" not in loopback and "sip_call_id" not in loopback


def test_loopback_create_is_internal_by_channel_name_alone(by_leg):
    event = by_leg[(LOOPBACK_A_OF_1003, "CHANNEL_CREATE")]
    assert "variable_is_loopback" not in event
    create = payload(event)
    assert create["is_internal_leg"] is True
    assert create["other_leg_call_id"] == TO_LOOPBACK   # from originating_leg_uuid


def test_outbound_sip_leg_of_bridge(by_leg):
    create = payload(by_leg[(SIP_OUTBOUND_OF_1006, "CHANNEL_CREATE")])
    assert create["call_direction"] == "outbound"
    assert create["is_internal_leg"] is False
    assert create["other_leg_call_id"] == TO_SIP
    assert create["request"] == create["to"] == "1000@127.0.0.1:5080"
    assert (create["callee_id_name"], create["callee_id_number"]) == ("Outbound Call", "1000")
    done = destroy(by_leg, SIP_OUTBOUND_OF_1006)
    assert done["hangup_code"] == "sip:200"
    assert done["other_leg_call_id"] == TO_SIP
    assert (done["duration_seconds"], done["billing_seconds"]) == (2, 2)
    assert done["timestamp"] == 1795908356 + 62167219200


def test_esl_originated_caller_id_comes_from_origination_variables(by_leg, json_events):
    first_create = json_events[0]
    assert first_create["Channel-Name"] == "loopback/1000-a"
    create = payload(first_create)
    assert (create["caller_id_name"], create["caller_id_number"]) == ("Bob Example", "+15557654321")
    # Loopback -a legs report the context as callee number (README).
    assert (create["callee_id_name"], create["callee_id_number"]) == ("Outbound Call", "public")


def test_durations_of_unanswered_ringing_call(by_leg):
    done = destroy(by_leg, NO_ANSWER)
    assert (done["duration_seconds"], done["billing_seconds"], done["ringing_seconds"]) == (3, 0, 0)
    assert done["timestamp"] == 1795908345 + 62167219200


def test_every_capture_event_maps_or_is_none(json_events):
    mapped = [payload(e) for e in json_events]
    names = [e["Event-Name"] for e, p in zip(json_events, mapped) if p is None]
    assert names == ["HEARTBEAT"] * 3
    kinds = [p["hook_event"] for p in mapped if p is not None]
    assert (kinds.count("channel_create"), kinds.count("channel_answer"),
            kinds.count("channel_destroy")) == (35, 23, 35)
    assert all(p["switch"] == SWITCH and p["event_id"].startswith(CORE_UUID + "-")
               for p in mapped if p is not None)


# --- custom channel variables ----------------------------------------------

def test_custom_channel_vars_of_the_1005_call(by_leg):
    done = destroy(by_leg, CUSTOM_VARS, channel_variables=("ecallmgr_*", "some_custom"))
    assert done["custom_channel_vars"] == {
        "Account-ID": KAZOO_ACCOUNT,        # Kazoo's: every ecallmgr_*, prefix stripped
        "Exported": "exp/val+1",
        "ecallmgr_Account-ID": KAZOO_ACCOUNT,   # the globs' own, under their names
        "ecallmgr_Exported": "exp/val+1",
        "some_custom": "hello world&x=1",
    }


@pytest.mark.parametrize("globs, expected_names", [
    (("?nicode_custom",), {"unicode_custom"}),
    (("[su]*_custom",), {"some_custom", "unicode_custom"}),
    (("[!s]*_custom",), {"unicode_custom"}),
    (("sip_h_X-Test-Header",), {"sip_h_X-Test-Header"}),
    (("ECALLMGR_*",), set()),                 # case-sensitive
    (("nothing_like_this*",), set()),
    (("Caller-*", "Unique-ID"), set()),       # event headers are not variables
])
def test_custom_channel_var_globs(by_leg, globs, expected_names):
    done = destroy(by_leg, CUSTOM_VARS, channel_variables=globs)
    kazoos = {"Account-ID", "Exported"}     # the call's ecallmgr_* variables, always sent
    assert set(done.get("custom_channel_vars", {})) == expected_names | kazoos


@pytest.mark.parametrize("globs", [
    ("ecallmgr_*",), ("ecallmgr_*", "ecallmgr_Acc*", "some_custom"),
    ("unicode_custom", "sip_h_*", "ecallmgr_*", "sip_*_uri"), ("*_custom", "sip_h_X-*"),
    ("[es]*", "current_application"), ("*",),
])
def test_custom_channel_vars_are_what_fnmatch_picks_in_event_order(plain_events, json_events,
                                                                   globs):
    # fnmatch over every header, one by one, is the reference the finder must equal.
    # The ecallmgr_* variables (prefix stripped) come first, then the globs' matches.
    for event in plain_events + json_events:
        variables = [(name[len("variable_"):], event[name]) for name in event
                     if name.startswith("variable_") and event[name]]
        expected = {name[len("ecallmgr_"):]: value for name, value in variables
                    if name.startswith("ecallmgr_")}
        expected.update((name, value) for name, value in variables
                        if any(fnmatch.fnmatchcase(name, g) for g in globs))
        got = payload(event, channel_variables=globs)
        if got is not None:
            assert list(got.get("custom_channel_vars", {}).items()) == list(expected.items())


def test_no_globs_means_only_kazoos_custom_channel_vars(by_leg):
    kazoos = {"Account-ID": KAZOO_ACCOUNT, "Exported": "exp/val+1"}
    assert destroy(by_leg, CUSTOM_VARS)["custom_channel_vars"] == kazoos
    assert destroy(by_leg, CUSTOM_VARS, channel_variables=("zz*",))["custom_channel_vars"] == kazoos
    assert "custom_channel_vars" not in destroy(by_leg, BUSY)   # no ecallmgr_* at all


def test_create_of_the_1005_call_has_no_custom_vars_yet(by_leg):
    create = payload(by_leg[(CUSTOM_VARS, "CHANNEL_CREATE")],
                     channel_variables=("ecallmgr_*", "*_custom"))
    assert "custom_channel_vars" not in create


# --- plain and json agree -------------------------------------------------

def test_plain_and_json_map_to_the_same_payloads(plain_events, json_events):
    """Same index, same payload; the only known difference is plain's lossy
    decoding of a literal ``%41`` in the 1005 ``unicode_custom``."""
    assert len(plain_events) == len(json_events) == 96
    accounts = AccountDirectory([AccountConfig(id=KAZOO_ACCOUNT, realms=("127.0.0.1",))])
    differing = []
    for index, (plain, json_) in enumerate(zip(plain_events, json_events)):
        from_plain = payload(plain, accounts, channel_variables=("*",))
        from_json = payload(json_, accounts, channel_variables=("*",))
        if from_plain != from_json:
            differing.append((index, from_plain, from_json))
    assert [index for index, _, _ in differing] == [35, 47, 85]   # the three 1005 destroys
    for _, from_plain, from_json in differing:
        plain_vars = from_plain.pop("custom_channel_vars")
        json_vars = from_json.pop("custom_channel_vars")
        assert from_plain == from_json
        assert json_vars["unicode_custom"] == "café €5 %41 \"q\" 'a' <b>"
        assert plain_vars.pop("unicode_custom") == "café €5 A \"q\" 'a' <b>"
        json_vars.pop("unicode_custom")
        assert plain_vars == json_vars


# --- account resolution ---------------------------------------------------

ACCOUNT_A = "a" * 32
ACCOUNT_B = "b" * 32
DEFAULT = "d" * 32


def directory(*accounts, **kwargs) -> AccountDirectory:
    return AccountDirectory(accounts, **kwargs)


def test_account_via_configured_variable_wins(by_leg):
    event = dict(by_leg[(CUSTOM_VARS, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_account_id"] = ACCOUNT_A
    accounts = directory(AccountConfig(id=ACCOUNT_A), AccountConfig(id=KAZOO_ACCOUNT),
                         AccountConfig(id=ACCOUNT_B, realms=("127.0.0.1",)))
    assert resolve_account(event, accounts) == ACCOUNT_A
    assert payload(event, accounts)["account_id"] == ACCOUNT_A


def test_account_variable_name_is_configurable(by_leg):
    event = dict(by_leg[(FS_BYE, "CHANNEL_CREATE")])
    event["variable_tenant"] = ACCOUNT_B
    accounts = directory(AccountConfig(id=ACCOUNT_B), account_variable="tenant")
    assert resolve_account(event, accounts) == ACCOUNT_B


def test_account_via_ecallmgr_account_id(by_leg):
    accounts = directory(AccountConfig(id=KAZOO_ACCOUNT),
                         AccountConfig(id=ACCOUNT_B, realms=("127.0.0.1",)))
    assert destroy(by_leg, CUSTOM_VARS, accounts=accounts)["account_id"] == KAZOO_ACCOUNT
    # Its CREATE came before the dialplan set the variable: the realm decides.
    create = payload(by_leg[(CUSTOM_VARS, "CHANNEL_CREATE")], accounts)
    assert create["account_id"] == ACCOUNT_B


def test_unknown_account_in_variables_is_skipped(by_leg):
    event = dict(by_leg[(CUSTOM_VARS, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_account_id"] = "not-an-account"
    # KAZOO_ACCOUNT (ecallmgr_Account-ID) is not configured either.
    accounts = directory(AccountConfig(id=ACCOUNT_B, realms=("127.0.0.1",)),
                         default_account_id=DEFAULT)
    assert resolve_account(event, accounts) == ACCOUNT_B
    assert resolve_account(event, directory(default_account_id=DEFAULT)) == DEFAULT


def test_account_via_realm_in_header_order(by_leg):
    event = dict(by_leg[(FS_BYE, "CHANNEL_CREATE")])
    accounts = directory(AccountConfig(id=ACCOUNT_A, realms=("127.0.0.1",)),
                         AccountConfig(id=ACCOUNT_B, realms=("PBX.Example.com",)))
    assert resolve_account(event, accounts) == ACCOUNT_A
    event["variable_domain_name"] = "pbx.example.COM"   # first realm source, any case
    assert resolve_account(event, accounts) == ACCOUNT_B


def test_account_via_realm_ignores_the_port_of_an_outbound_leg(by_leg):
    event = dict(by_leg[(ESL_SIP_OUTBOUND_BUSY, "CHANNEL_HANGUP_COMPLETE")])
    assert event["variable_sip_to_host"] == "127.0.0.1:5080"
    del event["variable_sip_from_host"]
    accounts = directory(AccountConfig(id=ACCOUNT_A, realms=("127.0.0.1",)))
    assert resolve_account(event, accounts) == ACCOUNT_A


def test_account_via_default_and_unassigned(by_leg):
    event = by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")]
    other_realm = AccountConfig(id=ACCOUNT_A, realms=("elsewhere.example.com",))
    with_default = directory(other_realm, default_account_id=DEFAULT)
    assert payload(event, with_default)["account_id"] == DEFAULT
    assert resolve_account(event, directory(other_realm)) is None
    assert "account_id" not in payload(event, directory(other_realm))


def test_loopback_leg_without_sip_hosts_resolves_to_default(by_leg):
    accounts = directory(AccountConfig(id=ACCOUNT_A, realms=("127.0.0.1",)),
                         default_account_id=DEFAULT)
    assert destroy(by_leg, LOOPBACK_BUSY_B, accounts=accounts)["account_id"] == DEFAULT


# --- bad and odd input ----------------------------------------------------

def test_not_mapped_events_give_none(json_events):
    heartbeat = next(e for e in json_events if e["Event-Name"] == "HEARTBEAT")
    assert payload(heartbeat) is None
    assert payload({}) is None
    assert payload({"Event-Name": "CHANNEL_HANGUP"}) is None
    assert payload({"Event-Name": "channel_create"}) is None   # names are exact


def test_malformed_numbers_are_left_out_not_fatal(by_leg):
    event = dict(by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")])
    event["Event-Date-Timestamp"] = "soon"
    event["variable_duration"] = "1.5"
    event["variable_billsec"] = ""
    event["variable_billmsec"] = "0x10"
    event["variable_progresssec"] = "-1"
    got = payload(event)
    for key in ("timestamp", "duration_seconds", "billing_seconds", "ringing_seconds"):
        assert key not in got
    assert got["call_id"] == BUSY
    assert got["hangup_code"] == "sip:486"


def test_empty_values_count_as_absent(by_leg):
    event = dict(by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_sip_req_uri"] = ""
    event["variable_sip_to_uri"] = ""
    event["variable_origination_caller_id_name"] = ""
    event["variable_effective_caller_id_name"] = "Effective Name"
    got = payload(event)
    assert got["request"] == got["to"] == "1001"          # Caller-Destination-Number
    assert got["caller_id_name"] == "Effective Name"


def test_minimal_event_has_only_the_always_present_keys():
    got = payload({"Event-Name": "CHANNEL_CREATE"})
    assert got == {"hook_event": "channel_create", "is_internal_leg": False,
                   "call_forwarded": False, "emergency_resource_used": False,
                   "switch": SWITCH}


def test_missing_sequence_leaves_out_event_id(by_leg):
    event = dict(by_leg[(BUSY, "CHANNEL_CREATE")])
    del event["Event-Sequence"]
    assert "event_id" not in payload(event)


@pytest.mark.parametrize("flag, internal", [("1", True), ("true", True), ("TRUE", True),
                                            ("0", False), ("false", False), ("", False)])
def test_is_loopback_variable(by_leg, flag, internal):
    event = dict(by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")])
    event["variable_is_loopback"] = flag
    assert payload(event)["is_internal_leg"] is internal


def test_hangup_code_left_out_without_any_cause_on_a_sip_leg(by_leg):
    event = dict(by_leg[(BUSY, "CHANNEL_HANGUP_COMPLETE")])
    del event["variable_hangup_cause"], event["Hangup-Cause"]
    got = payload(event)
    assert "hangup_cause" not in got and "hangup_code" not in got
