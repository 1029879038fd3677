"""``GET /healthz``: 200 when every switch is connected, 503 otherwise.

A dead critical greenlet (eslhook/supervise.py: the spool flusher, or a loop
given up after crashing again and again) makes it 503 too, status ``failed``,
named under ``dead`` with why: the process is about to exit for it.

``health(snapshot, now)`` is a pure function of a ``StatusSnapshot``
(eslhook/ports.py).  The body names every switch with its connection state and
since when (UTC, ISO 8601), the reason of the last disconnect, and the spool
depth, so a load balancer can act on the status and a human on the body.  A
spool that cannot commit (a full disk) or an open-calls table that cannot be
written makes the status ``degraded``, listed under ``degraded``, with HTTP
200: the instance still delivers (from memory), and a load balancer pulling it
out would stop that.  In fleet mode (storage postgresql) the body also says
whether the database answers; while it does not, delivery pauses (the database
decides which instance sends each lane) and intake goes on in memory: still 200,
``degraded``, since every instance shares that database and pulling one out helps
nothing.  Reasons come from ``SwitchSource`` (connection refused,
authentication failed, liveness timeout...) and never hold the password.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .ports import DeliveryStatus, StatusSnapshot, SwitchStatus


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def switch_entry(switch: SwitchStatus, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": switch.name, "connected": switch.connected, "since": _iso(switch.since),
        "for_seconds": round(max(0.0, now - switch.since), 1)}
    if not switch.connected:
        entry["reason"] = switch.last_error or "not connected yet"
    return entry


def health(snapshot: StatusSnapshot, now: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON-ready body) of the bridge as ``snapshot`` saw it, at ``now``."""
    down = [switch.name for switch in snapshot.switches if not switch.connected]
    dead = snapshot.supervision.dead
    delivery = snapshot.delivery
    problems = degraded(delivery, snapshot.open_calls_error)
    body: dict[str, Any] = {
        "status": "failed" if dead else "down" if down else "degraded" if problems else "ok",
        "switches": [switch_entry(switch, now) for switch in snapshot.switches],
        "spool_depth": delivery.pending, "not_durable": delivery.not_durable}
    if delivery.fleet:
        body["database"] = ({"reachable": True} if delivery.spool_error is None else
                            {"reachable": False, "error": delivery.spool_error})
    if down:
        body["down"] = down
    if dead:
        body["dead"] = [{"greenlet": name, "reason": why} for name, why in dead]
    if problems:
        body["degraded"] = problems
    return (503 if down or dead else 200), body


def degraded(delivery: DeliveryStatus, calls_error: str | None) -> list[str]:
    """What works, but not as promised: still delivering, so still 200."""
    problems = []
    if delivery.spool_error is not None and delivery.fleet:
        problems.append("database cannot be written (%s): delivery paused until it is "
                        "back; %d accepted deliveries held in memory"
                        % (delivery.spool_error, delivery.not_durable))
    elif delivery.spool_error is not None:
        problems.append("delivery spool cannot commit (%s): %d pending deliveries held in "
                        "memory only" % (delivery.spool_error, delivery.not_durable))
    if calls_error is not None:
        problems.append("open calls table cannot be written (%s)" % calls_error)
    return problems
