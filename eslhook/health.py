"""``GET /healthz``: 200 when every switch is connected, 503 otherwise.

The body names every switch with its connection state and since when (UTC,
ISO 8601), the reason of the last disconnect, and the spool depth, so a
load balancer can act on the status and a human on the body.  A spool that
cannot commit (a full disk) or an open-calls table that cannot be written makes
the status ``degraded``, listed under ``degraded``, with HTTP 200: the instance
still delivers (from memory), and a load balancer pulling it out would stop that.  Reasons come
from ``SwitchSource`` (connection refused, authentication failed, liveness
timeout...) and never hold the password.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .delivery.queue import DeliveryStats
    from .service import Bridge

_REASONS = {200: "OK", 503: "Service Unavailable"}


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def health(bridge: "Bridge", now: float | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON-ready body) of the bridge right now."""
    now = time.time() if now is None else now
    switches, down = [], []
    for source in bridge.sources:
        state = source.state
        entry = {"name": source.name, "connected": state.connected,
                 "since": _iso(state.since), "for_seconds": round(max(0.0, now - state.since), 1)}
        if not state.connected:
            entry["reason"] = state.last_error or "not connected yet"
            down.append(source.name)
        switches.append(entry)
    delivery = bridge.delivery.stats
    problems = degraded(delivery, getattr(bridge.calls, "write_error", None))
    body = {"status": "down" if down else "degraded" if problems else "ok",
            "switches": switches, "spool_depth": delivery.pending,
            "not_durable": delivery.not_durable}
    if down:
        body["down"] = down
    if problems:
        body["degraded"] = problems
    return (503 if down else 200), body


def degraded(delivery: "DeliveryStats", calls_error: str | None) -> list[str]:
    """What works, but not as promised: still delivering, so still 200."""
    problems = []
    if delivery.spool_error is not None:
        problems.append("delivery spool cannot commit (%s): %d pending deliveries held in "
                        "memory only" % (delivery.spool_error, delivery.not_durable))
    if calls_error is not None:
        problems.append("open calls table cannot be written (%s)" % calls_error)
    return problems


def wsgi_app(bridge: "Bridge"):
    """A WSGI callable answering every GET with the health document."""

    def app(environ, start_response):
        status, body = health(bridge)
        data = json.dumps(body).encode()
        start_response("%d %s" % (status, _REASONS[status]),
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(data))), ("Cache-Control", "no-store")])
        return [data]

    return app
