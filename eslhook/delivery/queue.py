"""Delivery queue: accepts payloads without blocking, delivers them in order per call,
and keeps whatever is not delivered in the durable spool.

Each (hook id, call id) is a *lane*, delivered strictly one after another
(create before answer before destroy), also while its head waits for a retry.
Lanes go in parallel.  A lane is in one of four states:

- ``ACTIVE``: its next deliveries are in memory; it is in the ready queue, waiting
  for a connection slot to its host, or being attempted (``scheduled``).
- ``WAITING``: its head failed (or its host's circuit is open); everything of the
  lane is in the spool only, and a timer brings it back at the head's next attempt.
- ``LOADING``: being read back from the spool.
- ``HELD``: its hook is disabled; it stays in the spool until the hook is resumed.

Anything submitted to a lane that is not ACTIVE (or that has more in the spool
than in memory) goes to the spool only, and is read back in order.
``max_in_flight`` worker greenlets take ready lanes, check the host's circuit
and its connection limit, and attempt the lane's head.
Decisions (retry, delay, circuit, disable) are pure functions in ``policy``.
"""

from __future__ import annotations

import logging
import random
import sqlite3
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
from eslhook.delivery.http import host_key
from eslhook.delivery.policy import (
    CLOSED, HEALTHY, INVALID_PAYLOAD, Circuit, CircuitPolicy, DisablePolicy, HookHealth,
    Outcome, RetryPolicy,
    circuit_admits, circuit_after, disable_reason, health_after, host_failed, is_success,
    retry_delay, should_retry)
from eslhook.delivery.request import HttpRequest, build_request
from eslhook.delivery.signing import make_webhook_id, webhook_headers
from eslhook.delivery.spool import (
    DELIVERED, DROPPED, EXPIRED, FAILED, AttemptPage, Delivery, Spool)
from eslhook.hooks.model import Hook

log = logging.getLogger(__name__)

DROP_REPORT_INTERVAL_SECONDS = 10.0
LOAD_BATCH = 100                    # deliveries of one lane read back at a time
REPLAY_LIMIT = 10_000               # deliveries one replay call may re-send
PRUNE_INTERVAL_SECONDS = 600.0
ACTIVE, WAITING, LOADING, HELD = "active", "waiting", "loading", "held"
_STOP = object()

LaneKey = tuple[str, str | None]


class Sender(Protocol):
    def send(self, request: HttpRequest,
             extra_headers: Mapping[str, str] | None = None) -> Outcome: ...
    def close(self) -> None: ...


@dataclass
class DeliveryStats:
    submitted: int = 0      # accepted by submit()
    delivered: int = 0      # got a 2xx
    retried: int = 0        # retries scheduled
    given_up: int = 0       # final failures
    dropped: int = 0        # refused by submit(): buffer full or stopped
    invalid: int = 0        # payload/hook cannot make a request
    pending: int = 0        # accepted (or resumed), not yet delivered or given up
    in_flight: int = 0      # HTTP attempts running now
    resident: int = 0       # pending deliveries held in memory (bounded by buffer_size)
    lanes_waiting: int = 0  # lanes whose deliveries wait in the spool for a retry
    lanes_held: int = 0     # lanes of disabled hooks
    expired: int = 0        # pending older than max_age_seconds, dropped when read back
    hooks_disabled: int = 0  # hooks this queue disabled
    not_durable: int = 0    # pending deliveries the spool could not commit: memory only
    unrecorded: int = 0     # finished deliveries / attempt rows never recorded (disk full)
    spool_error: str | None = None   # why spool commits fail now; None while they work


@dataclass(eq=False)
class _Lane:
    key: LaneKey
    state: str = ACTIVE
    items: deque = None             # resident deliveries, in order
    more: bool = False              # the spool holds deliveries of this lane not in items
    scheduled: bool = False         # in the ready queue, a host's wait list, or an attempt
    timer: Any = None
    due: float = 0.0                # unix time the timer fires

    def __post_init__(self):
        self.items = deque()


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
                 rand: Callable[[], float] = random.random, spool_path: str | None = None,
                 hook_lookup: Callable[[str], Hook | None] | None = None,
                 on_disable: Callable[[Hook, str], None] | None = None,
                 on_attempt: Callable[[Hook, Outcome], None] | None = None,
                 clock: Callable[[], float] = time.time):
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
        self._circuit_policy = CircuitPolicy(config.circuit_failures, config.circuit_open_seconds)
        self._disable_policy = DisablePolicy.from_config(config)
        self._rand = rand
        self._clock = clock
        self._known_hooks: dict[str, Hook] = {}
        self._lookup = hook_lookup or self._known_hooks.get
        self._on_disable = on_disable
        self.on_attempt = on_attempt          # e.g. the metrics' latency histogram
        self._spool = Spool(spool_path or ":memory:", memory_limit=config.buffer_size)
        self._resumed = self._spool.contents()    # what a previous run left pending
        self._next_id = self._resumed.next_id
        self._lanes: dict[LaneKey, _Lane] = {}
        self._ready: Queue = Queue()
        self._host_busy: dict[Hashable, int] = {}
        self._host_waiting: dict[Hashable, deque] = {}
        self._circuits: dict[Hashable, Circuit] = {}
        self._health: dict[str, HookHealth] = {}
        self._held_hooks: set[str] = set()
        self._disabling: set[str] = set()     # hooks whose hooks.yaml write is under way
        self._workers = Group()               # max_in_flight attempt workers
        self._group = Group()                 # loaders, pruner, disablers
        self._stats = DeliveryStats()
        self._idle = Event()
        self._idle.set()
        self._started = False
        self._accepting = True
        self._stopping = False
        self._drops = _DropReporter(DROP_REPORT_INTERVAL_SECONDS)

    @property
    def stats(self) -> DeliveryStats:
        """A snapshot of the counters."""
        snapshot = replace(self._stats)
        snapshot.lanes_waiting = sum(1 for lane in self._lanes.values() if lane.state == WAITING)
        snapshot.lanes_held = sum(1 for lane in self._lanes.values() if lane.state == HELD)
        snapshot.not_durable = self._spool.not_durable
        snapshot.unrecorded = self._spool.unrecorded
        snapshot.spool_error = self._spool.failure
        return snapshot

    # -- producer side (ESL reader greenlet): never blocks -------------------------

    def submit(self, hook: Hook, payload: Mapping[str, Any]) -> bool:
        if not self._accepting:
            return self._drop("queue stopped", hook)
        # memory bound: resident deliveries, and those not committed yet (mostly the same;
        # with a full disk, the not-durable ones, delivered from the spool's memory)
        if max(self._stats.resident, self._spool.backlog) >= self._config.buffer_size:
            return self._drop("buffer full (%d)" % self._config.buffer_size, hook)
        # Only bookkeeping here: the request is encoded by the attempt, the row by the
        # spool's flusher, so the reader's cost per matching hook stays small.
        self._known_hooks[hook.id] = hook
        call_id = payload.get("call_id")
        event_id = payload.get("event_id")
        delivery = Delivery(self._take_id(), hook, payload, call_id, event_id,
                            payload.get("hook_event"),
                            make_webhook_id(event_id, hook.id), self._clock())
        self._spool.added(delivery)      # write-ahead: committed within a few ms
        self._stats.submitted += 1
        self._add_pending(1)
        self._enqueue(delivery)
        return True

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _enqueue(self, delivery: Delivery) -> None:
        key = (delivery.hook.id, delivery.call_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
            if delivery.hook.id in self._held_hooks:
                lane.state, lane.more = HELD, True
                return
        if lane.state == ACTIVE and not lane.more:
            lane.items.append(delivery)
            self._stats.resident += 1
            self._schedule(lane)
        else:
            lane.more = True              # in the spool only; read back in order

    def _drop(self, reason: str, hook: Hook) -> bool:
        self._stats.dropped += 1
        self._drops.note(reason, hook.id, self._stats.dropped)
        return False

    def _add_pending(self, count: int) -> None:
        self._stats.pending += count
        if self._stats.pending > 0:
            self._idle.clear()
        else:
            self._idle.set()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Resume what the spool holds, then start delivering."""
        if self._started or self._stopping:
            raise RuntimeError("DeliveryQueue.start: already started or stopped")
        self._started = True
        contents, self._resumed = self._resumed, None
        self._add_pending(contents.pending)
        now = self._clock()
        for key, next_attempt in contents.lanes.items():
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(key)
            else:   # older deliveries of this lane are in the spool: they go first
                self._stats.resident -= len(lane.items)
                lane.items.clear()
            lane.more = True
            self._wait(lane, max(0.0, (next_attempt or now) - now))
        if contents.pending:
            log.info("resuming %d pending webhook deliveries in %d lanes from %s",
                     contents.pending, len(contents.lanes), self._spool.path)
        self._spool.start()
        for _ in range(self._config.max_in_flight):
            self._start_worker()
        self._group.spawn(self._prune_loop).link_exception(_log_crash)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or in flight; False if ``timeout`` passed first."""
        return bool(self._idle.wait(timeout))

    def stop(self, timeout: float) -> None:
        """Stop accepting; keep delivering what can go before ``timeout`` (retries due by
        then included); then cancel retry waits, kill attempts still running and commit
        everything pending to the spool, for the next start to resume."""
        deadline = time.monotonic() + timeout
        self._accepting = False
        if self._started:
            while time.monotonic() < deadline and not self._drained(deadline):
                gevent.sleep(0.02)
        self._stopping = True
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.close()
                lane.timer = None
        self._ready.put_nowait(_STOP)
        self._workers.join(timeout=max(0.0, deadline - time.monotonic()))
        if len(self._workers):
            log.warning("killing %d delivery attempts still running after %gs",
                        self._stats.in_flight, timeout)
            self._workers.kill(block=True, timeout=1.0)
        self._group.kill(block=True, timeout=1.0)
        self._spool.close()
        if self._stats.pending:
            log.warning("stopped with %d undelivered webhook deliveries, kept in %s",
                        self._stats.pending, self._spool.path)
        if self._owns_sender:
            self._sender.close()

    def _drained(self, deadline: float) -> bool:
        """Nothing more can happen before ``deadline``: no attempt running, no lane ready
        or loading, no retry due before it."""
        if self._stats.in_flight:
            return False
        now, left = self._clock(), deadline - time.monotonic()
        for lane in self._lanes.values():
            if lane.state in (ACTIVE, LOADING):
                return False
            if lane.state == WAITING and lane.timer is not None and lane.due - now < left:
                return False
        return True

    # -- dispatching ----------------------------------------------------------------

    def _schedule(self, lane: _Lane) -> None:
        if not lane.scheduled and not self._stopping:
            lane.scheduled = True
            self._ready.put_nowait(lane.key)

    def _start_worker(self) -> None:
        self._workers.spawn(self._work).link_exception(self._worker_crashed)

    def _worker_crashed(self, greenlet) -> None:
        _log_crash(greenlet)
        if not self._stopping:      # keep max_in_flight workers
            self._start_worker()

    def _work(self) -> None:
        """A worker: takes ready lanes and attempts their heads, one at a time.  A fixed
        set of workers costs less per attempt than a greenlet spawned for each."""
        while True:
            key = self._ready.get()
            if key is _STOP:
                self._ready.put_nowait(_STOP)      # for the next worker
                return
            admitted = self._admit(key)
            if admitted is not None:
                self._attempt(*admitted)

    def _admit(self, key: LaneKey) -> tuple[_Lane, Delivery, Hashable] | None:
        """(lane, head, host) when the lane's head may be attempted now; else None, the
        lane having been parked for its host's circuit or queued for a connection slot."""
        lane = self._lanes.get(key)
        if lane is None:
            return None
        if lane.state != ACTIVE or not lane.items:
            lane.scheduled = False
            return None
        head = lane.items[0]
        host = host_key(head.hook.uri)
        if host is not None:
            admitted, circuit = circuit_admits(self._circuits.get(host, CLOSED), self._clock())
            if not admitted:
                lane.scheduled = False
                self._park_for_circuit(lane, head, circuit)
                return None
            self._circuits[host] = circuit
            if self._host_busy.get(host, 0) >= self._config.max_connections_per_host:
                self._host_waiting.setdefault(host, deque()).append(key)
                return None
            self._host_busy[host] = self._host_busy.get(host, 0) + 1
        return lane, head, host

    def _release_host(self, host: Hashable) -> None:
        if host is None:
            return
        self._host_busy[host] -= 1
        waiting = self._host_waiting.get(host)
        if waiting:
            self._ready.put_nowait(waiting.popleft())
        if not waiting and self._host_busy[host] == 0:
            self._host_waiting.pop(host, None)
            del self._host_busy[host]

    def _park_for_circuit(self, lane: _Lane, head: Delivery, circuit: Circuit) -> None:
        """The host is failing: the lane waits in the spool instead of holding a slot.
        Returns are spread so they do not all come back at the same instant."""
        now = self._clock()
        spread = min(self._circuit_policy.open_seconds, 5.0) * self._rand()
        if circuit.probing:    # another attempt is finding out: look again a bit later
            delay = self._circuit_policy.open_seconds / 2 + spread
        else:
            delay = max(0.0, circuit.open_until - now) + spread
        head.next_attempt = now + delay
        self._spool.changed(head)
        self._wait(lane, delay)

    # -- one attempt --------------------------------------------------------------

    def _attempt(self, lane: _Lane, head: Delivery, host: Hashable) -> None:
        hook = self._current_hook(head)
        self._stats.in_flight += 1
        try:
            outcome = self._send(head, hook) if hook is not None else None
        except Exception:   # a bug, not a delivery failure: do not stall the lane
            log.exception("delivery of event %s to hook %s crashed; giving up",
                          head.event_id, head.hook.id)
            outcome = Outcome(None, INVALID_PAYLOAD, error="internal error")
        finally:
            self._stats.in_flight -= 1
            self._release_host(host)
            lane.scheduled = False
        if hook is None:
            return self._hook_gone(lane)
        if not hook.enabled:
            return self._hold(lane)
        self._settle(lane, head, hook, host, outcome)

    def _current_hook(self, delivery: Delivery) -> Hook | None:
        """The hook as it is now (its uri or secret may have been edited)."""
        hook = self._lookup(delivery.hook.id)
        if hook is not None and hook is not delivery.hook:
            delivery.hook = hook
            delivery.request = None
        return hook

    def _send(self, delivery: Delivery, hook: Hook) -> Outcome:
        if delivery.request is None:
            try:
                delivery.request = build_request(hook, delivery.payload,
                                                 user_agent=self._user_agent)
            except ValueError as exc:
                self._stats.invalid += 1
                return Outcome(None, INVALID_PAYLOAD, error=str(exc))
        request = delivery.request
        signed = webhook_headers(hook, delivery.webhook_id, int(self._clock()), request.body)
        return self._sender.send(request, signed)

    def _settle(self, lane: _Lane, head: Delivery, hook: Hook, host: Hashable,
                outcome: Outcome) -> None:
        now = self._clock()
        head.attempts += 1
        succeeded = is_success(outcome)
        retry = not succeeded and should_retry(outcome) and head.attempts <= hook.retries
        self._log_attempt(head, hook, outcome, now, retries_left=max(0, hook.retries
                                                                     - head.attempts + 1)
                          if retry else 0)
        if self.on_attempt is not None:
            self.on_attempt(hook, outcome)
        if host is not None and (succeeded or host_failed(outcome)):
            circuit = circuit_after(self._circuits.get(host, CLOSED), self._circuit_policy,
                                    succeeded, now)
            self._circuits[host] = circuit
            if circuit.open_until is not None:   # lanes queued for a slot go to the spool
                for key in self._host_waiting.pop(host, ()):
                    self._ready.put_nowait(key)
        health = health_after(self._health.get(hook.id, HEALTHY), self._disable_policy,
                              succeeded, now)
        self._health[hook.id] = health
        if succeeded:
            self._stats.delivered += 1
            self._finish(lane, head, DELIVERED, now)
        elif retry:
            self._stats.retried += 1
            delay = retry_delay(self._policy, head.attempts, outcome, self._rand())
            log.info("retrying %s to hook %s (call %s) in %.2fs after attempt %d: %s %s",
                     head.hook_event, hook.id, head.call_id, delay, head.attempts,
                     outcome.reason, outcome.status or outcome.error or "")
            head.next_attempt = now + delay
            self._spool.changed(head)
            self._wait(lane, delay)
        else:
            self._give_up(head, outcome)
            self._finish(lane, head, FAILED, now)
        if not succeeded:
            reason = disable_reason(health, self._disable_policy, outcome, now)
            if reason is not None:
                self._disable(hook, reason)

    def _log_attempt(self, delivery: Delivery, hook: Hook, outcome: Outcome, now: float,
                     retries_left: int) -> None:
        request = delivery.request
        self._spool.attempted((
            hook.account_id, delivery.id, delivery.webhook_id, hook.id, delivery.event_id,
            delivery.call_id, delivery.hook_event, hook.uri,
            request.method if request is not None else hook.http_verb.upper(),
            delivery.attempts, "success" if is_success(outcome) else "failure",
            outcome.reason, outcome.status, outcome.body_excerpt.decode("utf-8", "replace"),
            retries_left, now))

    def _give_up(self, delivery: Delivery, outcome: Outcome) -> None:
        self._stats.given_up += 1
        log.warning("giving up %s (event %s) to hook %s for call %s after %d attempt(s): "
                    "%s %s", delivery.hook_event, delivery.event_id, delivery.hook.id,
                    delivery.call_id, delivery.attempts, outcome.reason,
                    outcome.status or outcome.error or "")

    def _finish(self, lane: _Lane, head: Delivery, state: str, now: float) -> None:
        head.state, head.finished = state, now
        self._spool.changed(head)
        if lane.items and lane.items[0] is head:
            lane.items.popleft()
            self._stats.resident -= 1
        self._add_pending(-1)
        self._continue(lane)

    def _continue(self, lane: _Lane) -> None:
        if lane.state != ACTIVE or self._lanes.get(lane.key) is not lane:
            return
        if lane.items:
            self._schedule(lane)
        elif lane.more:
            self._load_soon(lane)
        else:
            del self._lanes[lane.key]

    # -- waiting in the spool, reading back ---------------------------------------

    def _wait(self, lane: _Lane, delay: float) -> None:
        """Everything of the lane now waits in the spool; back after ``delay``."""
        self._stats.resident -= len(lane.items)
        lane.items.clear()
        lane.more = True
        if lane.state == HELD or self._stopping:
            return
        lane.state = WAITING
        lane.due = self._clock() + delay
        if lane.timer is not None:
            lane.timer.close()
        lane.timer = gevent.get_hub().loop.timer(delay)
        lane.timer.start(self._due, lane)

    def _due(self, lane: _Lane) -> None:
        # runs in the hub: must not block (spawning does not)
        if lane.timer is not None:
            lane.timer.close()
            lane.timer = None
        if lane.state == WAITING and not self._stopping:
            self._load_soon(lane)

    def _load_soon(self, lane: _Lane) -> None:
        lane.state = LOADING
        self._group.spawn(self._load, lane).link_exception(_log_crash)

    def _load(self, lane: _Lane) -> None:
        hook_id, call_id = lane.key
        for _ in range(1000):       # bounded: each round ends deliveries or loads some
            lane.more = False
            rows = self._spool.lane(hook_id, call_id, LOAD_BATCH)
            if lane.state != LOADING or self._stopping:
                lane.more = True
                return
            hook = self._lookup(hook_id)
            if hook is None:
                return self._hook_gone(lane)
            if not hook.enabled or hook_id in self._held_hooks:
                return self._hold(lane)
            lane.more = lane.more or len(rows) >= LOAD_BATCH
            fresh = self._expire(rows, hook)
            if fresh:
                lane.items.extend(fresh)
                self._stats.resident += len(fresh)
                lane.state = ACTIVE
                return self._schedule(lane)
            if not lane.more:
                lane.state = ACTIVE
                return self._continue(lane)
        log.error("lane of hook %s, call %s: still loading after 1000 rounds", hook_id, call_id)

    def _expire(self, rows: list, hook: Hook) -> list[Delivery]:
        """Deliveries for the rows; those older than max_age_seconds are ended."""
        now = self._clock()
        fresh = []
        for row in rows:
            delivery = Delivery(row.id, hook, row.payload, row.call_id, row.event_id,
                                row.hook_event, row.webhook_id, row.created, row.attempts,
                                row.next_attempt)
            if now - row.created > self._config.max_age_seconds:
                delivery.state, delivery.finished = EXPIRED, now
                self._spool.changed(delivery)
                self._stats.expired += 1
                self._add_pending(-1)
            else:
                fresh.append(delivery)
        if len(fresh) < len(rows):
            log.warning("hook %s: %d pending deliveries older than %gs dropped", hook.id,
                        len(rows) - len(fresh), self._config.max_age_seconds)
        return fresh

    def _hold(self, lane: _Lane) -> None:
        self._stats.resident -= len(lane.items)
        lane.items.clear()
        lane.more = True
        lane.state = HELD
        if lane.timer is not None:
            lane.timer.close()
            lane.timer = None

    def _hook_gone(self, lane: _Lane) -> None:
        """The hook was deleted: its pending deliveries end."""
        self._hold(lane)
        if self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]
        ended = self._spool.end_lane(lane.key[0], lane.key[1], DROPPED)
        self._add_pending(-ended)
        if ended:
            log.warning("hook %s no longer exists: %d pending deliveries dropped",
                        lane.key[0], ended)

    # -- disable and resume -----------------------------------------------------------

    def _disable(self, hook: Hook, reason: str) -> None:
        if hook.id in self._held_hooks:
            return
        self._held_hooks.add(hook.id)
        self._stats.hooks_disabled += 1
        for lane in list(self._lanes.values()):
            if lane.key[0] == hook.id:
                self._hold(lane)
        log.warning("disabling hook %s (%s): %s; its pending deliveries wait in the spool",
                    hook.id, hook.name, reason)
        if self._on_disable is not None:
            self._disabling.add(hook.id)
            self._group.spawn(self._run_on_disable, hook, reason).link_exception(_log_crash)

    def _run_on_disable(self, hook: Hook, reason: str) -> None:
        try:
            self._on_disable(hook, reason)
        finally:
            self._disabling.discard(hook.id)

    def resume_hook(self, hook_id: str) -> int:
        """The hook was enabled again: send what waits for it (except what is older
        than ``max_age_seconds``).  Returns the number of lanes resumed."""
        self._held_hooks.discard(hook_id)
        self._health.pop(hook_id, None)
        resumed = 0
        for lane in list(self._lanes.values()):
            if lane.key[0] == hook_id and lane.state == HELD:
                self._load_soon(lane)
                resumed += 1
        return resumed

    def refresh_hooks(self) -> None:
        """After hooks.yaml changed: resume held lanes of hooks enabled again by hand,
        end those of deleted hooks."""
        for hook_id in {lane.key[0] for lane in self._lanes.values() if lane.state == HELD}:
            if hook_id in self._disabling:
                continue
            hook = self._lookup(hook_id)
            if hook is None or hook.enabled:
                self.resume_hook(hook_id)

    # -- attempt log and replay (for the REST API) -------------------------------------

    def attempts(self, account_id: str, hook_id: str | None = None, *, page_size: int = 50,
                 start_key: str | None = None) -> AttemptPage:
        """The attempt log of an account (or one of its hooks), newest first.
        ``start_key``: the ``next_start_key`` of the previous page.  ValueError for a
        bad page_size or start_key."""
        if type(page_size) is not int or not 1 <= page_size <= 1000:
            raise ValueError("page_size: must be an integer 1..1000, got %r" % (page_size,))
        key = None
        if start_key is not None:
            if not (isinstance(start_key, str) and start_key.isdigit()):
                raise ValueError("start_key: not a key this API returned: %r" % (start_key,))
            key = int(start_key)
        return self._spool.attempts_page(account_id, hook_id, page_size, key)

    def replay(self, hook: Hook, since: float, until: float) -> int:
        """Send again the deliveries of ``hook`` accepted in [since, until) (unix times)
        and already finished: new attempts, same ``webhook-id``, in their original order.
        Returns how many were queued.  ValueError for an empty or inverted window."""
        if not since < until:
            raise ValueError("since: must be before until")
        rows = self._spool.window(hook.id, since, until, REPLAY_LIMIT)
        if not rows:
            return 0
        now = self._clock()
        copies = []
        for call_id, event_id, hook_event, webhook_id, payload in rows:
            copies.append((self._take_id(), hook.id, hook.account_id, call_id, event_id,
                           hook_event, webhook_id, payload, now, 0, None, "pending", None))
        self._spool.insert_copies(copies)
        self._known_hooks.setdefault(hook.id, hook)
        self._add_pending(len(copies))
        for call_id in dict.fromkeys(row[3] or None for row in copies):
            self._spool_only_arrival((hook.id, call_id))
        log.info("replaying %d deliveries to hook %s", len(copies), hook.id)
        return len(copies)

    def _spool_only_arrival(self, key: LaneKey) -> None:
        """Deliveries for ``key`` were added to the spool directly: make the lane read
        them back after what it already has."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
            lane.more = True
            if key[0] in self._held_hooks:
                lane.state = HELD
            else:
                self._load_soon(lane)
        else:
            lane.more = True
            if lane.state == ACTIVE and not lane.items and not lane.scheduled:
                self._load_soon(lane)

    def follow_hooks(self, generation: Callable[[], int], interval: float = 0.5) -> None:
        """Call ``refresh_hooks`` whenever ``generation()`` (the hook store's) changes."""
        def follow():
            seen = generation()
            while not self._stopping:
                gevent.sleep(interval)
                if generation() != seen:
                    seen = generation()
                    self.refresh_hooks()
        self._group.spawn(follow).link_exception(_log_crash)

    def _prune_loop(self) -> None:
        while True:
            before = self._clock() - self._config.attempt_log_days * 86400
            try:
                attempts, finished = self._spool.prune(before)
                if attempts or finished:
                    log.info("pruned %d attempts and %d finished deliveries older than %g "
                             "days", attempts, finished, self._config.attempt_log_days)
            except sqlite3.Error as exc:     # a full disk: said once, not a traceback
                log.error("pruning the attempt log failed: %s", exc)
            except Exception:
                log.exception("pruning the attempt log failed")
            gevent.sleep(PRUNE_INTERVAL_SECONDS)


def _log_crash(greenlet) -> None:
    log.error("delivery greenlet crashed: %r", greenlet.exception, exc_info=greenlet.exc_info)
