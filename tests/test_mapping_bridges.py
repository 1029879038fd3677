"""Payloads of every leg of the set-2 captures (bridges, failed bridges, devices,
a gateway, a transfer, a Diversion, an ESL originate), plain and json alike.

The legs and their hangup fields are the table of /work/shared/captures/README.md,
"set 2" (copied to tests/captures/{plain,json}-bridge-calls.esl); the expected
values were worked out by hand from that table and mod_kazoo's definitions
(hangup-cause.xml, hangup-code.xml, then eslhook's documented fallback).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig, PayloadConfig
from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS, channel_payload
from eslhook.mapping_keys import kazoo_variables
from eslhook.source.framing import split_frames
from eslhook.source.parsing import HeaderPicker, parse_event

CAPTURES = Path(__file__).resolve().parent / "captures"
SWITCH = "fs-set2"
CORE_UUID = "40864d11-444d-4a07-8d62-ea9fdeb8ca19"
CREATE, ANSWER, BRIDGE, DESTROY = ("channel_create", "channel_answer", "channel_bridge",
                                   "channel_destroy")
BRIDGED_A = (CREATE, ANSWER, BRIDGE, DESTROY)
ANSWERED = (CREATE, ANSWER, DESTROY)
REFUSED = (CREATE, DESTROY)

# Unique-ID -> (call, leg, hook events in order, hangup_cause, hangup_code or None)
LEGS = {
    "fcac29d0-7f0d-4996-a1f0-18ddd3daac16": (1, "A", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "cd3f12c1-297c-4ba6-9b86-e4442538c82b": (1, "B", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "2664ea6c-3033-42f2-a99d-df1043e8fbe2": (1, "C", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "8df0c1ed-dc2c-4a32-9621-9eb2f9cb1b1a": (2, "A", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "2206b39b-e23a-4498-ba02-73be1f3eac30": (2, "B", ANSWERED, "NORMAL_CLEARING", None),
    "57b386e0-0a7b-44b0-8d96-4be45b3d5c3a": (2, "C", ANSWERED, "NORMAL_CLEARING", None),
    "a0f338a7-74ec-4df9-a3e3-e752e6c6d044": (3, "A", REFUSED, "USER_BUSY", "sip:486"),
    "1f625b24-ea9a-48e4-ae6d-015b4068d44e": (3, "B", REFUSED, "USER_BUSY", "sip:486"),
    "d62e107f-6c1a-4ac7-baea-77cbf0fb20ff": (3, "C", REFUSED, "USER_BUSY", "sip:486"),
    # no status anywhere: mod_sofia's 480 for a cause not in its table (what the caller got)
    "dced6df0-174c-497b-980f-97dd2ae127c0": (4, "A", REFUSED, "ALLOTTED_TIMEOUT", "sip:480"),
    "5c2ad313-2df9-4a79-9506-20bc7ce97259": (4, "B", REFUSED, "ALLOTTED_TIMEOUT", "sip:480"),
    "4abe5677-7039-47ac-aec6-d4ba31066612": (4, "C", REFUSED, "ORIGINATOR_CANCEL", "sip:487"),
    "1b88c70a-5f91-477d-a901-eed52901b329": (5, "A", REFUSED, "UNALLOCATED_NUMBER", "sip:404"),
    "1c5ea243-3e1a-4312-aad7-5d175b428758": (5, "B", REFUSED, "UNALLOCATED_NUMBER", "sip:404"),
    "bf791abf-2826-48f8-b6b6-49f8c21e5e96": (5, "C", REFUSED, "UNALLOCATED_NUMBER", "sip:404"),
    "8c7fb8d7-b5dd-4019-b098-6977b2645e19": (6, "A", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "01ed9f52-9d73-4534-80d7-ee8ae3afd9e5": (6, "B", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "8d5e48ab-954c-4008-9134-9647fc2491e1": (6, "C", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "89cf840a-5a92-44f1-902c-45ab138be1ad": (7, "A", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "69e8fc1b-e15b-4d27-8f93-d26c6744942f": (8, "A", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "3447bd71-8748-4d1f-9de8-9ecbcb9756d3": (8, "B", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "a673b8bf-a51e-4ed2-b6a1-32bfef529c90": (8, "C", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "b55d2e3f-6029-4864-8dd7-c80e2969c3b8": (9, "A", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "e1de04a2-9436-4204-961c-8a75402e4b70": (10, "A", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "472bf5b3-d02b-4d56-9960-018c98e60588": (10, "B", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "cf36fe88-c018-442a-8e26-d493f687eb7d": (10, "C", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "36b26cd4-ca34-4ba0-82cf-aaae9b710aee": (11, "A", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "2d6def5c-6742-415d-8f88-14e45a30161b": (12, "A", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "415fa103-b6a5-4092-8e55-f85cb5054e64": (12, "B", BRIDGED_A, "NORMAL_CLEARING", "sip:200"),
    "4e398921-8cc1-4995-8752-6d3d21a435a3": (12, "C", ANSWERED, "NORMAL_CLEARING", "sip:200"),
    "f4bf9554-c8ab-4d90-a86d-93f7c25b697e": (12, "D", ANSWERED, "NORMAL_CLEARING", "sip:200"),
}
BY_CALL_LEG = {(call, leg): uid for uid, (call, leg, *_rest) in LEGS.items()}
ACCOUNT = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
RESELLER = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
MASTER = "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a"
ACCOUNTS = AccountDirectory([AccountConfig(id=MASTER),
                             AccountConfig(id=RESELLER, parent_id=MASTER, reseller=True),
                             AccountConfig(id=ACCOUNT, parent_id=RESELLER,
                                           realms=("127.0.0.1",))],
                            default_account_id=ACCOUNT)    # loopback legs name no host
SETTINGS = PayloadConfig(channel_variables=("set2_*",), cluster_id="cluster-7")


def leg_payloads(name: str, picker: HeaderPicker | None = None) -> dict[str, list[dict]]:
    """Unique-ID -> the leg's payloads in capture order."""
    legs: dict[str, list[dict]] = {}
    for frame in split_frames((CAPTURES / name).read_bytes()):
        event = parse_event(frame, picker)
        payload = event and channel_payload(event, switch=SWITCH, accounts=ACCOUNTS,
                                            settings=SETTINGS)
        if payload:
            legs.setdefault(payload["call_id"], []).append(payload)
    return legs


@pytest.fixture(scope="module")
def json_legs() -> dict[str, list[dict]]:
    return leg_payloads("json-bridge-calls.esl")


def of(legs: dict[str, list[dict]], call: int, leg: str, hook_event: str) -> dict:
    return next(p for p in legs[BY_CALL_LEG[(call, leg)]] if p["hook_event"] == hook_event)


# -- every leg, every hook type, plain == json ----------------------------------

def test_plain_json_and_picked_plain_give_the_same_payloads_for_every_leg(json_legs):
    assert leg_payloads("plain-bridge-calls.esl") == json_legs
    # the picker learns the names on the first events, then picks only them
    assert leg_payloads("plain-bridge-calls.esl", HeaderPicker()) == json_legs


def test_every_leg_fires_its_hook_events_in_order_and_nothing_else(json_legs):
    assert set(json_legs) == set(LEGS)
    for uid, (call, leg, kinds, _cause, _code) in LEGS.items():
        assert tuple(p["hook_event"] for p in json_legs[uid]) == kinds, (call, leg)


def test_every_legs_hangup_cause_and_code(json_legs):
    for uid, (call, leg, _kinds, cause, code) in LEGS.items():
        done = json_legs[uid][-1]
        assert (done.get("hangup_cause"), done.get("hangup_code")) == (cause, code), (call, leg)


def test_keys_every_leg_carries_on_every_webhook(json_legs):
    for uid, payloads in json_legs.items():
        for p in payloads:
            assert p["call_id"] == uid and p["switch"] == SWITCH
            assert p["account_id"] == ACCOUNT and p["reseller_id"] == RESELLER
            assert p["cluster_id"] == "cluster-7"
            assert p["event_id"].startswith(CORE_UUID + "-")
            assert type(p["call_forwarded"]) is bool
            assert p["emergency_resource_used"] is False
            assert p["timestamp"] > GREGORIAN_UNIX_OFFSET_SECONDS


# -- item 5: from / to -------------------------------------------------------------

def test_from_and_to_are_stable_over_each_legs_webhooks_without_parameters(json_legs):
    for uid, payloads in json_legs.items():
        call, leg = LEGS[uid][:2]
        assert len({p.get("from") for p in payloads}) == 1, (call, leg)
        assert len({p.get("to") for p in payloads}) == 1, (call, leg)
        for value in (payloads[0].get("from"), payloads[0]["to"]):
            assert value is None or ";" not in value and "<" not in value, (call, leg)


def test_an_outbound_legs_from_is_its_caller_never_its_own_callee(json_legs):
    assert of(json_legs, 1, "B", CREATE)["from"] == "+15551234567@127.0.0.1"
    # what the B-leg sent as From: the device's effective caller id, on every webhook
    assert of(json_legs, 6, "B", CREATE)["from"] == "1010@127.0.0.1"
    # the gateway leg: sip_from_host has a port on CHANNEL_CREATE only
    assert of(json_legs, 8, "B", CREATE)["from"] == "+15551234567@127.0.0.1"
    # the ESL originate: its Caller-Caller-ID-Number turns into 1000 after CALL_UPDATE
    assert of(json_legs, 12, "A", DESTROY)["from"] == "+15557654321@127.0.0.1"
    for uid, payloads in json_legs.items():
        first = payloads[0]
        if "from" in first:
            assert first["from"].split("@")[0] != first["to"].split("@")[0], LEGS[uid][:2]


# -- item 1: channel_bridge --------------------------------------------------------

def test_the_bridge_of_call_1_is_the_whole_expected_payload(json_legs):
    bridge = of(json_legs, 1, "A", BRIDGE)
    assert bridge == {
        "hook_event": "channel_bridge", "call_direction": "inbound",
        "timestamp": bridge["timestamp"], "account_id": ACCOUNT,
        "request": "1006@127.0.0.1:5080", "to": "1006@127.0.0.1:5080",
        "from": "+15551234567@127.0.0.1:5070",
        "call_id": BY_CALL_LEG[(1, "A")], "sip_call_id": bridge["sip_call_id"],
        "other_leg_call_id": BY_CALL_LEG[(1, "B")],
        "caller_id_name": "Alice Example", "caller_id_number": "+15551234567",
        "callee_id_name": "1000", "callee_id_number": "1000",
        "is_internal_leg": False, "call_forwarded": False, "emergency_resource_used": False,
        "reseller_id": RESELLER, "cluster_id": "cluster-7",
        "other_leg_destination_number": "1000", "original_number": "1006",
        "switch": SWITCH, "event_id": bridge["event_id"]}
    assert bridge["sip_call_id"] and bridge["event_id"] == CORE_UUID + "-1326"


@pytest.mark.parametrize("call, a_leg, b_leg, dialled", [
    (2, "A", "B", "1003"), (6, "A", "B", "1012"), (8, "A", "B", "1013"),
    (10, "A", "B", "1015"), (12, "B", "C", "1006")])
def test_each_bridge_names_its_other_leg(json_legs, call, a_leg, b_leg, dialled):
    bridge = of(json_legs, call, a_leg, BRIDGE)
    assert bridge["other_leg_call_id"] == BY_CALL_LEG[(call, b_leg)]
    assert (bridge["other_leg_destination_number"], bridge["original_number"]) == (
        "1000", dialled)


# -- item 3: the keys Kazoo integrations read ---------------------------------------

def test_cav_and_ecallmgr_variables_only_on_call_6s_a_leg_once_set(json_legs):
    a_leg = json_legs[BY_CALL_LEG[(6, "A")]]
    assert "custom_application_vars" not in a_leg[0]      # set after CHANNEL_CREATE
    for p in a_leg[2:]:
        assert p["custom_application_vars"] == {"campaign": "spring-2026", "agent_id": "42"}
        assert p["custom_channel_vars"] == {"Authorizing-Type": "device"}
    for leg in ("B", "C"):
        assert all("custom_application_vars" not in p
                   for p in json_legs[BY_CALL_LEG[(6, leg)]])


def test_configured_globs_add_to_kazoos_custom_channel_vars(json_legs):
    done = of(json_legs, 10, "A", DESTROY)
    assert done["custom_channel_vars"] == {"set2_marker": "before-bridge"}
    assert all("custom_channel_vars" not in p for p in json_legs[BY_CALL_LEG[(10, "B")]])


def test_digest_devices_are_authorizing_devices_with_their_owner(json_legs):
    for p in json_legs[BY_CALL_LEG[(6, "A")]]:
        assert (p["authorizing_type"], p["authorizing_id"]) == ("device", "1010@127.0.0.1")
        assert p["owner_id"] == "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
    for p in json_legs[BY_CALL_LEG[(7, "A")]]:
        assert (p["authorizing_type"], p["authorizing_id"]) == ("device", "1011@127.0.0.1")
        assert "owner_id" not in p                         # 1011 has no variables
    assert all("authorizing_id" not in p and "owner_id" not in p
               for p in json_legs[BY_CALL_LEG[(6, "C")]])  # directory variables stay on A


def test_the_gateway_leg_is_a_local_resource(json_legs):
    for p in json_legs[BY_CALL_LEG[(8, "B")]]:
        assert (p["authorizing_type"], p["authorizing_id"]) == ("resource", "carrier1")
        assert (p["local_resource_id"], p["local_resource_used"]) == ("carrier1", True)
    for leg in ("A", "C"):
        assert all("local_resource_used" not in p for p in json_legs[BY_CALL_LEG[(8, leg)]])


def test_only_the_call_with_a_diversion_header_is_forwarded(json_legs):
    forwarded = {uid for uid, ps in json_legs.items() if any(p["call_forwarded"] for p in ps)}
    assert forwarded == {BY_CALL_LEG[(11, "A")]}
    assert all(p["call_forwarded"] for p in json_legs[BY_CALL_LEG[(11, "A")]])


# -- item 4: Kazoo's values -----------------------------------------------------------

def test_billing_seconds_round_billmsec_up_and_timestamps_round_up(json_legs):
    assert of(json_legs, 1, "B", DESTROY)["billing_seconds"] == 3      # billmsec 2020
    assert of(json_legs, 1, "A", DESTROY)["billing_seconds"] == 2      # billmsec 2000
    assert of(json_legs, 10, "B", DESTROY)["billing_seconds"] == 1     # billmsec 520
    assert of(json_legs, 3, "A", DESTROY)["billing_seconds"] == 0      # never answered


# -- the cav_/ecallmgr_ scan against the obvious loop ---------------------------------

def reference_kazoo_variables(event) -> tuple[dict[str, str], dict[str, str]]:
    found: tuple[dict[str, str], dict[str, str]] = ({}, {})
    for name in event:
        for prefix, into in (("variable_cav_", found[0]), ("variable_ecallmgr_", found[1])):
            if name.startswith(prefix) and event[name]:
                into[name[len(prefix):]] = event[name]
    return found


@pytest.mark.parametrize("name", ["json-bridge-calls.esl", "plain-bridge-calls.esl",
                                  "json-single-calls.esl", "plain-single-calls.esl"])
def test_kazoo_variables_are_what_the_obvious_loop_finds(name):
    picker = HeaderPicker()
    for frame in split_frames((CAPTURES / name).read_bytes()):
        for event in (parse_event(frame), parse_event(frame, picker)):
            if event is not None:
                assert kazoo_variables(event) == reference_kazoo_variables(event)
