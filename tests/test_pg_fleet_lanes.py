"""Lanes claimed across instances (fleet mode): two DeliveryQueues on one PostgreSQL,
each with its own store and its own HTTP sender (its User-Agent names it at the real
receiver), both submitting the same (hook, event)s as two instances hearing one
switch.  Each lane is delivered by the instance holding its lease, once, in order;
an instance that dies (its greenlets killed, nothing closed: kill -9 in one process)
has its lanes taken over after the lease."""

from __future__ import annotations

import time
from collections import defaultdict

import gevent
import pytest
from gevent.event import Event
from helpers import make_hook, wait_until

from eslhook.config import DeliveryConfig, StorageConfig
from eslhook.delivery.http import HttpSender
from eslhook.delivery.queue import DeliveryQueue
from eslhook.supervise import Supervisor

CONFIG = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0, max_in_flight=4,
                        buffer_size=1000)
EVENTS = 3                          # per call


@pytest.fixture
def database(pg_dsn):
    from eslhook.pg.database import open_database
    opened = open_database(StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=6))
    yield opened
    opened.close()


class Instance:
    """One eslhook instance: its store, queue, sender and supervisor."""

    def __init__(self, dsn: str, name: str, lease: float, renew: float, sender=None):
        from eslhook.pg.database import open_database
        from eslhook.pg.deliveries import PgDeliveryStore
        self.name = name
        self.database = open_database(StorageConfig(backend="postgresql", dsn=dsn,
                                                    pool_size=4))
        self.store = PgDeliveryStore(self.database, name, lease_seconds=lease, renew_seconds=renew)
        self.supervisor = Supervisor()
        self.sender = sender or HttpSender(CONFIG)
        self.queue = DeliveryQueue(CONFIG, self.sender, store=self.store,
                                   user_agent=name)
        self.queue.start(self.supervisor)
        self.alive = True

    def hear(self, hook, call: int, events) -> None:
        for event in events:
            assert self.queue.submit(hook, {"call_id": "call-%d" % call,
                                            "event_id": "call-%d-event-%d" % (call, event),
                                            "hook_event": "channel_bridge", "n": event})

    def crash(self) -> None:
        """As kill -9: every greenlet ends where it is; nothing is committed or released."""
        self.supervisor.close()
        for group in (self.queue._workers, self.queue._group, self.store._group):
            group.kill(block=True, timeout=2)
        for lane in self.queue._lanes:
            if lane.timer is not None:
                lane.timer.close()
        self.alive = False

    def stop(self) -> None:
        if self.alive:
            self.queue.stop(timeout=2)
            self.alive = False
        self.sender.close()
        self.database.close()


@pytest.fixture
def fleet(pg_dsn, database):
    made: list[Instance] = []

    def build(name: str, lease: float = 60.0, renew: float = 30.0, sender=None) -> Instance:
        made.append(Instance(pg_dsn, name, lease, renew, sender))
        return made[-1]
    yield build
    for instance in made:
        instance.stop()


def by_call(requests) -> dict[str, list]:
    calls = defaultdict(list)
    for request in requests:
        calls[request.json["call_id"]].append(request)
    return calls


def assert_once_in_order(requests, calls: int) -> None:
    """Each (call, event) arrived, more than once only with the same webhook-id, in event
    order: the first arrivals, and those of each instance (the instance that took a lane
    over sends again what the dead one's commits had not recorded as delivered)."""
    got = by_call(requests)
    assert sorted(got) == sorted("call-%d" % call for call in range(calls))
    for call_id, sent in got.items():
        events = [r.json["n"] for r in sent]
        assert sorted(set(events)) == list(range(1, EVENTS + 1)), (call_id, events)
        first = list(dict.fromkeys(events))
        assert first == sorted(first), (call_id, events)
        for name in {r.header("user-agent") for r in sent}:
            own = [r.json["n"] for r in sent if r.header("user-agent") == name]
            assert own == sorted(own), (call_id, name, own)
        ids = defaultdict(set)
        for r in sent:
            ids[r.json["event_id"]].add(r.header("webhook-id"))
        assert all(len(webhook_ids) == 1 for webhook_ids in ids.values()), ids


def lease_left(database, owner: str) -> float:
    """Seconds until the first of the owner's leases expires (the database's clock)."""
    with database.connection() as connection:
        row = connection.execute("SELECT extract(epoch FROM min(expires_at) - now()) "
                                 "FROM lanes WHERE owner = %s", (owner,)).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])


def listeners(database) -> int:
    """Sessions LISTENing for lane notices (each instance's lane listener)."""
    with database.connection() as connection:
        row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND query "
                                 "LIKE 'LISTEN eslhook_lanes%%'").fetchone()
    return int(row[0])


def pending(database) -> int:
    with database.connection() as connection:
        row = connection.execute("SELECT count(*) FROM deliveries "
                                 "WHERE state = 'pending'").fetchone()
    return int(row[0])


def test_each_lane_is_delivered_once_by_the_instance_holding_its_lease(
        receiver, fleet, database):
    hook = make_hook(receiver.url("/hook"), format="json")
    a, b = fleet("instance-a"), fleet("instance-b")
    first = {call: (a, b) if call % 2 else (b, a) for call in range(12)}
    for call, (leader, follower) in first.items():
        if call % 3 == 0:
            # the follower's connection lags for event 1 only, then overtakes: events 2
            # and 3 are inserted by the follower into the leader's lane
            leader.hear(hook, call, [1])
            leader.store.flush()
            follower.hear(hook, call, range(1, EVENTS + 1))
            follower.store.flush()
            leader.hear(hook, call, range(2, EVENTS + 1))
        else:
            leader.hear(hook, call, range(1, EVENTS + 1))
            leader.store.flush()
            follower.hear(hook, call, range(1, EVENTS + 1))
    for instance in (a, b):
        instance.store.flush()
    got = receiver.wait_for(12 * EVENTS, timeout=10)
    for instance in (a, b):
        assert instance.queue.wait_idle(5), instance.queue.stats
    gevent.sleep(0.2)
    assert len(receiver.requests) == 12 * EVENTS         # nothing delivered twice
    assert_once_in_order(got, 12)
    for call_id, sent in by_call(got).items():
        leader = first[int(call_id.split("-")[1])][0]
        assert {r.header("user-agent") for r in sent} == {leader.name}, call_id
    a.store.flush(), b.store.flush()
    assert pending(database) == 0
    assert a.store.duplicates + b.store.duplicates == 12 * EVENTS


class HangingSender:
    """Lets ``passing`` requests through, then hangs every send (never answered)."""

    def __init__(self, passing: int):
        self._sender = HttpSender(CONFIG)
        self._passing = passing
        self.hung = Event()

    def send(self, request, extra_headers=None):
        if self._passing <= 0:
            self.hung.set()
            Event().wait()            # until the instance is killed
        self._passing -= 1
        return self._sender.send(request, extra_headers)

    def close(self) -> None:
        self._sender.close()


def test_a_dead_instances_lanes_are_taken_over_after_its_lease(receiver, fleet, database):
    hook = make_hook(receiver.url("/hook"), format="json")
    lease = 3.0               # long beside renew=0.2: a live instance never loses one
    hanging = HangingSender(passing=4)
    a = fleet("instance-a", lease=lease, renew=0.2, sender=hanging)
    b = fleet("instance-b", lease=lease, renew=0.2)
    for call in range(6):                 # a hears every event first: all its lanes
        a.hear(hook, call, range(1, EVENTS + 1))
        a.store.flush()
        b.hear(hook, call, [1])
    b.store.flush()
    assert hanging.hung.wait(5)
    receiver.wait_for(4, timeout=5)       # what a sent before it hung has arrived
    a.crash()
    expires = time.monotonic() + lease_left(database, "instance-a")
    delivered_by_a = 4
    for call in range(6):                 # b hears the rest of a's calls after a died
        b.hear(hook, call, range(2, EVENTS + 1))
    b.hear(hook, 6, range(1, EVENTS + 1))    # a call that starts and ends while a is gone
    got = receiver.wait_for(7 * EVENTS, timeout=10)
    assert b.queue.wait_idle(5), b.queue.stats
    gevent.sleep(0.2)
    # a's last answers may not have been committed: b sends those again, same webhook-id
    assert_once_in_order(receiver.requests, 7)
    assert 7 * EVENTS <= len(receiver.requests) <= 7 * EVENTS + 4
    taken_over = [r for r in got[delivered_by_a:] if r.json["call_id"] != "call-6"]
    assert {r.header("user-agent") for r in got[:delivered_by_a]} == {"instance-a"}
    assert {r.header("user-agent") for r in got[delivered_by_a:]} == {"instance-b"}
    assert taken_over and min(r.arrived for r in taken_over) >= expires - 0.05  # not before
    b.store.flush()
    assert pending(database) == 0


def test_a_replay_is_delivered_once_by_the_lanes_holder(receiver, fleet):
    hook = make_hook(receiver.url("/hook"), format="json")
    a, b = fleet("instance-a"), fleet("instance-b")     # renewals only when called here
    a.hear(hook, 0, range(1, EVENTS + 1))
    a.store.flush()
    b.hear(hook, 0, range(1, EVENTS + 1))
    originals = receiver.wait_for(EVENTS, timeout=5)
    assert a.queue.wait_idle(5) and b.queue.wait_idle(5)
    a.store.flush()          # a's deliveries finished in the database, for b's replay
    # b replays into the lane whose lease a still holds: a delivers the copies, once
    assert b.queue.replay(hook, 0, time.time() + 1) == EVENTS
    gevent.sleep(0.3)
    assert len(receiver.requests) == EVENTS               # not b
    a.store.renew_leases()                                # a's next renewal wakes the lane
    got = receiver.wait_for(2 * EVENTS, timeout=5)
    b.store.renew_leases()
    gevent.sleep(0.3)
    assert len(receiver.requests) == 2 * EVENTS
    copies = got[EVENTS:]
    assert [r.json["n"] for r in copies] == list(range(1, EVENTS + 1))
    assert [r.header("webhook-id") for r in copies] == \
        [r.header("webhook-id") for r in originals]
    assert {r.header("user-agent") for r in copies} == {"instance-a"}


class GatedSender:
    """Holds every send until ``gate`` is set (an instance paused mid-attempt)."""

    def __init__(self):
        self._sender = HttpSender(CONFIG)
        self.gate, self.waiting = Event(), Event()

    def send(self, request, extra_headers=None):
        self.waiting.set()
        self.gate.wait(10)
        return self._sender.send(request, extra_headers)

    def close(self) -> None:
        self._sender.close()


def test_a_lane_taken_over_from_a_live_instance_leaves_its_memory(receiver, fleet, database):
    """a holds call 0's lane, its first attempt stuck and events 2 and 3 in memory; its
    lease runs out (as when a is paused or cut off from the database past the lease)
    and b takes the lane over.  At a's next renewal the lane leaves a's memory: a's
    stuck attempt may still arrive (same webhook-id), its events 2 and 3 never do."""
    hook = make_hook(receiver.url("/hook"), format="json")
    gated = GatedSender()
    a = fleet("instance-a", sender=gated)         # renewals only when called here
    b = fleet("instance-b")
    a.hear(hook, 0, range(1, EVENTS + 1))
    a.store.flush()
    b.hear(hook, 0, range(1, EVENTS + 1))         # b heard them too, a second
    b.store.flush()
    assert gated.waiting.wait(5)
    # a read the lane back: its head in the stuck attempt, 2 and 3 resident behind it
    assert wait_until(lambda: a.queue.stats.resident == EVENTS, timeout=5)
    with database.connection() as connection:
        connection.execute("UPDATE lanes SET expires_at = now() - interval '1 second' "
                           "WHERE owner = 'instance-a'")
        connection.commit()
    b.store.renew_leases()                        # b takes the expired lane over
    got = receiver.wait_for(EVENTS, timeout=5)
    assert [r.json["n"] for r in got] == [1, 2, 3]
    a.store.renew_leases()                        # a learns it no longer holds it
    assert a.queue.stats.lanes_lost == 1 and a.queue.stats.resident == 0
    gated.gate.set()                              # a's stuck attempt goes out after all
    receiver.wait_for(EVENTS + 1, timeout=5)
    gevent.sleep(0.5)
    from_a = [r for r in receiver.requests if r.header("user-agent") == "instance-a"]
    assert [r.json["n"] for r in from_a] == [1]
    assert from_a[0].header("webhook-id") == got[0].header("webhook-id")
    assert len(receiver.requests) == EVENTS + 1
    assert b.queue.wait_idle(5)
    b.store.flush(), a.store.flush()
    assert pending(database) == 0


def test_rows_another_instance_adds_to_a_held_lane_go_at_once_not_at_the_next_renewal(
        receiver, fleet, database):
    """b inserts events 2 and 3 into the lane a holds (a never hears them: its switch
    connection dropped).  a's renewals are 30 s apart here: the NOTIFY of b's commit
    is what wakes the lane, so both arrive within the wait, from a, in order."""
    hook = make_hook(receiver.url("/hook"), format="json")
    a, b = fleet("instance-a"), fleet("instance-b")
    a.hear(hook, 0, [1])
    a.store.flush()
    assert receiver.wait_for(1, timeout=5)
    assert wait_until(lambda: listeners(database) >= 2, timeout=10)   # a's and b's
    b.hear(hook, 0, range(1, EVENTS + 1))
    b.store.flush()
    got = receiver.wait_for(EVENTS, timeout=5)     # a's next renewal is 30 s away
    assert [r.json["n"] for r in got] == [1, 2, 3]
    assert {r.header("user-agent") for r in got} == {"instance-a"}


def test_a_lane_with_nothing_pending_is_not_taken_for_lost(receiver, fleet):
    """A lane reading back (or ending) while a renewal releases its lease, since the
    database has nothing pending for it, was not taken over: nothing is counted lost."""
    a = fleet("instance-a")
    a.queue._owned([("no-such-hook", "call-x")])     # woken: reading back, nothing there
    assert a.queue._lanes.get(("no-such-hook", "call-x")) is not None
    a.store.renew_leases()
    assert a.queue.stats.lanes_lost == 0


def test_an_event_an_instance_heard_first_for_a_call_it_joined_late_waits_for_earlier_ones(
        receiver, fleet):
    """b joined the call late: it hears the answer (sequence 20) but never the create
    (10), and commits first, so b holds the lane.  Held at submit (the bridge holds an
    event of a call it never saw begin), the answer waits; a's create, committed
    meanwhile, goes first: the lane is in sequence order, not commit order."""
    hook = make_hook(receiver.url("/hook"), format="json")
    a, b = fleet("instance-a"), fleet("instance-b")

    def event(n: int, sequence: int) -> dict:
        return {"call_id": "call-j", "event_id": "core-%d" % sequence, "n": n,
                "hook_event": "channel_bridge", "sequence": sequence}
    assert b.queue.submit(hook, event(2, 20), hold_seconds=2.0)
    b.store.flush()
    gevent.sleep(0.3)                 # b's lane waits; a's commit of the create is late
    assert a.queue.submit(hook, event(1, 10))
    a.store.flush()
    got = receiver.wait_for(2, timeout=5)
    assert [r.json["n"] for r in got] == [1, 2]
    assert {r.header("user-agent") for r in got} == {"instance-b"}   # the lane's holder
    # without the hold the answer would have gone at once, before the create existed
