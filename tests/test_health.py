"""GET /healthz: 200 when every switch is connected, else 503 naming it.

Over real HTTP on a running bridge's API, and ``health()`` itself from
hand-built snapshots."""

import time
from datetime import datetime

from helpers import free_port, wait_until
from receiver import Reply

from eslhook.health import health
from eslhook.ports import DeliveryStatus, StatusSnapshot, SwitchStatus


def parse_time(text: str) -> float:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1] + "+00:00").timestamp()


def test_all_connected_is_200_with_state_and_spool_depth(ops_world):
    before = time.time()
    w = ops_world(switches=("fs1", "fs2")).start()
    response = w.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert "down" not in body
    assert body["spool_depth"] == 0
    assert [s["name"] for s in body["switches"]] == ["fs1", "fs2"]
    for switch in body["switches"]:
        assert switch["connected"] is True
        assert before - 1 <= parse_time(switch["since"]) <= time.time()
        assert "reason" not in switch


def test_a_switch_that_cannot_be_reached_is_503_naming_it(ops_world):
    w = ops_world(switches=("fs1",), dead_switches=[("pbx-east", free_port())])
    w.start(subscribers=False)
    assert w.fakes["fs1"].wait_for_subscribers(1, timeout=5)
    assert wait_until(lambda: w.bridge.sources[1].state.last_error is not None)
    response = w.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["down"] == ["pbx-east"]
    east = body["switches"][1]
    assert east["name"] == "pbx-east" and east["connected"] is False
    assert "refused" in east["reason"].lower()
    assert body["switches"][0]["connected"] is True


def test_a_switch_lost_after_connecting_says_since_when(ops_world):
    w = ops_world(switches=("fs1",)).start()
    lost_at = time.time()
    w.fakes["fs1"].stop()
    assert wait_until(lambda: not w.bridge.sources[0].state.connected)
    body = w.get("/healthz").json()
    assert body["down"] == ["fs1"]
    fs1 = body["switches"][0]
    # "since" is the moment it went down, not when it first connected
    assert lost_at - 1 <= parse_time(fs1["since"]) <= time.time()
    assert fs1["reason"]
    assert fs1["for_seconds"] >= 0


def test_spool_depth_counts_deliveries_waiting(ops_world):
    w = ops_world(delivery={"timeout_seconds": 5, "max_in_flight": 1})
    w.write_hooks([w.hook("/slow")])
    w.receiver.default_reply = Reply(200, delay=0.4)
    w.start()
    w.call()
    assert wait_until(lambda: w.bridge.stats.submitted == 3)
    status, body = health(w.bridge.status(), time.time())
    assert status == 200
    assert 1 <= body["spool_depth"] <= 3
    assert wait_until(lambda: w.get("/healthz").json()["spool_depth"] == 0, timeout=5)


def test_health_of_a_bridge_not_started_yet(ops_world):
    w = ops_world(switches=("fs1",))
    status, body = health(w.bridge.status(), now=time.time() + 30)
    assert status == 503
    assert body["switches"][0]["reason"] == "not connected yet"
    assert body["switches"][0]["for_seconds"] >= 29


# -- health() is a pure function of a status snapshot: hand-built ones, no bridge ----

NOW = 1_800_000_000.0


def switch(name="fs1", connected=True, since=NOW - 12.34, **fields) -> SwitchStatus:
    return SwitchStatus(name, connected=connected, since=since, **fields)


def test_health_of_connected_switches_is_200_ok_with_since_and_for_seconds():
    snapshot = StatusSnapshot(switches=(switch("fs1"), switch("fs2", since=NOW)),
                              delivery=DeliveryStatus(pending=7))
    status, body = health(snapshot, NOW)
    assert status == 200
    assert body == {"status": "ok", "spool_depth": 7, "not_durable": 0, "switches": [
        {"name": "fs1", "connected": True, "since": "2027-01-15T07:59:47Z",
         "for_seconds": 12.3},
        {"name": "fs2", "connected": True, "since": "2027-01-15T08:00:00Z",
         "for_seconds": 0.0}]}


def test_health_names_each_switch_down_with_its_reason_and_is_503():
    snapshot = StatusSnapshot(switches=(
        switch("fs1"), switch("fs2", connected=False, last_error="connection refused"),
        switch("fs3", connected=False)))
    status, body = health(snapshot, NOW)
    assert status == 503 and body["status"] == "down"
    assert body["down"] == ["fs2", "fs3"]
    assert [s.get("reason") for s in body["switches"]] == [
        None, "connection refused", "not connected yet"]


def test_health_is_degraded_but_200_while_the_spool_or_open_calls_cannot_be_written():
    snapshot = StatusSnapshot(
        switches=(switch(),), open_calls_error="No space left on device",
        delivery=DeliveryStatus(pending=40, not_durable=30, spool_error="database or disk "
                                "is full"))
    status, body = health(snapshot, NOW)
    assert status == 200 and body["status"] == "degraded"
    assert body["not_durable"] == 30 and "down" not in body
    assert body["degraded"] == [
        "delivery spool cannot commit (database or disk is full): 30 pending deliveries "
        "held in memory only",
        "open calls table cannot be written (No space left on device)"]


def test_health_down_wins_over_degraded_and_lists_both():
    snapshot = StatusSnapshot(switches=(switch(connected=False),),
                              delivery=DeliveryStatus(spool_error="disk I/O error"))
    status, body = health(snapshot, NOW)
    assert (status, body["status"], body["down"]) == (503, "down", ["fs1"])
    assert body["degraded"] == ["delivery spool cannot commit (disk I/O error): 0 pending "
                                "deliveries held in memory only"]


def test_health_of_a_state_newer_than_now_says_zero_seconds():
    # the snapshot is taken just before `now` is read: a clock step must not go negative
    _, body = health(StatusSnapshot(switches=(switch(since=NOW + 5),)), NOW)
    assert body["switches"][0]["for_seconds"] == 0.0


def test_fleet_mode_says_whether_the_database_answers():
    up = StatusSnapshot(switches=(switch(),), delivery=DeliveryStatus(fleet=True))
    status, body = health(up, NOW)
    assert (status, body["status"], body["database"]) == (200, "ok", {"reachable": True})
    away = StatusSnapshot(switches=(switch(),), delivery=DeliveryStatus(
        fleet=True, pending=9, not_durable=9, spool_error="the connection is lost"))
    status, body = health(away, NOW)
    assert (status, body["status"]) == (200, "degraded")
    assert body["database"] == {"reachable": False, "error": "the connection is lost"}
    assert body["degraded"] == ["database cannot be written (the connection is lost): "
                                "delivery paused until it is back; 9 accepted deliveries "
                                "held in memory"]
    # embedded mode has no database to report
    assert "database" not in health(StatusSnapshot(switches=(switch(),)), NOW)[1]
