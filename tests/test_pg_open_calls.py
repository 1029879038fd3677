"""Open calls in fleet mode: ``sequence`` from the switch (the same whichever
instance maps an event) and every instance's saved view read back as one."""

from __future__ import annotations

import pytest

from eslhook.calls import OpenCalls
from eslhook.config import StorageConfig


def event(call_id: str, hook_event: str, seq: int | None, **extra) -> dict:
    payload = {"hook_event": hook_event, "switch": "sw1", "call_id": call_id,
               "account_id": "a" * 32, **extra}
    if seq is not None:
        payload["event_id"] = "core-uuid-1-%d" % seq
    return payload


def stamped(calls: OpenCalls, *payloads: dict) -> list[int]:
    for payload in payloads:
        calls.observe(payload, "core-uuid-1")
    return [payload["sequence"] for payload in payloads]


def test_two_instances_stamp_the_same_sequence_even_one_that_joined_mid_call():
    whole, joined = OpenCalls(sequence_from_switch=True), OpenCalls(sequence_from_switch=True)
    call = [event("c1", "channel_create", 101), event("c1", "channel_answer", 140),
            event("c1", "channel_bridge", 141), event("c1", "channel_destroy", 190)]
    assert stamped(whole, *[dict(p) for p in call]) == [101, 140, 141, 190]
    assert stamped(joined, *[dict(p) for p in call[2:]]) == [141, 190]
    # embedded mode numbers per call: 1, 2, 3...
    assert stamped(OpenCalls(), *[dict(p) for p in call]) == [1, 2, 3, 4]


def test_an_event_eslhook_makes_itself_continues_after_the_calls_last():
    calls = OpenCalls(sequence_from_switch=True)
    assert stamped(calls, event("c1", "channel_create", 101),
                   event("c1", "channel_answer", 140)) == [101, 140]
    # a reconciled destroy: its event_id's tail is the channel's uuid, never its number
    reconciled = event("c1", "channel_destroy", None, reconciled=True,
                       event_id="core-uuid-1-reconciled-destroy-123456789012")
    assert stamped(calls, reconciled) == [141]
    odd = event("c2", "channel_create", None)           # no Event-Sequence at all
    assert stamped(calls, odd, event("c2", "channel_destroy", 300)) == [1, 300]


def test_a_starting_instance_reads_every_instances_open_calls(pg_dsn):
    from eslhook.pg.calls import PgCallTable
    from eslhook.pg.database import open_database
    database = open_database(StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=2))
    try:
        a_table, b_table = PgCallTable(database, "a:/s"), PgCallTable(database, "b:/s")
        a, b = OpenCalls(table=a_table, sequence_from_switch=True), \
            OpenCalls(table=b_table, sequence_from_switch=True)
        # a saw c1 begin; b was down then, and saw c2 begin and c1 answered
        stamped(a, event("c1", "channel_create", 10))
        a.flush()
        stamped(b, event("c2", "channel_create", 20), event("c1", "channel_answer", 21))
        b.flush()
        # a saves again (its view without c2): b's rows stay
        stamped(a, event("c3", "channel_create", 30))
        a.flush()
        fresh = OpenCalls(table=PgCallTable(database, "c:/s"), sequence_from_switch=True)
        fresh.load()
        known = fresh.of_switch("sw1")
        assert sorted(known) == ["c1", "c2", "c3"]
        assert known["c1"].sequence == 21 and known["c1"].answered   # the latest copy
        # a destroy it makes for c1 continues after the latest event any instance saw
        assert stamped(fresh, event("c1", "channel_destroy", None, reconciled=True,
                                    event_id="x-reconciled-destroy-c1")) == [22]
    finally:
        database.close()



def test_the_bridge_holds_events_of_a_call_it_never_saw_begin(tmp_path, pg_dsn):
    """Fleet mode, the whole bridge: an answer of a call whose create this instance
    never heard is held JOIN_HOLD_SECONDS (its row says when it may go); the events of
    a call it saw begin are not."""
    import psycopg
    from helpers import make_hook
    from world import OpsWorld

    from eslhook.delivery.queue import JOIN_HOLD_SECONDS
    world = OpsWorld(tmp_path, extra={"storage": {"backend": "postgresql", "dsn": pg_dsn,
                                                  "pool_size": 3}})
    try:
        world.bridge.hooks.load()
        world.bridge.hooks.update(lambda hooks: (hooks + [make_hook(
            world.receiver.url("/h"), format="json", retries=0)], None))
        world.start()
        seen = world.call()                                       # create, answer, destroy
        late = world.call(events=("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"))
        assert world.receiver.wait_for(5, timeout=10)
        world.bridge.delivery._store.flush()
        with psycopg.connect(pg_dsn) as connection:
            rows = connection.execute(
                "SELECT call_id, hook_event, next_attempt - created FROM deliveries "
                "ORDER BY seq").fetchall()
        held = {(call, event): wait for call, event, wait in rows}
        assert all(held[(seen, e)] is None for e in
                   ("channel_create", "channel_answer", "channel_destroy"))
        assert held[(late, "channel_answer")] == pytest.approx(JOIN_HOLD_SECONDS, abs=0.1)
        assert held[(late, "channel_destroy")] is None    # the answer opened the call here
        got = [r.json["hook_event"] for r in world.receiver.requests
               if r.json["call_id"] == late]
        assert got == ["channel_answer", "channel_destroy"]   # in order, after the hold
    finally:
        world.close()
