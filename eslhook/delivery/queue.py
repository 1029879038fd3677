"""Delivery queue: accepts payloads without blocking and delivers them in order per call.

Each (hook id, call id) is a *lane*: a deque of pending deliveries delivered
strictly one after another (create before answer before destroy), also while
the head waits for a retry.  Lanes go in parallel: a ready queue of lane keys
feeds a fixed set of ``max_in_flight`` worker greenlets.  A lane key is, at any
moment, in exactly one place: the ready queue, a worker, or a retry timer, so
at most one worker owns it.  A retry wait holds a timer, not a worker.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, Mapping, Protocol

import gevent
from gevent.event import Event
from gevent.pool import Group
from gevent.queue import Queue

from eslhook import __version__
from eslhook.config import DeliveryConfig
from eslhook.delivery.policy import (
    Outcome, RetryPolicy, is_success, retry_delay, should_retry)
from eslhook.delivery.request import HttpRequest, build_request
from eslhook.hooks.model import Hook

log = logging.getLogger(__name__)

DROP_REPORT_INTERVAL_SECONDS = 10.0
_STOP = object()


class Sender(Protocol):
    def send(self, request: HttpRequest) -> Outcome: ...
    def close(self) -> None: ...


@dataclass
class DeliveryStats:
    submitted: int = 0      # accepted by submit()
    delivered: int = 0      # got a 2xx
    retried: int = 0        # retries scheduled
    given_up: int = 0       # final failures
    dropped: int = 0        # refused by submit(): buffer full or stopped
    invalid: int = 0        # refused by submit(): payload/hook cannot make a request
    pending: int = 0        # accepted, not yet delivered or given up
    in_flight: int = 0      # HTTP attempts running now


@dataclass(eq=False)
class _Delivery:
    hook: Hook
    payload: Mapping[str, Any]
    call_id: str | None
    event_name: str | None
    event_id: str | None               # Core-UUID-sequence: names it in logs
    attempts: int = 0
    request: HttpRequest | None = None   # built by the first attempt, off the reader


class _DropReporter:
    """Logs drops at most once per interval, with the count since the last line."""

    def __init__(self, interval: float):
        self._interval = interval
        self._last_report = None
        self._unreported = 0

    def note(self, reason: str, hook_id: str, total: int) -> None:
        self._unreported += 1
        now = time.monotonic()
        if self._last_report is not None and now - self._last_report < self._interval:
            return
        log.warning("dropped %d webhook deliveries (latest: %s, hook %s); %d dropped in total",
                    self._unreported, reason, hook_id, total)
        self._last_report, self._unreported = now, 0


class DeliveryQueue:
    def __init__(self, config: DeliveryConfig, sender: Sender | None = None, *,
                 user_agent: str | None = None, policy: RetryPolicy | None = None,
                 rand: Callable[[], float] = random.random):
        if sender is None:
            from eslhook.delivery.http import HttpSender
            sender = HttpSender(config)
            self._owns_sender = True
        else:
            self._owns_sender = False
        self._config = config
        self._sender = sender
        self._user_agent = user_agent or "eslhook/%s" % __version__
        self._policy = policy or RetryPolicy.from_config(config)
        self._rand = rand
        self._lanes: dict[Hashable, deque[_Delivery]] = {}
        self._ready: Queue = Queue()
        self._workers = Group()
        self._timers: set = set()
        self._stats = DeliveryStats()
        self._idle = Event()
        self._idle.set()
        self._accepting = True
        self._stopping = False
        self._drops = _DropReporter(DROP_REPORT_INTERVAL_SECONDS)
        # called as on_attempt(hook, outcome) after every HTTP attempt (metrics); must not block
        self.on_attempt: Callable[[Hook, Outcome], None] | None = None

    @property
    def stats(self) -> DeliveryStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    # -- producer side (ESL reader greenlet): never blocks -------------------------

    def submit(self, hook: Hook, payload: Mapping[str, Any]) -> bool:
        if not self._accepting:
            return self._drop("queue stopped", hook)
        if self._stats.pending >= self._config.buffer_size:
            return self._drop("buffer full (%d)" % self._config.buffer_size, hook)
        # Only bookkeeping here: the request is encoded by the worker, so the
        # reader's cost per matching hook stays a few dict operations.
        call_id = payload.get("call_id")
        item = _Delivery(hook, payload, call_id, payload.get("hook_event"), payload.get("event_id"))
        key = (hook.id, call_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self._ready.put_nowait(key)
        lane.append(item)
        self._stats.submitted += 1
        self._stats.pending += 1
        self._idle.clear()
        return True

    def _drop(self, reason: str, hook: Hook) -> bool:
        self._stats.dropped += 1
        self._drops.note(reason, hook.id, self._stats.dropped)
        return False

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if len(self._workers) or self._stopping:
            raise RuntimeError("DeliveryQueue.start: already started or stopped")
        for _ in range(self._config.max_in_flight):
            worker = self._workers.spawn(self._work)
            worker.link_exception(_log_worker_crash)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or in flight; False if ``timeout`` passed first."""
        return bool(self._idle.wait(timeout))

    def stop(self, timeout: float) -> None:
        """Stop accepting; keep delivering what was accepted (retries included) until
        ``timeout``; then cancel retry waits and kill attempts still running.  What is left
        is logged as undelivered (a durable spool can pick it up later)."""
        deadline = time.monotonic() + timeout
        self._accepting = False
        if len(self._workers):
            self._idle.wait(timeout)
        self._stopping = True
        for timer in list(self._timers):
            timer.close()
        self._timers.clear()
        for _ in range(len(self._workers)):
            self._ready.put_nowait(_STOP)
        self._workers.join(timeout=max(0.0, deadline - time.monotonic()))
        if len(self._workers):
            log.warning("killing %d delivery attempts still running after %gs",
                        self._stats.in_flight, timeout)
            self._workers.kill(block=True, timeout=1.0)
        if self._stats.pending:
            log.warning("stopped with %d undelivered webhook deliveries", self._stats.pending)
        if self._owns_sender:
            self._sender.close()

    # -- workers ------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            key = self._ready.get()
            if key is _STOP or self._stopping:
                return
            self._serve(key)

    def _serve(self, key: Hashable) -> None:
        lane = self._lanes[key]
        item = lane[0]
        if item.request is None:
            try:
                item.request = build_request(item.hook, item.payload, user_agent=self._user_agent)
            except ValueError as exc:
                self._stats.invalid += 1
                self._give_up(item, Outcome(None, "invalid payload", error=str(exc)))
                self._finish(key, lane)
                return
        item.attempts += 1
        self._stats.in_flight += 1
        try:
            outcome = self._sender.send(item.request)
        except Exception:   # a bug, not a delivery failure: do not stall the lane
            log.exception("delivery of event %s to hook %s crashed; giving up", item.event_id,
                          item.hook.id)
            self._stats.given_up += 1
            self._finish(key, lane)
            return
        finally:
            self._stats.in_flight -= 1
        if self.on_attempt is not None:
            self.on_attempt(item.hook, outcome)
        if is_success(outcome):
            self._stats.delivered += 1
            self._finish(key, lane)
        elif should_retry(outcome) and item.attempts <= item.hook.retries:
            if self._stopping:
                return      # left pending: stop() reports it as undelivered
            self._stats.retried += 1
            delay = retry_delay(self._policy, item.attempts, outcome, self._rand())
            log.info("retrying %s to hook %s (call %s) in %.2fs after attempt %d: %s %s",
                     item.event_name, item.hook.id, item.call_id, delay, item.attempts,
                     outcome.reason, outcome.status or outcome.error or "")
            self._retry_later(key, delay)
        else:
            self._give_up(item, outcome)
            self._finish(key, lane)

    def _give_up(self, item: _Delivery, outcome: Outcome) -> None:
        self._stats.given_up += 1
        log.warning("giving up %s (event %s) to hook %s for call %s after %d attempt(s): "
                    "%s %s", item.event_name, item.event_id, item.hook.id, item.call_id,
                    item.attempts, outcome.reason, outcome.status or outcome.error or "")

    def _finish(self, key: Hashable, lane: deque) -> None:
        lane.popleft()
        self._stats.pending -= 1
        if lane:
            self._ready.put_nowait(key)     # to the back: other lanes get their turn
        else:
            del self._lanes[key]
        if self._stats.pending == 0:
            self._idle.set()

    def _retry_later(self, key: Hashable, delay: float) -> None:
        timer = gevent.get_hub().loop.timer(delay)
        self._timers.add(timer)
        timer.start(self._retry_due, key, timer)

    def _retry_due(self, key: Hashable, timer) -> None:
        # runs in the hub: must not block (put_nowait on an unbounded queue does not)
        self._timers.discard(timer)
        timer.close()
        if not self._stopping:
            self._ready.put_nowait(key)


def _log_worker_crash(greenlet) -> None:
    log.error("delivery worker crashed: %r", greenlet.exception, exc_info=greenlet.exc_info)
