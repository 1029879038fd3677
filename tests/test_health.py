"""GET /healthz over real HTTP: 200 when every switch is connected, else 503 naming it."""

import socket
import time
from datetime import datetime

from helpers import wait_until
from receiver import Reply

from eslhook.health import health



def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    w = ops_world(switches=("fs1",), dead_switches=[("pbx-east", closed_port())])
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
