"""Fleet mode with its database away (issue 14): the whole bridge (fake switch ->
Bridge on PostgreSQL -> real receiver, API on), the server stopped while calls go
on, then started again on the same data.

While it is away: intake goes on in memory, delivery pauses (the database decides
which instance sends each lane), /healthz answers 200 ``degraded`` naming the
database, /metrics has ``eslhook_database_up 0``.  Once it is back: every webhook
of every call arrives once, in order per call, and both say so.  The server is this
test's own (stopping the shared one would cut other tests off)."""

from __future__ import annotations

from collections import defaultdict

import requests
from helpers import make_hook, wait_until
from world import ACME, OpsWorld

ADMIN_TOKEN = "admin-" + "7" * 32


def test_the_database_away_pauses_delivery_loses_nothing_and_says_so(
        tmp_path, private_postgres, caplog):
    dsn = private_postgres.create_database()
    world = OpsWorld(tmp_path, extra={"storage": {
        "backend": "postgresql", "dsn": dsn, "pool_size": 4, "connect_timeout_seconds": 1,
        "lease_seconds": 3, "renew_seconds": 0.5},
        "api": {"listen": "127.0.0.1:0", "admin_tokens": [ADMIN_TOKEN]}})
    try:
        hook = make_hook(world.receiver.url("/fleet"), format="json", retries=0)
        world.bridge.hooks.load()
        world.bridge.hooks.update(lambda hooks: (hooks + [hook], None))
        world.start()
        calls = [world.call()]
        assert world.receiver.wait_for(3, timeout=10)
        private_postgres.stop_server()
        calls += [world.call() for _ in range(3)]
        assert wait_until(lambda: world.get("/healthz").json().get("database", {})
                          .get("reachable") is False, timeout=10)
        health = world.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert any(p.startswith("database cannot be written") and "delivery paused" in p
                   for p in health.json()["degraded"]), health.json()
        assert "eslhook_database_up 0.0" in world.get("/metrics").text
        assert dsn not in health.text and "password" not in health.text
        assert len(world.receiver.requests) == 3          # paused, not lost
        # an API write cannot reach the hooks: 503, nothing changed, the hooks in force stay
        refused = requests.put(world.url("/v2/accounts/%s/webhooks" % ACME), timeout=10,
                               headers={"X-Auth-Token": ADMIN_TOKEN}, json={"data": {
                                   "name": "new", "uri": world.receiver.url("/new"),
                                   "hook": "all"}})
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5" and "retry" in refused.json()["data"]["message"]
        assert [h.id for h in world.bridge.hooks.hooks] == [hook.id]
        private_postgres.start_server()
        got = world.receiver.wait_for(12, timeout=30)
        assert wait_until(lambda: world.get("/healthz").json()["status"] == "ok", timeout=10)
        assert world.get("/healthz").json()["database"] == {"reachable": True}
        assert "eslhook_database_up 1.0" in world.get("/metrics").text
        requests_by_call = defaultdict(list)
        for request in got:
            requests_by_call[request.json["call_id"]].append(request.json["hook_event"])
        assert set(requests_by_call) == set(calls)
        for call_id, events in requests_by_call.items():
            assert events == ["channel_create", "channel_answer", "channel_destroy"], call_id
        assert wait_until(lambda: len(world.receiver.requests) == 12, timeout=1)
        # retried every 0.05-0.5 s here, logged once per 10 s interval: not a flood
        for what in ("hooks watcher", "cannot renew lane leases", "cannot commit"):
            lines = [r for r in caplog.records if what in r.getMessage()]
            assert len(lines) <= 2, (what, len(lines))
    finally:
        world.close()
