"""Reconciliation decisions, apart from any I/O or timing."""

import json

import pytest

from eslhook.calls import OpenCall, OpenCalls
from eslhook.config import ReconcileConfig
from eslhook.reconcile import destroy_payload, parse_channels, plan, row_event

CORE = "f8136d9c-bd7c-4a9e-b280-42f4dd7310ac"


def open_call(call_id, core=CORE):
    return OpenCall(call_id, "fs1", core, {"call_id": call_id, "switch": "fs1",
                                            "account_id": "a" * 32, "call_direction": "inbound"})


def rows(*uuids):
    return {u: {"uuid": u, "direction": "inbound", "name": "sofia/internal/x",
                "callstate": "ACTIVE", "created_epoch": "1795908347"} for u in uuids}


def test_the_idle_answer_has_no_rows_key(captures):
    idle = (captures / "api-show-channels-as-json-idle.raw").read_bytes().split(b"\n\n")[-1]
    assert parse_channels(idle.decode()) == {}
    busy = (captures / "api-show-channels-as-json.raw").read_bytes().split(b"\n\n")[-1]
    assert set(parse_channels(busy.decode())) == {
        "cfca46c9-87c3-4a16-adde-c01e9abd390c", "84f6b423-99b1-4e67-8ff0-2769d67252be",
        "f9b94f07-c861-4d70-9dc9-bd327a63ebef"}


@pytest.mark.parametrize("text", ["-ERR no_such_command Command not found!\n", "[]", "{}"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_channels(text)


def test_a_call_is_over_only_when_absent_from_both_reads():
    calls = {c: open_call(c) for c in ("gone", "lagging", "alive")}
    todo = plan(calls, first=rows("lagging", "alive"), second=rows("alive"), core_uuid=CORE)
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("gone", "UNKNOWN")]
    assert todo.create == ()


def test_a_channel_is_new_only_when_present_in_both_reads():
    todo = plan({}, first=rows("steady", "just-gone"), second=rows("steady", "just-born"),
                core_uuid=CORE)
    assert [row["uuid"] for row in todo.create] == ["steady"]
    assert todo.destroy == ()


def test_a_new_core_uuid_closes_every_call_of_the_old_switch_at_once():
    calls = {"old": open_call("old", core="old-core"), "current": open_call("current")}
    todo = plan(calls, first=rows("old", "current"), second=rows("old", "current"),
                core_uuid=CORE)
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("old", "SWITCH_RESTARTED")]


def test_nothing_to_do_when_beliefs_and_switch_agree():
    calls = {c: open_call(c) for c in ("a", "b")}
    todo = plan(calls, first=rows("a", "b"), second=rows("a", "b"), core_uuid=CORE)
    assert not todo


def test_a_synthetic_destroy_keeps_what_was_known_and_says_it_is_synthetic():
    payload = destroy_payload(open_call("c1"), "UNKNOWN", now=1795908400.7)
    assert payload == {"call_id": "c1", "switch": "fs1", "account_id": "a" * 32,
                       "call_direction": "inbound", "hook_event": "channel_destroy",
                       "hangup_cause": "UNKNOWN", "reconciled": True,
                       "timestamp": 1795908400 + 62167219200,
                       "event_id": CORE + "-reconciled-destroy-c1"}


def test_a_row_stands_for_an_event_the_mapping_understands():
    event = row_event(rows("u1")["u1"] | {"cid_num": "+1555", "dest": "1000"}, CORE,
                      "CHANNEL_CREATE")
    assert event["Unique-ID"] == "u1" and event["Caller-Destination-Number"] == "1000"
    assert event["Event-Date-Timestamp"] == "1795908347000000"


def test_open_calls_follow_create_answer_destroy_and_survive_a_restart(tmp_path):
    path = tmp_path / "open-calls.json"
    calls = OpenCalls(path)
    base = {"switch": "fs1", "call_id": "c1", "account_id": "a" * 32}
    calls.observe({**base, "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "hook_event": "channel_answer", "to": "1000"}, CORE)
    calls.observe({**base, "call_id": "c2", "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "call_id": "c2", "hook_event": "channel_destroy"}, CORE)
    calls.flush()
    on_disk = json.loads(path.read_text())
    assert [c["call_id"] for c in on_disk["switches"]["fs1"]] == ["c1"]
    again = OpenCalls(path)
    again.load()
    call = again.of_switch("fs1")["c1"]
    assert call.answered and call.core_uuid == CORE and call.fields["to"] == "1000"


def test_an_unreadable_table_starts_empty_and_says_so(tmp_path, caplog):
    path = tmp_path / "open-calls.json"
    path.write_text("{not json")
    calls = OpenCalls(path)
    calls.load()
    assert len(calls) == 0
    assert "unreadable" in caplog.text


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="interval_seconds"):
        ReconcileConfig(interval_seconds=0)
