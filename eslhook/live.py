"""The live tail: mapped channel events fanned out to the console's subscribers.

``Bridge.dispatch`` hands every mapped payload to ``EventTap.publish`` on the
ESL reader's greenlet, so publishing must never wait: with nobody subscribed it
is one truth test; otherwise one append per interested subscriber to a bounded
queue and an ``Event.set`` (which only schedules the waiter).  A subscriber that
does not keep up loses the events its full queue has no room for (counted, and
told to its client); one whose socket stops taking bytes is cut by the API
server's write timeout.  At most ``max_streams`` subscribe at once, so the tail
cannot take the API's connections.  ``close`` (at shutdown) ends every stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gevent.event import Event

# what a tail row shows of a payload: the call, who called whom, how it ended
LIVE_FIELDS = ("hook_event", "call_id", "other_leg_call_id", "call_direction",
               "caller_id_name", "caller_id_number", "callee_id_name", "callee_id_number",
               "from", "to", "hangup_cause", "hangup_code", "timestamp", "switch",
               "account_id", "reconciled")


def live_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The tail's view of a payload: only ``LIVE_FIELDS`` it has (pure)."""
    return {key: payload[key] for key in LIVE_FIELDS if key in payload}


def is_channel_event(payload: Mapping[str, Any]) -> bool:
    event = payload.get("hook_event")
    return isinstance(event, str) and event.startswith("channel_")


@dataclass(frozen=True)
class TapLimits:
    max_streams: int = 32           # subscribers at once (each holds an API connection)
    queue_size: int = 256           # events waiting per subscriber before it drops
    heartbeat_seconds: float = 15.0  # a comment this often keeps proxies from closing it

    def __post_init__(self) -> None:
        if self.max_streams < 1 or self.queue_size < 1:
            raise ValueError("TapLimits: max_streams and queue_size must be >= 1")
        if not self.heartbeat_seconds > 0:
            raise ValueError("TapLimits.heartbeat_seconds: must be > 0")


@dataclass(frozen=True)
class Batch:
    """What a subscriber's wait returns: the events come since, and how many of
    its events were dropped in all so far."""
    events: tuple[dict[str, Any], ...]
    dropped: int


class Subscription:
    """One stream's queue: events of one account, bounded."""

    def __init__(self, account_id: str, queue_size: int):
        self.account_id = account_id
        self.dropped = 0
        self.closed = False
        self._queue: deque[dict[str, Any]] = deque()
        self._size = queue_size
        self._ready = Event()

    def offer(self, view: dict[str, Any]) -> None:
        """Never waits: a full queue drops the event and counts it."""
        if len(self._queue) >= self._size:
            self.dropped += 1
        else:
            self._queue.append(view)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def wait(self, timeout: float) -> Batch | None:
        """The events queued (waiting up to ``timeout`` for one; none: a heartbeat
        is due), or None once closed."""
        self._ready.wait(timeout)
        self._ready.clear()
        if self.closed:
            return None
        events = tuple(self._queue)
        self._queue.clear()
        return Batch(events, self.dropped)


class EventTap:
    """The bridge's fan-out of channel events to live subscribers."""

    def __init__(self, limits: TapLimits = TapLimits()):
        self.limits = limits
        self.closed = False
        self._subscribers: list[Subscription] = []

    @property
    def streams(self) -> int:
        return len(self._subscribers)

    def subscribe(self, account_id: str) -> Subscription | None:
        """A new subscription, or None when ``max_streams`` are open or the tap is closed."""
        if self.closed or len(self._subscribers) >= self.limits.max_streams:
            return None
        subscription = Subscription(account_id, self.limits.queue_size)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, payload: Mapping[str, Any]) -> None:
        """On the ESL reader's greenlet: must never wait (see the module docstring)."""
        if not self._subscribers or not is_channel_event(payload):
            return
        account_id = payload.get("account_id")
        view: dict[str, Any] | None = None
        for subscription in self._subscribers:
            if subscription.account_id == account_id:
                view = view if view is not None else live_view(payload)
                subscription.offer(view)

    def close(self) -> None:
        """Shutting down: every stream ends, no new one starts."""
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.close()
