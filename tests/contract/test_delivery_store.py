"""The delivery store contract (eslhook/delivery/store.py), run against every backend
in ``store_backends.DELIVERY_BACKENDS``: written against the interface only."""

from __future__ import annotations

import json
import random

import gevent
import pytest
from helpers import wait_until
from store_backends import (
    ACME, DELIVERY_BACKENDS, OTHER, backend_fixture, numbered_hook)

from eslhook.delivery.rows import (
    ATTEMPT_FIELDS, DELIVERED, DROPPED, FAILED, AttemptFilter, AttemptRecord, Delivery,
    DeliveryRow)
from eslhook.delivery.store import DeliveryStoreError, DeliveryStoreUnusable

HOOK, OTHER_HOOK = numbered_hook(1), numbered_hook(2, account_id=OTHER)
T0 = 1_700_000_000.0


backend = backend_fixture(DELIVERY_BACKENDS)


@pytest.fixture
def store(backend):
    opened = backend.open()
    opened.start()
    return opened


def delivery(n: int, hook=HOOK, call_id: str | None = "call-a", created: float = T0) -> Delivery:
    return Delivery(n, hook, {"call_id": call_id, "n": n}, call_id, "event-%d" % n,
                    "channel_bridge", "msg_%d" % n, created + n)


def record(d: Delivery, attempt: int = 1, result: str = "failure",
           timestamp: float = T0) -> AttemptRecord:
    return AttemptRecord(d.hook.account_id, d.id, d.webhook_id, d.hook.id, d.event_id,
                         d.call_id, d.hook_event, d.hook.uri, "POST", attempt, result,
                         "timeout", None, "", 1, timestamp)


def retry_later(store, item: Delivery, attempts: int, next_attempt: float) -> None:
    item.attempts, item.next_attempt = attempts, next_attempt
    store.changed(item)


def finish(store, item: Delivery, state: str = DELIVERED, when: float = T0 + 100) -> None:
    item.state, item.finished = state, when
    store.changed(item)


def lane_ids(store, hook=HOOK, call_id="call-a", limit: int = 100) -> list[int]:
    return [row.id for row in store.lane(hook.id, call_id, limit)]


def reopened(backend, store):
    store.close()
    again = backend.open()
    again.start()
    return again


def test_a_fresh_store_is_empty(store):
    contents = store.contents()
    assert (contents.next_id, contents.pending, contents.lanes) == (1, 0, {})
    assert store.lane(HOOK.id, "call-a", 10) == []
    assert (store.backlog, store.not_durable, store.failure) == (0, 0, None)
    assert store.location


def test_lanes_come_back_in_submission_order_each_apart(store):
    for n in range(1, 21):
        store.added(delivery(n, call_id="call-a" if n % 3 else "call-b"))
    store.added(delivery(21, hook=OTHER_HOOK))
    store.added(delivery(22, call_id=None))
    assert lane_ids(store) == [n for n in range(1, 21) if n % 3]
    assert lane_ids(store, call_id="call-b") == [3, 6, 9, 12, 15, 18]
    assert lane_ids(store, hook=OTHER_HOOK) == [21]
    assert lane_ids(store, call_id=None) == [22]
    head = store.lane(HOOK.id, "call-a", 100)[0]
    assert (head.hook_id, head.call_id, head.event_id, head.webhook_id, head.payload,
            head.created, head.attempts) == (HOOK.id, "call-a", "event-1", "msg_1",
                                             {"call_id": "call-a", "n": 1}, T0 + 1, 0)


def test_a_limited_lane_read_gives_at_least_the_limit_from_the_head(store):
    for n in range(1, 11):
        store.added(delivery(n))
    first = lane_ids(store, limit=4)
    assert len(first) >= 4 and first == list(range(1, len(first) + 1))


def test_reads_see_changes_handed_over_before_them(store):
    items = [delivery(n) for n in range(1, 5)]
    for item in items:
        store.added(item)
    retry_later(store, items[0], 2, T0 + 60)
    finish(store, items[1])
    rows = store.lane(HOOK.id, "call-a", 100)
    assert [row.id for row in rows] == [1, 3, 4]
    assert (rows[0].attempts, rows[0].next_attempt) == (2, T0 + 60)


def test_everything_handed_over_before_close_is_there_when_reopened(backend, store):
    items = [delivery(n, call_id="call-%d" % (n % 2)) for n in range(1, 7)]
    for item in items:
        store.added(item)
    retry_later(store, items[0], 1, T0 + 30)
    finish(store, items[1], FAILED)
    store.attempted(record(items[0]))
    store = reopened(backend, store)
    contents = store.contents()
    assert (contents.next_id, contents.pending) == (7, 5)
    assert contents.lanes == {(HOOK.id, "call-1"): T0 + 30, (HOOK.id, "call-0"): None}
    assert lane_ids(store, call_id="call-1") == [1, 3, 5]
    assert lane_ids(store, call_id="call-0") == [4, 6]
    page = store.attempts_page(ACME, None, 10, None)
    assert [(a["hook_id"], a["event_id"], a["attempt"]) for a in page.attempts] == [
        (HOOK.id, "event-1", 1)]


def test_ending_a_lane_finishes_its_pending_deliveries_only(backend, store):
    for n in range(1, 5):
        store.added(delivery(n))
    store.added(delivery(5, call_id="call-b"))
    assert store.end_lane(HOOK.id, "call-a", DROPPED) == 4
    assert lane_ids(store) == [] and lane_ids(store, call_id="call-b") == [5]
    assert store.end_lane(HOOK.id, "call-a", DROPPED) == 0
    store = reopened(backend, store)
    assert store.contents().pending == 1 and lane_ids(store) == []


def test_the_attempt_log_pages_newest_first_per_account_and_hook(store):
    mine = [delivery(n) for n in range(1, 8)]
    theirs = delivery(8, hook=OTHER_HOOK)
    for n, item in enumerate(mine + [theirs]):
        store.added(item)
        store.attempted(record(item, timestamp=T0 + n))
    first = store.attempts_page(ACME, None, 3, None)
    assert [a["event_id"] for a in first.attempts] == ["event-7", "event-6", "event-5"]
    assert first.next_start_key is not None
    second = store.attempts_page(ACME, None, 3, int(first.next_start_key))
    assert [a["event_id"] for a in second.attempts] == ["event-4", "event-3", "event-2"]
    last = store.attempts_page(ACME, None, 3, int(second.next_start_key))
    assert [a["event_id"] for a in last.attempts] == ["event-1"]
    assert last.next_start_key is None
    assert [a["event_id"] for a in store.attempts_page(OTHER, None, 50, None).attempts] == [
        "event-8"]
    assert store.attempts_page(ACME, OTHER_HOOK.id, 50, None).attempts == []
    shown = first.attempts[0]
    assert isinstance(shown["id"], str) and set(shown) == {"id", *ATTEMPT_FIELDS}
    assert {k: shown[k] for k in ("hook_id", "call_id", "uri", "method", "result",
                                  "reason", "retries_left", "timestamp")} == {
        "hook_id": HOOK.id, "call_id": "call-a", "uri": HOOK.uri, "method": "POST",
        "result": "failure", "reason": "timeout", "retries_left": 1, "timestamp": T0 + 6}


def test_the_attempt_log_filters_by_time_call_and_result_and_pages_within_them(store):
    items = [delivery(n, call_id="call-%d" % (n % 2)) for n in range(1, 9)]
    for n, item in enumerate(items):
        store.added(item)
        store.attempted(record(item, result="success" if n % 3 == 0 else "failure",
                               timestamp=T0 + 10 * n))

    def events(page_size=50, start_key=None, **only):
        page = store.attempts_page(ACME, None, page_size, start_key, AttemptFilter(**only))
        return [a["event_id"] for a in page.attempts], page.next_start_key

    # both bounds included, as Crossbar's created_from / created_to
    assert events(created_from=T0 + 20, created_to=T0 + 50)[0] == [
        "event-6", "event-5", "event-4", "event-3"]
    assert events(created_to=T0 + 10)[0] == ["event-2", "event-1"]
    assert events(call_id="call-0")[0] == ["event-8", "event-6", "event-4", "event-2"]
    assert events(result="success")[0] == ["event-7", "event-4", "event-1"]
    assert events(call_id="call-1", result="failure")[0] == ["event-5", "event-3"]
    assert events(call_id="nobody")[0] == []
    first, key = events(page_size=2, call_id="call-0")
    assert first == ["event-8", "event-6"] and key is not None
    assert events(page_size=2, start_key=int(key), call_id="call-0") == (
        ["event-4", "event-2"], None)


def test_an_attempt_keeps_its_trigger_request_and_names_its_delivery(backend, store):
    item = delivery(1)
    store.added(item)
    store.attempted(record(item)._replace(
        trigger="resend", request_headers='{"X-Hook-ID": "h", "Authorization": "[redacted]"}',
        request_body='{"n": 1}', request_body_size=9000))
    store = reopened(backend, store)
    shown = store.attempts_page(ACME, None, 10, None).attempts[0]
    assert (shown["trigger"], shown["request_body"], shown["request_body_size"]) == (
        "resend", '{"n": 1}', 9000)
    assert json.loads(shown["request_headers"]) == {"X-Hook-ID": "h",
                                                    "Authorization": "[redacted]"}
    sent = store.attempted_delivery(ACME, HOOK.id, int(shown["id"]))
    assert sent is not None and sent.webhook_id == "msg_1"
    assert json.loads(sent.payload) == {"call_id": "call-a", "n": 1}
    # another account's or another hook's attempt id names nothing
    assert store.attempted_delivery(OTHER, HOOK.id, int(shown["id"])) is None
    assert store.attempted_delivery(ACME, OTHER_HOOK.id, int(shown["id"])) is None
    assert store.attempted_delivery(ACME, HOOK.id, int(shown["id"]) + 1) is None


def test_an_attempts_duration_comes_back_and_may_be_unknown(backend, store):
    first, second = delivery(1), delivery(2)
    store.added(first)
    store.added(second)
    store.attempted(record(first)._replace(duration_ms=1234.567))
    store.attempted(record(second))            # as recorded before durations were
    store = reopened(backend, store)
    shown = store.attempts_page(ACME, None, 10, None).attempts
    assert [(a["event_id"], a["duration_ms"]) for a in shown] == [
        ("event-2", None), ("event-1", 1234.567)]


def test_a_pending_copys_trigger_comes_back_with_its_lane(backend, store):
    store.insert_copies([DeliveryRow(5, HOOK.id, ACME, "call-a", None, None, "msg_5", "{}",
                                     T0, trigger="test")])
    store.added(delivery(6))
    store = reopened(backend, store)
    assert [(row.id, row.trigger) for row in store.lane(HOOK.id, "call-a", 10)] == [
        (5, "test"), (6, "event")]


def test_a_replay_window_holds_finished_deliveries_and_copies_are_pending(backend, store):
    items = [delivery(n, call_id="call-%d" % (n % 2)) for n in range(1, 7)]
    for item in items:
        store.added(item)
    for item in items[:5]:                    # 6 stays pending: not in a window
        finish(store, item)
    window = store.window(HOOK.id, T0 + 2, T0 + 6, 100)    # created T0+2 .. T0+5
    assert [w.webhook_id for w in window] == ["msg_2", "msg_3", "msg_4", "msg_5"]
    assert json.loads(window[0].payload) == {"call_id": "call-0", "n": 2}
    assert [w.webhook_id for w in store.window(HOOK.id, T0 + 2, T0 + 6, 2)] == [
        "msg_2", "msg_3"]
    copies = [DeliveryRow(10 + i, HOOK.id, HOOK.account_id, w.call_id, w.event_id,
                          w.hook_event, w.webhook_id, w.payload, T0 + 200)
              for i, w in enumerate(window)]
    store.insert_copies(copies)
    assert lane_ids(store, call_id="call-0") == [6, 10, 12]
    store = reopened(backend, store)
    assert lane_ids(store, call_id="call-1") == [11, 13]
    assert store.contents().next_id == 14


def test_pruning_drops_old_history_and_keeps_what_is_pending(store):
    old = [delivery(n) for n in range(1, 4)]
    for item in old:
        store.added(item)
        store.attempted(record(item, timestamp=T0))
    finish(store, old[0], when=T0)
    store.attempted(record(old[1], attempt=2, timestamp=T0 + 1000))
    attempts, finished = store.prune(T0 + 500)
    assert (attempts, finished) == (3, 1)
    assert lane_ids(store) == [2, 3]
    assert [a["attempt"] for a in store.attempts_page(ACME, None, 50, None).attempts] == [2]
    assert store.window(HOOK.id, 0, T0 + 10_000, 100) == []


def test_concurrent_greenlets_recording_and_reading_keep_every_lane_whole(backend, store):
    ids = iter(range(1, 10_000))
    rng = random.Random(7)
    seen_out_of_order = []

    def producer(call_id):
        for _ in range(40):
            store.added(delivery(next(ids), call_id=call_id))
            if rng.random() < 0.3:
                gevent.sleep(0)

    def reader(call_id):
        for _ in range(20):
            got = lane_ids(store, call_id=call_id, limit=1000)
            if got != sorted(got):
                seen_out_of_order.append(got)
            gevent.sleep(0.001)

    calls = ["call-%d" % n for n in range(5)]
    workers = [gevent.spawn(producer, c) for c in calls] + [gevent.spawn(reader, c)
                                                             for c in calls]
    gevent.joinall(workers, timeout=30, raise_error=True)
    assert seen_out_of_order == []
    in_memory = {c: lane_ids(store, call_id=c, limit=1000) for c in calls}
    assert sum(map(len, in_memory.values())) == 200
    store = reopened(backend, store)
    assert {c: lane_ids(store, call_id=c, limit=1000) for c in calls} == in_memory
    assert store.contents().pending == 200


def test_while_commits_fail_nothing_pending_is_lost_and_commits_resume(backend, store):
    for n in range(1, 4):
        store.added(delivery(n))
    assert wait_until(lambda: store.backlog == 0, timeout=5)
    backend.fill_up(store)
    for n in range(4, 40):
        store.added(delivery(n, hook=HOOK if n % 2 else OTHER_HOOK))
    assert wait_until(lambda: store.failure is not None, timeout=5)
    assert store.not_durable > 0
    assert lane_ids(store) == [1, 2, 3] + list(range(5, 40, 2))   # served from memory
    assert lane_ids(store, hook=OTHER_HOOK) == list(range(4, 40, 2))
    with pytest.raises(DeliveryStoreError):
        store.insert_copies([DeliveryRow(100 + n, HOOK.id, ACME, "call-z", None, None,
                                         "msg_x%d" % n, '{"pad": "%s"}' % ("x" * 4000),
                                         T0) for n in range(50)])
    backend.free_up(store)
    assert wait_until(lambda: store.failure is None and store.not_durable == 0, timeout=5)
    store = reopened(backend, store)
    assert store.contents().pending == 39
    assert lane_ids(store) == [1, 2, 3] + list(range(5, 40, 2))
    assert lane_ids(store, hook=OTHER_HOOK) == list(range(4, 40, 2))


def test_a_store_that_cannot_be_used_says_so_when_opened(backend):
    backend.corrupt()
    with pytest.raises(DeliveryStoreUnusable) as raised:
        backend.open().contents()
    assert str(raised.value)

