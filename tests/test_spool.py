"""Delivery guarantees with the durable spool: real receivers on loopback, real SQLite
files, a real ``eslhook run`` killed with SIGKILL."""

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import gevent
import helpers
from helpers import free_port, make_hook
import pytest
import yaml
from receiver import Receiver, Reply

from eslhook.config import DeliveryConfig
from eslhook.fakeswitch import FakeSwitch
from eslhook.hooks.model import Hook

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
OTHER_ACCOUNT = "9a3e5d7c1b2f4e6a8c0d2e4f6a8b0c1d"
EVENTS = ("channel_create", "channel_answer", "channel_destroy")


def spool_hook(uri, **fields) -> Hook:
    """A json hook with a fresh id and ten retries: the spool's tests outlive retries."""
    return make_hook(uri, **{"id": uuid.uuid4().hex, "name": "h", "format": "json",
                             "retries": 10, **fields})


def config(**fields) -> DeliveryConfig:
    base = dict(timeout_seconds=2.0, connect_timeout_seconds=1.0, max_in_flight=16,
                retry_schedule_seconds=(0.05, 0.1, 0.2), jitter=0.1, circuit_open_seconds=0.2)
    base.update(fields)
    return DeliveryConfig(**base)


def successes(receiver):
    return [r for r, reply in zip(receiver.requests, receiver.replies) if reply == 200]


class Flaky:
    """A responder: 503 while ``down``, else 200; remembers what it answered."""

    def __init__(self, receiver, down=True, delay=0.0):
        self.down, self.delay = down, delay
        receiver.replies = []
        self.receiver = receiver
        receiver.responder = self

    def __call__(self, request):
        status = 503 if self.down else 200
        self.receiver.replies.append(status)
        return Reply(status, delay=self.delay)


def assert_each_call_in_order(requests):
    per_call = defaultdict(list)
    for request in sorted(requests, key=lambda r: r.arrived):
        per_call[request.json["call_id"]].append(EVENTS.index(request.json["hook_event"]))
    for call, order in per_call.items():
        assert order == sorted(order), (call, order)
    return per_call


def test_a_receiver_down_then_up_gets_everything_each_call_in_order(receiver, queues):
    flaky = Flaky(receiver)
    queue = queues(config())
    hook = spool_hook(receiver.url("/"))
    calls = ["call-%d" % n for n in range(10)]
    for event in EVENTS:
        for call in calls:
            assert queue.submit(hook, {"call_id": call, "hook_event": event})
    assert helpers.wait_until(lambda: len(receiver.requests) >= 20, timeout=10)
    assert queue.stats.lanes_waiting > 0              # retries wait in the spool
    flaky.down = False
    assert queue.wait_idle(15), queue.stats
    delivered = successes(receiver)
    assert sorted((r.json["call_id"], r.json["hook_event"]) for r in delivered) == sorted(
        (c, e) for c in calls for e in EVENTS)
    per_call = assert_each_call_in_order(delivered)
    assert all(order == [0, 1, 2] for order in per_call.values())
    # strictly in order: no later event of a call was even tried before the earlier succeeded
    assert_each_call_in_order(receiver.requests)


def test_retry_after_is_honoured_and_404_is_not_retried(receiver, queues):
    receiver.script(Reply.retry_after(429, 1), Reply(404))
    queue = queues(config(retry_schedule_seconds=(0.01,)))
    hook = spool_hook(receiver.url("/"))
    assert queue.submit(hook, {"call_id": "a", "hook_event": "channel_create"})
    assert queue.submit(hook, {"call_id": "b", "hook_event": "channel_create"})
    assert queue.wait_idle(10)
    by_call = defaultdict(list)
    for request in receiver.requests:
        by_call[request.json["call_id"]].append(request.arrived)
    retried, once = sorted(by_call.values(), key=len, reverse=True)
    assert len(once) == 1 and len(retried) == 2        # the 404 went once
    assert retried[1] - retried[0] >= 0.95              # Retry-After: 1, not the 10 ms schedule


def test_a_stopped_queue_resumes_from_the_spool_in_order_with_the_same_ids(receiver, tmp_path,
                                                                         queues):
    spool = str(tmp_path / "state" / "delivery.sqlite3")
    flaky = Flaky(receiver)
    hook = spool_hook(receiver.url("/"))
    first = queues(config(retry_schedule_seconds=(0.3,)), spool_path=spool,
                   hook_lookup={hook.id: hook}.get)
    for event in EVENTS:
        for call in ("x", "y"):
            assert first.submit(hook, {"call_id": call, "hook_event": event,
                                       "event_id": "%s-%s" % (call, event)})
    receiver.wait_for(2, timeout=5)
    first.stop(timeout=0.1)
    assert first.stats.pending == 6
    tried = len(receiver.requests)
    flaky.down = False
    second = queues(config(), spool_path=spool, hook_lookup={hook.id: hook}.get)
    assert second.stats.pending == 6                  # resumed from the file
    assert second.wait_idle(10)
    resumed = receiver.requests[tried:]
    assert_each_call_in_order(resumed)
    assert sorted(r.header("webhook-id") for r in resumed if r.json["call_id"] == "x") == sorted(
        "x-%s_%s" % (e, hook.id) for e in EVENTS)
    assert second.stats.delivered == 6


def test_a_slow_receiver_does_not_delay_a_healthy_one(queues):
    slow, healthy = Receiver(), Receiver()
    try:
        slow.default_reply = Reply(delay=1.0)
        queue = queues(config(max_in_flight=8, max_connections_per_host=2))
        slow_hook, healthy_hook = spool_hook(slow.url("/")), spool_hook(healthy.url("/"))
        for n in range(10):                 # the slow one's deliveries are submitted first
            assert queue.submit(slow_hook, {"call_id": "s%d" % n, "hook_event": EVENTS[0]})
        for n in range(10):
            assert queue.submit(healthy_hook, {"call_id": "h%d" % n, "hook_event": EVENTS[0]})
        healthy.wait_for(10, timeout=5)
        first_slow_answer = slow.wait_for(1, timeout=5)[0].arrived + 1.0
        assert max(r.arrived for r in healthy.requests) < first_slow_answer
        assert slow.max_active <= 2                        # per-host limit
    finally:
        slow.stop()
        healthy.stop()


def test_a_failing_hosts_first_tries_wait_in_the_spool(queues):
    dead = "http://127.0.0.1:%d/" % free_port()
    queue = queues(config(circuit_failures=3, circuit_open_seconds=30, max_connections_per_host=1))
    hook = spool_hook(dead, retries=0)
    for n in range(20):
        assert queue.submit(hook, {"call_id": "c%d" % n, "hook_event": EVENTS[0]})
    assert helpers.wait_until(lambda: queue.stats.lanes_waiting == 17, timeout=5), queue.stats
    page = queue.attempts(ACCOUNT, page_size=100)
    assert [a["reason"] for a in page.attempts] == ["connection refused"] * 3
    assert queue.stats.pending == 17 and queue.stats.in_flight == 0


def test_410_disables_the_hook_and_holds_its_deliveries_until_resumed(receiver, queues):
    disabled = []
    receiver.script(Reply(410))
    hook = spool_hook(receiver.url("/"))
    state = {"hook": hook}
    queue = queues(config(), hook_lookup=lambda hook_id: state["hook"],
                   on_disable=lambda h, reason: disabled.append((h.id, reason)))
    for event in EVENTS:
        assert queue.submit(hook, {"call_id": "c", "hook_event": event})
    assert helpers.wait_until(lambda: disabled, timeout=5)
    assert disabled == [(hook.id, "gone (410)")]
    gevent.sleep(0.3)
    assert len(receiver.requests) == 1 and queue.stats.lanes_held == 1
    assert queue.stats.pending == 2          # answer and destroy wait for the hook
    assert queue.resume_hook(hook.id) == 1
    assert queue.wait_idle(5)
    assert [r.json["hook_event"] for r in receiver.requests] == list(EVENTS)


def test_attempt_log_pages_newest_first_per_account_and_replay_resends(receiver, queues):
    receiver.script(Reply(500, body=b"oops"))
    queue = queues(config())
    mine = spool_hook(receiver.url("/mine"))
    theirs = spool_hook(receiver.url("/theirs"), account_id=OTHER_ACCOUNT)
    started = time.time()
    for n in range(5):
        assert queue.submit(mine, {"call_id": "m%d" % n, "hook_event": EVENTS[0],
                                   "event_id": "e%d" % n})
    assert queue.submit(theirs, {"call_id": "t", "hook_event": EVENTS[0]})
    assert queue.wait_idle(10)
    pages, key = [], None
    for _ in range(10):
        page = queue.attempts(ACCOUNT, page_size=2, start_key=key)
        pages.append(page.attempts)
        key = page.next_start_key
        if key is None:
            break
    records = [r for page in pages for r in page]
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [int(r["id"]) for r in records] == sorted((int(r["id"]) for r in records),
                                                     reverse=True)
    assert {r["hook_id"] for r in records} == {mine.id}        # account-scoped
    failure = next(r for r in records if r["result"] == "failure")
    assert (failure["response_code"], failure["response_body"], failure["reason"],
            failure["retries_left"], failure["method"]) == (500, "oops", "bad response code",
                                                             10, "POST")
    assert len(queue.attempts(OTHER_ACCOUNT, theirs.id).attempts) == 1
    assert queue.attempts(ACCOUNT, theirs.id).attempts == []
    with pytest.raises(ValueError, match="start_key"):
        queue.attempts(ACCOUNT, start_key="x")
    before = len(receiver.requests)
    assert queue.replay(mine, started - 1, time.time() + 1) == 5
    assert queue.wait_idle(10)
    again = receiver.requests[before:]
    assert sorted(r.header("webhook-id") for r in again) == sorted(
        "e%d_%s" % (n, mine.id) for n in range(5))
    with pytest.raises(ValueError, match="since"):
        queue.replay(mine, 10, 5)


# -- end to end: a real `eslhook run`, killed with SIGKILL -------------------------------

def start_eslhook(config_path):
    return subprocess.Popen([sys.executable, "-m", "eslhook", "run", "--config", str(config_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def spooled_rows(path):
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as db:
        return db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]


def test_kill_9_with_pending_retries_then_restart_delivers_everything(tmp_path, receiver):
    flaky = Flaky(receiver)
    fake = FakeSwitch([], heartbeat_seconds=0.5)
    host, port = fake.start()
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "host": host, "port": port}],
        "accounts": [{"id": ACCOUNT, "name": "Acme"}], "default_account_id": ACCOUNT,
        "delivery": {"retry_schedule_seconds": [0.2], "jitter": 0.1,
                     "circuit_open_seconds": 0.2}}))
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "all", "hook": "all",
        "format": "json", "retries": 10, "uri": receiver.url("/all")}]}))
    spool = tmp_path / "state" / "delivery.sqlite3"
    calls = ["kill9-%d" % n for n in range(5)]
    process = start_eslhook(tmp_path / "eslhook.yaml")
    try:
        assert fake.wait_for_subscribers(1, timeout=20)
        for call in calls:
            for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
                more = [("Hangup-Cause", "NORMAL_CLEARING")] if name.endswith("COMPLETE") else []
                fake.publish_generated(name, [("Unique-ID", call), ("Call-Direction", "inbound"),
                                              ("Channel-Name", "sofia/internal/1000@x")] + more)
        # every event handed to delivery is in the spool file (committed), retries going on
        assert helpers.wait_until(lambda: spooled_rows(spool) >= 15, timeout=20)
        receiver.wait_for(5, timeout=10)
        process.kill()                                   # SIGKILL: no cleanup at all
        process.wait(timeout=10)
        assert not [r for r in receiver.replies if r == 200]
        flaky.down = False
        process = start_eslhook(tmp_path / "eslhook.yaml")
        expected = {(c, e) for c in calls for e in EVENTS}
        assert helpers.wait_until(lambda: expected <= {
            (r.json["call_id"], r.json["hook_event"]) for r in successes(receiver)}, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        fake.stop()
    delivered = [r for r in successes(receiver) if r.json["call_id"] in calls]
    assert_each_call_in_order(delivered)
    for call in calls:
        assert [r.json["sequence"] for r in delivered if r.json["call_id"] == call][:3] == [1, 2, 3]
    ids = defaultdict(set)
    for request in receiver.requests:          # duplicates, if any, carry the same webhook-id
        ids[request.json["call_id"], request.json["hook_event"]].add(request.header("webhook-id"))
    assert all(len(found) == 1 for found in ids.values())


def test_auto_disable_writes_hooks_yaml_announces_and_re_enable_delivers(tmp_path):
    from world import World
    w = World(tmp_path, extra={"delivery": {
        "timeout_seconds": 2, "retry_schedule_seconds": [0.1], "jitter": 0.1,
        "circuit_failures": 100, "disable_after_seconds": 0.4, "disable_after_failures": 3}})
    try:
        flaky = Flaky(w.receiver)
        failing = w.hook(ACCOUNT, "/failing", hook="channel_create", retries=10)
        notices = w.hook(ACCOUNT, "/notices", hook="webhook_disabled")
        w.write_hooks([failing, notices])
        w.receiver.responder = lambda r: (flaky(r) if r.path == "/failing" else Reply(200))
        w.start()
        w.call("held-call", "CHANNEL_CREATE", account_id=ACCOUNT)
        assert helpers.wait_until(lambda: any(r.path == "/notices" for r in w.receiver.requests),
                                  timeout=10)
        notice = next(r.json for r in w.receiver.requests if r.path == "/notices")
        assert (notice["hook_event"], notice["hook_id"], notice["disable_reason"]) == (
            "webhook_disabled", failing["id"], "too many failed attempts")
        stored = yaml.safe_load((tmp_path / "hooks.yaml").read_text())["webhooks"]
        entry = next(h for h in stored if h["id"] == failing["id"])
        assert (entry["enabled"], entry["disable_reason"]) == (False, "too many failed attempts")
        tried = len([r for r in w.receiver.requests if r.path == "/failing"])
        assert tried >= 3
        gevent.sleep(0.5)
        assert len([r for r in w.receiver.requests if r.path == "/failing"]) == tried  # held
        flaky.down = False
        entry["enabled"], entry["disable_reason"] = True, None     # re-enable by hand
        (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": stored}))
        assert helpers.wait_until(lambda: any(
            r.path == "/failing" and reply == 200
            for r, reply in zip([r for r in w.receiver.requests if r.path == "/failing"],
                                w.receiver.replies)), timeout=10)
        assert w.bridge.delivery.stats.pending == 0 or w.bridge.delivery.wait_idle(5)
    finally:
        w.close()


def test_a_batch_larger_than_one_statement_commits_every_row_and_the_latest_change(tmp_path):
    from eslhook.delivery.spool_sql import ROWS_PER_STATEMENT, Batch, SpoolDb
    from eslhook.delivery.rows import AttemptRecord, Delivery
    path = tmp_path / "spool.db"
    db = SpoolDb(str(path))
    hook = spool_hook("http://127.0.0.1:9/")
    count = ROWS_PER_STATEMENT * 2 + 7
    rows = [Delivery(i, hook, {"call_id": "c%d" % i, "n": i}, "c%d" % i, "e%d" % i,
                     "channel_create", "w%d" % i, 1000.0 + i).row() for i in range(1, count + 1)]
    db.apply(Batch(inserts=rows))
    # a retried batch can carry an older and a newer change of the same row: newer wins
    updates = [(1, 2000.0, "pending", None, i) for i in range(1, count + 1)]
    updates += [(2, None, "delivered", 3000.0, i) for i in range(1, count + 1, 2)]
    attempts = [AttemptRecord(ACCOUNT, i, "w%d" % i, hook.id, "e%d" % i, "c%d" % i,
                              "channel_create", hook.uri, "POST", 1, "failure", "timeout",
                              None, "", 3, 1500.0)
                for i in range(1, count + 1)]
    db.apply(Batch(updates=updates, attempts=attempts))
    db.close()
    with sqlite3.connect(path) as check:
        states = dict(check.execute("SELECT id, state FROM deliveries").fetchall())
        payload = check.execute("SELECT payload FROM deliveries WHERE id = 5").fetchone()[0]
        logged = check.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    assert len(states) == count and logged == count
    assert all(states[i] == ("delivered" if i % 2 else "pending") for i in states)
    assert json.loads(payload) == {"call_id": "c5", "n": 5}


def test_a_greenlet_killed_in_a_database_call_does_not_let_close_run_under_its_thread(tmp_path):
    # A stopping queue kills its pruner while the prune runs in a thread (here held up by
    # another connection's write lock, as by a slow disk). close() must wait for that
    # thread: closing the connection under it crashed the process (a segfault).
    from eslhook.delivery.spool import Spool
    path = tmp_path / "spool.db"
    spool = Spool(str(path))
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    pruner = gevent.spawn(spool.prune, time.time())
    gevent.sleep(0.2)                   # the prune now waits for the lock in its thread
    pruner.kill(block=False)
    gevent.spawn_later(0.3, locker.rollback)
    spool.close()
    locker.close()
    assert pruner.dead
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- the files in state_dir -------------------------------------------------------------

def modes(directory: Path) -> dict[str, str]:
    return {p.name: oct(p.stat().st_mode & 0o777) for p in [directory, *directory.iterdir()]}


def test_state_dir_is_0700_and_every_file_eslhook_writes_in_it_is_0600(ops_world):
    import os
    old_umask = os.umask(0o022)           # the usual umask: files 0644 unless made otherwise
    try:
        w = ops_world()
        w.write_hooks([w.hook("/all")])
        w.start()
        w.call(events=["CHANNEL_CREATE"])     # an open call: open-calls.json is written
        assert helpers.wait_until(lambda: len(w.receiver.requests) == 1)
        state = w.tmp / "state"
        assert helpers.wait_until(lambda: (state / "open-calls.json").exists(), timeout=5)
        assert modes(state) == {"state": "0o700", "delivery.sqlite3": "0o600",
                                "delivery.sqlite3-wal": "0o600", "delivery.sqlite3-shm": "0o600",
                                "open-calls.json": "0o600"}
    finally:
        os.umask(old_umask)


def test_a_state_dir_and_spool_files_an_older_version_left_readable_are_tightened(tmp_path):
    import os
    from eslhook.delivery.spool_sql import SpoolDb
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    path = state / "delivery.sqlite3"
    SpoolDb(str(path)).close()
    for name in ("delivery.sqlite3", "delivery.sqlite3-wal"):
        (state / name).touch()
        os.chmod(state / name, 0o644)
    db = SpoolDb(str(path))
    try:
        assert modes(state) == {"state": "0o700", "delivery.sqlite3": "0o600",
                                "delivery.sqlite3-wal": "0o600", "delivery.sqlite3-shm": "0o600"}
    finally:
        db.close()


# The spool's tables as the first releases made them (before trigger and the request
# and duration columns of the attempt log): a file left by one of them must open and
# keep its rows.
_FIRST_SCHEMA = """
CREATE TABLE deliveries (id INTEGER PRIMARY KEY, hook_id TEXT NOT NULL,
    account_id TEXT NOT NULL, call_id TEXT NOT NULL, event_id TEXT, hook_event TEXT,
    webhook_id TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL,
    attempts INTEGER NOT NULL, next_attempt REAL, state TEXT NOT NULL, finished REAL);
CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL,
    hook_id TEXT NOT NULL, delivery_id INTEGER NOT NULL, webhook_id TEXT NOT NULL,
    event_id TEXT, call_id TEXT, hook_event TEXT, uri TEXT NOT NULL, method TEXT NOT NULL,
    attempt INTEGER NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL,
    response_code INTEGER, response_body TEXT, retries_left INTEGER NOT NULL,
    timestamp REAL NOT NULL);
"""


def test_a_spool_from_before_the_request_columns_opens_and_keeps_its_rows(tmp_path):
    from eslhook.delivery.rows import AttemptFilter
    from eslhook.delivery.spool_sql import SpoolDb
    path = tmp_path / "spool.db"
    hook = spool_hook("http://127.0.0.1:9/")
    with sqlite3.connect(path) as old:
        old.executescript(_FIRST_SCHEMA)
        old.execute("INSERT INTO deliveries VALUES (1, ?, ?, 'c1', 'e1', 'channel_create', "
                    "'w1', '{\"call_id\": \"c1\"}', 1000.0, 1, 1010.0, 'pending', NULL)",
                    (hook.id, ACCOUNT))
        old.execute("INSERT INTO deliveries VALUES (2, ?, ?, 'c2', 'e2', 'channel_create', "
                    "'w2', '{\"call_id\": \"c2\"}', 1001.0, 1, NULL, 'delivered', 1002.0)",
                    (hook.id, ACCOUNT))
        old.execute("INSERT INTO attempts (account_id, hook_id, delivery_id, webhook_id, "
                    "event_id, call_id, hook_event, uri, method, attempt, result, reason, "
                    "response_code, response_body, retries_left, timestamp) VALUES "
                    "(?, ?, 2, 'w2', 'e2', 'c2', 'channel_create', ?, 'POST', 1, 'success', "
                    "'ok', 200, 'fine', 0, 1002.0)", (ACCOUNT, hook.id, hook.uri))
    for _ in range(2):        # the second open finds the columns there already
        db = SpoolDb(str(path))
        contents = db.contents()
        assert (contents.next_id, contents.pending) == (3, 1)
        assert [(r.id, r.trigger, r.payload) for r in db.lane(hook.id, "c1", 10)] == [
            (1, "event", {"call_id": "c1"})]
        shown = db.attempts_page(ACCOUNT, hook.id, 10, None,
                                 AttemptFilter(created_from=1000.0)).attempts
        assert [(a["response_body"], a["trigger"], a["request_headers"], a["request_body"],
                 a["request_body_size"], a["duration_ms"]) for a in shown] == [
            ("fine", "event", "{}", "", 0, None)]
        assert db.attempted_delivery(ACCOUNT, hook.id, int(shown[0]["id"])).webhook_id == "w2"
        db.close()
