"""The open-call store contract (eslhook/calls_store.py), run against every backend
in ``store_backends.OPEN_CALL_BACKENDS``: written against the interface only."""

from __future__ import annotations

import gevent
import pytest
from helpers import wait_until
from store_backends import ACME, OPEN_CALL_BACKENDS, backend_fixture

from eslhook.calls_store import KEPT_FIELDS, kept_fields


backend = backend_fixture(OPEN_CALL_BACKENDS)


@pytest.fixture
def calls(backend):
    store = backend.open()
    store.load()
    store.start()
    return store


def payload(call_id: str, event: str = "channel_create", switch: str = "sw1", **extra) -> dict:
    return {"hook_event": event, "switch": switch, "call_id": call_id, "account_id": ACME,
            "caller_id_number": "+15551234567", "to": "1000@pbx", **extra}


def observed(calls, *payloads, core_uuid: str | None = "core-1") -> list[int]:
    for item in payloads:
        calls.observe(item, core_uuid)
    return [item.get("sequence") for item in payloads]


def reopened(backend, calls):
    calls.stop()
    again = backend.open()
    again.load()
    again.start()
    return again


def test_each_payload_of_a_call_gets_the_next_sequence_and_a_destroy_closes_it(calls):
    assert observed(calls, payload("a"), payload("b"), payload("a", "channel_answer"),
                    payload("a", "channel_destroy"), payload("b", "channel_destroy")) == [
        1, 1, 2, 3, 2]
    assert len(calls) == 0 and not calls.is_open("sw1", "a")
    assert calls.is_known("sw1", "a") and set(calls.ended_of("sw1")) == {"a", "b"}
    assert observed(calls, payload("c", "channel_destroy")) == [1]    # never seen open


def test_a_bridge_continues_an_open_call_but_opens_no_new_one(calls):
    assert observed(calls, payload("a"), payload("a", "channel_answer"),
                    payload("a", "channel_bridge"), payload("x", "channel_bridge")) == [
        1, 2, 3, 1]
    assert calls.is_open("sw1", "a") and not calls.is_known("sw1", "x") and len(calls) == 1
    assert observed(calls, payload("a", "channel_destroy")) == [4]


def test_switches_are_apart_and_payloads_without_a_call_are_not_recorded(calls):
    observed(calls, payload("a"), payload("a", switch="sw2"), payload("a", switch="sw2"))
    assert [c.sequence for c in calls.of_switch("sw1").values()] == [1]
    assert [c.sequence for c in calls.of_switch("sw2").values()] == [2]
    unassigned = {"hook_event": "channel_create", "switch": "sw1"}
    calls.observe(unassigned, None)
    assert "sequence" not in unassigned and len(calls) == 2
    assert calls.of_switch("nowhere") == {} and not calls.is_known("nowhere", "a")


def test_open_calls_survive_a_restart_and_their_sequence_continues(backend, calls):
    observed(calls, payload("a"), payload("a", "channel_answer", custom="not kept"),
             payload("b"), payload("gone"), payload("gone", "channel_destroy"))
    before = {cid: (c.sequence, c.answered, c.core_uuid, c.since, kept_fields(c))
              for cid, c in calls.of_switch("sw1").items()}
    calls = reopened(backend, calls)
    after = calls.of_switch("sw1")
    assert {cid: (c.sequence, c.answered, c.core_uuid, c.since, kept_fields(c))
            for cid, c in after.items()} == before
    assert set(after) == {"a", "b"} and after["a"].answered and not after["b"].answered
    assert set(kept_fields(after["a"])) <= set(KEPT_FIELDS)
    assert "custom" not in after["a"].fields
    assert observed(calls, payload("a", "channel_destroy")) == [3]
    assert calls.is_open("sw1", "b") and not calls.is_open("sw1", "a")


def test_a_call_carries_the_epoch_of_its_latest_event(calls):
    observed(calls, payload("early"))
    first = calls.mark("sw1")
    observed(calls, payload("late"))
    assert calls.mark("sw2") == 1 and calls.mark("sw1") == first + 1
    table = calls.of_switch("sw1")
    assert table["early"].epoch < first <= table["late"].epoch
    observed(calls, payload("early", "channel_answer"))
    assert table["early"].epoch == first + 1


def test_ended_calls_are_remembered_at_least_as_long_as_asked(backend):
    now = [1000.0]
    calls = backend.open(clock=lambda: now[0])
    calls.load()
    calls.remember_ended_for(120.0)
    calls.remember_ended_for(5.0)                    # never shortens
    observed(calls, payload("a"), payload("a", "channel_destroy"))
    assert calls.ended_of("sw1") == {"a": 1000.0}
    now[0] += 119.0
    observed(calls, payload("b"), payload("b", "channel_destroy"))
    assert set(calls.ended_of("sw1")) == {"a", "b"} and calls.is_known("sw1", "a")
    now[0] += 300.0                                  # memory is bounded: a is forgotten
    observed(calls, payload("c"), payload("c", "channel_destroy"))
    assert "c" in calls.ended_of("sw1") and not calls.is_known("sw1", "a")


def test_unreadable_saved_state_starts_empty(backend):
    backend.corrupt()
    calls = backend.open()
    calls.load()
    assert len(calls) == 0
    assert observed(calls, payload("a")) == [1]


def test_a_failing_save_is_reported_and_done_once_saving_works_again(backend, calls):
    observed(calls, payload("a"))
    backend.break_saving()
    observed(calls, payload("b"), payload("a", "channel_answer"))
    assert wait_until(lambda: calls.write_error is not None, timeout=5)
    assert len(calls) == 2                           # memory intact
    backend.mend_saving()
    assert wait_until(lambda: calls.write_error is None, timeout=5)
    calls = reopened(backend, calls)
    assert {cid: c.sequence for cid, c in calls.of_switch("sw1").items()} == {"a": 2, "b": 1}


def test_greenlets_observing_while_it_saves_leave_a_consistent_table(backend, calls):
    def one_switch(switch):
        for n in range(30):
            observed(calls, payload("c%d" % n, switch=switch))
            if n % 3 == 0:
                observed(calls, payload("c%d" % n, "channel_destroy", switch=switch))
            gevent.sleep(0.002)

    workers = [gevent.spawn(one_switch, "sw%d" % n) for n in range(4)]
    gevent.joinall(workers, timeout=30, raise_error=True)
    in_memory = {s: {cid: c.sequence for cid, c in calls.of_switch(s).items()}
                 for s in ("sw0", "sw1", "sw2", "sw3")}
    assert all(len(table) == 20 for table in in_memory.values())
    calls = reopened(backend, calls)
    assert {s: {cid: c.sequence for cid, c in calls.of_switch(s).items()}
            for s in in_memory} == in_memory
