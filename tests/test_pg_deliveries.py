"""The delivery store on PostgreSQL beyond the contract (tests/contract/): two
instances sharing one database enqueue each (hook, event) once, in each call's
event order, with ids that never collide; and the delivery queue delivers through
it end to end to a real receiver.  A real PostgreSQL (tests/pg_support.py)."""

from __future__ import annotations

import json

import pytest
from helpers import make_hook

from eslhook.config import DeliveryConfig, StorageConfig
from eslhook.delivery.rows import DELIVERED, REPLAY, AttemptRecord, Delivery, DeliveryRow

HOOK = make_hook("http://127.0.0.1:9/hook")
T0 = 1_700_000_000.0


@pytest.fixture
def database(pg_dsn):
    from eslhook.pg.database import open_database
    opened = open_database(StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=4))
    yield opened
    opened.close()


@pytest.fixture
def instances(database):
    """Builds started stores, one per instance name, on the one database."""
    from eslhook.pg.deliveries import PgDeliveryStore
    made = []

    def build(name):
        seen = []
        store = PgDeliveryStore(database, name, on_duplicate=seen.append)
        store.start()
        made.append(store)
        return store, seen
    yield build
    for store in made:
        store.close()


def heard(store, n: int, event: int, call_id: str = "call-a") -> Delivery:
    """Event ``event`` of the call as one instance heard it: the payload is the same
    whichever instance maps it, its own delivery id ``n`` is not."""
    item = Delivery(n, HOOK, {"call_id": call_id, "event": event}, call_id,
                    "core-uuid-%d" % event, "channel_bridge",
                    "core-uuid-%d_%s" % (event, HOOK.id), T0 + event)
    store.added(item)
    return item


def test_two_instances_enqueue_each_hook_and_event_once_in_event_order(instances):
    a, a_duplicates = instances("host-a:/state")
    b, b_duplicates = instances("host-b:/state")
    a_ids, b_ids = iter(range(a.contents().next_id, 10**15)), \
        iter(range(b.contents().next_id, 10**15))
    assert a.contents().next_id != b.contents().next_id
    # b (the higher id range) hears event 1 first, a (its connection lagging) then
    # hears 1 to 3 and is first for 2 and 3: the lane is in event order, not id order
    heard(b, next(b_ids), 1)
    b.flush()
    for event in (1, 2, 3):
        heard(a, next(a_ids), event)
    a.flush()
    heard(b, next(b_ids), 2), heard(b, next(b_ids), 3)
    b.flush()
    for store in (a, b):
        rows = store.lane(HOOK.id, "call-a", 100)
        assert [row.event_id for row in rows] == ["core-uuid-1", "core-uuid-2", "core-uuid-3"]
        assert [row.payload["event"] for row in rows] == [1, 2, 3]
        assert rows[0].id > rows[1].id         # b's delivery of event 1, then a's
    assert [d.event_id for d in a_duplicates] == ["core-uuid-1"]
    assert [d.event_id for d in b_duplicates] == ["core-uuid-2", "core-uuid-3"]
    assert (a.duplicates, b.duplicates) == (1, 2)
    # each resumes its own (after a restart): b event 1, a events 2 and 3
    assert (a.contents().pending, b.contents().pending) == (2, 1)


def test_a_reconciled_create_or_destroy_never_doubles_the_real_one(instances):
    """a heard the call's real create and destroy; b, restarted meanwhile, knows the
    call only from the saved open calls and reconciles it: its creates and destroys
    (other event_ids, ``reconciled: true``) are the call's second ones, and dropped.
    A second bridge of the same call is a new event and is enqueued."""
    a, _ = instances("host-a:/state")
    b, b_duplicates = instances("host-b:/state")

    ids = {a: iter(range(a.contents().next_id, 10**15)),
           b: iter(range(b.contents().next_id, 10**15))}

    def event(store, hook_event: str, event_id: str, **extra) -> Delivery:
        item = Delivery(next(ids[store]), HOOK,
                        {"call_id": "call-r", "switch": "sw1", "hook_event": hook_event,
                         **extra}, "call-r", event_id, hook_event,
                        "%s_%s" % (event_id, HOOK.id), T0)
        store.added(item)
        return item

    for hook_event, seq in (("channel_create", 1), ("channel_bridge", 2),
                            ("channel_destroy", 3)):
        event(a, hook_event, "core-%d" % seq)
    a.flush()
    event(b, "channel_create", "core-reconciled-channel_create-call-r", reconciled=True)
    event(b, "channel_destroy", "core-reconciled-destroy-call-r", reconciled=True)
    event(b, "channel_bridge", "core-4")        # bridged again: FreeSWITCH sends another
    b.flush()
    assert sorted(d.hook_event for d in b_duplicates) == ["channel_create", "channel_destroy"]
    rows = a.lane(HOOK.id, "call-r", 100)
    assert [(row.hook_event, row.event_id) for row in rows] == [
        ("channel_create", "core-1"), ("channel_bridge", "core-2"),
        ("channel_destroy", "core-3"), ("channel_bridge", "core-4")]
    assert not any(row.payload.get("reconciled") for row in rows)


def test_a_duplicates_changes_and_attempts_are_not_recorded(instances):
    a, _ = instances("host-a:/state")
    b, b_duplicates = instances("host-b:/state")
    first = heard(a, a.contents().next_id, 1)
    a.flush()
    late = heard(b, b.contents().next_id, 1)
    b.flush()
    assert b_duplicates == [late]
    # as the queue records an attempt: its record, then the delivery's change
    b.attempted(AttemptRecord(HOOK.account_id, late.id, late.webhook_id, HOOK.id,
                              late.event_id, late.call_id, late.hook_event, HOOK.uri, "POST",
                              1, "success", "", 200, "", 0, T0 + 9))
    late.state, late.finished, late.attempts = DELIVERED, T0 + 9, 1
    b.changed(late)
    b.flush()
    [row] = a.lane(HOOK.id, "call-a", 10)           # a's delivery, untouched
    assert (row.id, row.attempts) == (first.id, 0)
    assert a.attempts_page(HOOK.account_id, None, 10, None).attempts == []


def test_copies_of_an_event_are_not_held_back_by_its_key(instances):
    a, duplicates = instances("host-a:/state")
    original = heard(a, 1, 1)
    original.state, original.finished = DELIVERED, T0 + 5
    a.changed(original)
    [window] = a.window(HOOK.id, 0, T0 + 100, 10)
    a.insert_copies([DeliveryRow(2, HOOK.id, HOOK.account_id, window.call_id,
                                 window.event_id, window.hook_event, window.webhook_id,
                                 window.payload, T0 + 50, trigger=REPLAY)])
    [copy] = a.lane(HOOK.id, "call-a", 10)
    assert (copy.id, copy.event_id, copy.trigger) == (2, "core-uuid-1", REPLAY)
    assert duplicates == []


def test_the_queue_delivers_through_postgresql_end_to_end(receiver, queues, database):
    from eslhook.pg.deliveries import PgDeliveryStore
    hook = make_hook(receiver.url("/hook"), format="json")
    config = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0,
                            max_in_flight=8, buffer_size=1000)
    store = PgDeliveryStore(database, "host-a:/state")
    queue = queues(config, store=store)
    for n in range(1, 31):
        assert queue.submit(hook, {"call_id": "call-%d" % (n % 3), "event_id": "e-%d" % n,
                                   "hook_event": "channel_bridge", "n": n})
    assert queue.wait_idle(10), queue.stats
    got = receiver.wait_for(30, timeout=5)
    for call in range(3):
        sent = [r.json["n"] for r in got if r.json["call_id"] == "call-%d" % call]
        assert sent == sorted(sent) and len(sent) == 10
    queue.stop(timeout=5)
    with database.connection() as connection:
        states = connection.execute("SELECT state, count(*) FROM deliveries "
                                    "GROUP BY state").fetchall()
        logged = connection.execute("SELECT count(*), min(result), max(result) "
                                    "FROM attempts").fetchone()
    assert states == [(DELIVERED, 30)]
    assert tuple(logged) == (30, "success", "success")
    assert json.loads(got[0].body)["event_id"].startswith("e-")
