"""state_dir on a real, tiny filesystem (tmpfs) that fills up: delivery goes on from
memory, commits shrink to what fits, spooling resumes by itself when space returns,
and the log says so once per interval."""

import json
import logging
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import helpers
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_spool import (
    ACCOUNT, EVENTS, Flaky, assert_each_call_in_order, config, spool_hook, successes)

from eslhook import calls as calls_module
from eslhook.delivery import spool as spool_module
from eslhook.stores import embedded_delivery_store
from eslhook.timings import Timings

# Waits are bounds, not expectations: 900 deliveries through a full disk take
# 2-10 s here, longer on a CI machine shared with other runs.
LOADED = 20.0
INTERVAL = 0.3          # the spool's report interval in these tests (it retries 3 times as often)
# what these tests inject: reports every INTERVAL, commits retried three times as often
SHORT_TIMINGS = Timings(**{**vars(helpers.FAST_TIMINGS), "open_calls_flush_seconds": 0.05,
                           "spool_commit_retry_seconds": INTERVAL / 3,
                           "spool_error_report_seconds": INTERVAL,
                           "open_calls_error_report_seconds": INTERVAL})


@pytest.fixture
def tiny_fs(tmp_path):
    """``make(size)``: a tmpfs of ``size`` mounted under tmp_path (unmounted after)."""
    mounted = []

    def make(size: str, name: str | None = None) -> Path:
        point = tmp_path / (name or "fs%d" % len(mounted))
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root): %s" % result.stderr.strip())
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(directory: Path, keep_free: int = 0) -> Path:
    """A file taking all the free space of ``directory``'s filesystem but ``keep_free``."""
    filler = directory / ("filler-%s" % uuid.uuid4().hex)
    stat = os.statvfs(directory)
    size = max(0, stat.f_bavail * stat.f_frsize - keep_free)
    with open(filler, "wb") as out:
        chunk = b"\0" * 65536
        try:
            while size > 0:
                size -= out.write(chunk[:min(size, len(chunk))])
        except OSError:
            pass
    return filler


def spooled(path: Path, state: str | None = None) -> int:
    with sqlite3.connect(path, timeout=5) as db:
        if state is None:
            return db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        return db.execute("SELECT COUNT(*) FROM deliveries WHERE state = ?",
                          (state,)).fetchone()[0]


def records_of(caplog, module):
    return [r for r in caplog.records if r.name == module.log.name]


def assert_said_once_per_interval(records, words):
    """Lines with ``words``: some, none with a traceback, at most one per interval."""
    lines = [r for r in records if words in r.getMessage()]
    assert lines and [r.getMessage() for r in records if r.exc_info] == []
    assert len(lines) <= (lines[-1].created - lines[0].created) / INTERVAL + 1, len(lines)


def scrape(world) -> dict:
    samples = {}
    for family in text_string_to_metric_families(world.get("/metrics").text):
        for sample in family.samples:
            samples[sample.name] = sample.value
    return samples


def test_a_full_disk_during_an_outage_still_delivers_everything_and_spooling_resumes(
        receiver, queues, tiny_fs, caplog):
    caplog.set_level(logging.INFO)
    # room, once the filler goes, for all 900 deliveries and their attempt rows
    # (each keeps up to 4 KiB of its request body: at 8 MB the spool alone filled it)
    state = tiny_fs("32m")
    path = state / "delivery.sqlite3"
    flaky = Flaky(receiver)
    hook = spool_hook(receiver.url("/"))
    delivery = config(retry_schedule_seconds=(0.1, 0.2, 0.3), circuit_failures=1000)
    queue = queues(delivery, store=embedded_delivery_store(str(path), delivery, SHORT_TIMINGS),
                   hook_lookup={hook.id: hook}.get)
    filler = fill(state, keep_free=256 * 1024)      # room for a part of the burst only
    calls = ["full-%d" % n for n in range(300)]
    padding = "x" * 1500
    for event in EVENTS:                              # a burst of 900 while the receiver is down
        for call in calls:
            assert queue.submit(hook, {"call_id": call, "hook_event": event,
                                       "event_id": "%s-%s" % (call, event), "pad": padding})
    assert helpers.wait_until(lambda: queue.stats.not_durable > 0, timeout=LOADED), queue.stats
    # commits shrink to what fits (halving takes a few rounds on a loaded machine)
    assert helpers.wait_until(lambda: spooled(path) > 0, timeout=LOADED)
    assert spooled(path) < 900
    assert helpers.wait_until(lambda: len(receiver.requests) >= 300, timeout=2 * LOADED)
    flaky.down = False                                # the receiver is back, the disk still full
    assert queue.wait_idle(3 * LOADED), queue.stats
    delivered = successes(receiver)
    assert sorted((r.json["call_id"], r.json["hook_event"]) for r in delivered) == sorted(
        (c, e) for c in calls for e in EVENTS)
    assert_each_call_in_order(delivered)
    assert queue.stats.dropped == 0
    filler.unlink()                                   # space returns
    for call in ("after-1", "after-2"):
        assert queue.submit(hook, {"call_id": call, "hook_event": "channel_create",
                                   "event_id": call})
    assert helpers.wait_until(lambda: queue.stats.not_durable == 0, timeout=LOADED), queue.stats
    # spooling resumed by itself: everything is in the file, the new ones included
    assert helpers.wait_until(lambda: spooled(path) == 902, timeout=LOADED)
    assert queue.wait_idle(LOADED)
    assert helpers.wait_until(lambda: spooled(path, "delivered") == 902, timeout=LOADED)
    assert helpers.wait_until(lambda: any("commits succeed again" in r.getMessage()
                                          for r in records_of(caplog, spool_module)),
                              timeout=LOADED)
    assert_said_once_per_interval(records_of(caplog, spool_module), "cannot commit")


def test_a_full_state_dir_shows_in_metrics_and_healthz_and_keeps_open_calls(
        tiny_fs, ops_world, caplog):
    caplog.set_level(logging.INFO)
    state = tiny_fs("8m", name="state")               # the bridge's state_dir
    w = ops_world(delivery={"timeout_seconds": 2, "retry_schedule_seconds": [0.1, 0.2],
                            "jitter": 0.1, "circuit_failures": 1000}, timings=SHORT_TIMINGS)
    w.write_hooks([w.hook("/all", retries=10)])
    flaky = Flaky(w.receiver)
    w.start()
    fillers = [fill(state, keep_free=128 * 1024)]
    burst = [w.call() for _ in range(100)]           # 300 deliveries, receiver down
    assert helpers.wait_until(lambda: scrape(w)["eslhook_delivery_not_durable"] > 0, timeout=10)
    fillers.append(fill(state))                       # what the spool left: nothing now
    left_open = [w.call(events=["CHANNEL_CREATE"]) for _ in range(5)]
    assert helpers.wait_until(lambda: all(w.bridge.calls.is_open("fs1", c) for c in left_open))
    assert helpers.wait_until(lambda: w.bridge.calls.write_error is not None, timeout=5)
    m = scrape(w)
    assert m["eslhook_spool_commit_failing"] == 1
    response = w.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded", body
    assert body["not_durable"] > 0
    assert [p.split(" (")[0] for p in body["degraded"]] == [
        "delivery spool cannot commit", "open calls table cannot be written"]
    assert all(w.bridge.calls.is_open("fs1", call) for call in left_open)   # kept in memory
    assert not list(state.glob("open-calls.json.*.tmp"))   # no half-written temp file left
    flaky.down = False                                # receiver back, disk still full
    expected = {(c, e) for c in burst for e in EVENTS} | {(c, EVENTS[0]) for c in left_open}
    assert helpers.wait_until(lambda: expected <= {
        (r.json["call_id"], r.json["hook_event"]) for r in successes(w.receiver)}, timeout=15)
    for filler in fillers:                            # space returns
        filler.unlink()
    assert helpers.wait_until(lambda: w.get("/healthz").json()["status"] == "ok", timeout=5)
    m = scrape(w)
    assert (m["eslhook_delivery_not_durable"], m["eslhook_spool_commit_failing"]) == (0, 0)
    written = json.loads((state / "open-calls.json").read_text())
    assert {c["call_id"] for c in written["switches"]["fs1"]} == set(left_open)
    assert helpers.wait_until(lambda: spooled(state / "delivery.sqlite3", "delivered") == 305,
                              timeout=5)
    assert_said_once_per_interval(records_of(caplog, spool_module), "cannot commit")
    assert_said_once_per_interval(records_of(caplog, calls_module), "cannot write")


def test_a_full_disk_holds_finished_deliveries_and_attempt_rows_within_the_memory_bound(
        tiny_fs):
    from eslhook.delivery.rows import DELIVERED, AttemptRecord, Delivery
    from eslhook.delivery.spool import Spool
    state = tiny_fs("1m")
    spool = Spool(str(state / "delivery.sqlite3"), memory_limit=5,
                  commit_retry_seconds=INTERVAL / 3, error_report_seconds=INTERVAL)
    spool.start()
    fillers = [fill(state), fill(state)]           # nothing left, not even a page
    hook = spool_hook("http://127.0.0.1:9/")
    try:
        deliveries = [Delivery(n, hook, {"call_id": "c%d" % n, "pad": "x" * 4096}, "c%d" % n,
                               "e%d" % n, "channel_create", "w%d" % n, 1000.0)
                      for n in range(1, 21)]
        for delivery in deliveries:
            spool.added(delivery)
        assert helpers.wait_until(lambda: spool.not_durable == 20, timeout=5)
        for delivery in deliveries:                # delivered from memory, then recorded
            delivery.state, delivery.finished = DELIVERED, 2000.0
            spool.changed(delivery)
            spool.attempted(AttemptRecord(ACCOUNT, delivery.id, delivery.webhook_id, hook.id,
                                          None, None, None, hook.uri, "POST", 1, "success",
                                          "ok", 204, "", 0, 2000.0))
        assert spool.not_durable == 0
        # 15 finished deliveries and 15 attempt rows beyond the bound of 5 each: given up
        assert helpers.wait_until(lambda: spool.unrecorded == 30, timeout=5), spool.unrecorded
        for filler in fillers:
            filler.unlink()
        assert helpers.wait_until(lambda: spool.failure is None, timeout=5)
        spool.flush()
        with sqlite3.connect(state / "delivery.sqlite3") as db:
            assert db.execute("SELECT id, state FROM deliveries ORDER BY id").fetchall() == [
                (n, "delivered") for n in range(16, 21)]        # the newest five
            assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 5
    finally:
        spool.close()
