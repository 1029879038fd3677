"""Delivery queue: the I/O shell.  Accepts payloads without blocking, delivers them in
order per call, and keeps whatever is not delivered in the delivery store (durable:
``delivery/store.py``; the SQLite spool in embedded mode).

The decisions live apart from I/O: the lane state machine in ``lanes`` (one lane
per (hook id, call id), delivered strictly in order), host slots and the circuit
breaker in ``hosts``, what follows an attempt in ``policy.decide`` (deliver, retry
at a time, give up, disable the hook), the attempt log's records, paging, replay
and pruning in ``history``.  This module runs them: ``max_in_flight`` worker
greenlets take ready lanes and attempt their heads, hub timers bring waiting lanes
back, loader greenlets read lanes back from the spool.  (Over 400 lines because it
is the one place where a lane's greenlets, timers and spool calls meet; split
further, one lane's I/O would be spread across modules.)
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, Mapping, Protocol

import gevent
from gevent.event import Event
from gevent.pool import Group
from gevent.queue import Queue

from eslhook import __version__
from eslhook.config import DeliveryConfig
from eslhook.delivery.history import (
    PRUNE_INTERVAL_SECONDS, REPLAY_LIMIT, attempt_record, page_start, prune_loop,
    replay_copies)
from eslhook.delivery.hosts import ADMITTED, PARKED, Hosts
from eslhook.delivery.http import host_key
from eslhook.delivery.lanes import (
    ACTIVE, HELD, LOAD, LOADING, SCHEDULE, WAITING, Lane, LaneKey, Lanes)
from eslhook.delivery.policy import (
    DELIVER, HEALTHY, INTERNAL_ERROR, INVALID_PAYLOAD, RETRY, Attempt, CircuitPolicy,
    Decision, HookHealth, Outcome, Policies, RetryPolicy, decide)
from eslhook.delivery.request import HttpRequest, build_request
from eslhook.delivery.signing import make_webhook_id, webhook_headers
from eslhook.delivery.rows import (
    EVENT, DELIVERED, DROPPED, EXPIRED, FAILED, RESEND, TEST, AttemptFilter, AttemptPage, Delivery,
    DeliveryRow, SpoolContents, StoredDelivery)
from eslhook.delivery.store import ClaimsLanes, DeliveryStore, DeliveryStoreError
from eslhook.hooks.model import Hook
from eslhook.logs import OncePerInterval
from eslhook.payload import Payload
from eslhook.supervise import (
    KILL_GRACE_SECONDS, RESTART, TASK, Deadline, Supervisor, deadline_of)

log = logging.getLogger(__name__)

DROP_REPORT_INTERVAL_SECONDS = 10.0
LOAD_BATCH = 100                    # deliveries of one lane read back at a time
_STOP = object()
__all__ = ["DeliveryQueue", "DeliveryStats", "JOIN_HOLD_SECONDS", "REPLAY_LIMIT",
           "PRUNE_INTERVAL_SECONDS", "ACTIVE", "WAITING", "LOADING", "HELD", "LaneKey"]


class Sender(Protocol):
    def send(self, request: HttpRequest,
             extra_headers: Mapping[str, str] | None = None) -> Outcome: ...
    def close(self) -> None: ...


# Fleet mode: how long an event of a call an instance joined late waits before it may
# be attempted, for another instance's commit of the call's earlier events (a few ms
# normally; seconds on a loaded database).
JOIN_HOLD_SECONDS = 2.0
LOAD_RETRY_SECONDS = 1.0    # a lane whose read back failed is read again after this


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
    lanes_lost: int = 0     # fleet mode: lanes held in memory that another instance took over
    expired: int = 0        # pending older than max_age_seconds, dropped when read back
    hooks_disabled: int = 0  # hooks this queue disabled
    not_durable: int = 0    # pending deliveries the spool could not commit: memory only
    unrecorded: int = 0     # finished deliveries / attempt rows never recorded (disk full)
    spool_error: str | None = None   # why spool commits fail now; None while they work
    fleet: bool = False     # the store decides which instance delivers each lane
    duplicates: int = 0     # fleet mode: deliveries another instance enqueued first
    leases_held: int = 0    # fleet mode: lanes leased here at the last renewal


class _DropReporter:
    """Logs drops at most once per interval, with the count since the last line."""

    def __init__(self, interval: float):
        self._interval = interval
        self._last_report: float | None = None
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
                 rand: Callable[[], float] = random.random, store: DeliveryStore | None = None,
                 spool_path: str | None = None,
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
        self._policies = Policies.from_config(config, policy)
        self._hosts = Hosts(CircuitPolicy(config.circuit_failures, config.circuit_open_seconds),
                            config.max_connections_per_host)
        self._rand = rand
        self._clock = clock
        self._known_hooks: dict[str, Hook] = {}
        self._lookup = hook_lookup or self._known_hooks.get
        self._on_disable = on_disable
        self.on_attempt = on_attempt          # e.g. the metrics' latency histogram
        if store is None:     # tests and tools: the embedded store, in memory or at spool_path
            from eslhook.stores import embedded_delivery_store
            store = embedded_delivery_store(spool_path, config)
        self._store = store
        # fleet mode: the store says which lanes this instance delivers (_owned)
        self._claiming = isinstance(store, ClaimsLanes)
        if isinstance(store, ClaimsLanes):
            store.claim_lanes(self._owned, self._renewed)
        self._resumed: SpoolContents | None = self._store.contents()  # a previous run's pending
        self._next_id = self._resumed.next_id
        self._lanes = Lanes()
        self._ready: Queue = Queue()
        self._health: dict[str, HookHealth] = {}
        self._disabling: set[str] = set()     # hooks whose hooks.yaml write is under way
        self._workers = Group()               # max_in_flight attempt workers
        self._group = Group()                 # loaders, pruner, disablers
        self._supervisor = Supervisor()       # the bridge's, once start() is given it
        self._stats = DeliveryStats()
        self._idle = Event()
        self._idle.set()
        self._started = False
        self._accepting = True
        self._stopping = False
        self._drops = _DropReporter(DROP_REPORT_INTERVAL_SECONDS)
        self._read_errors = OncePerInterval(DROP_REPORT_INTERVAL_SECONDS)

    @property
    def stats(self) -> DeliveryStats:
        """A snapshot of the counters."""
        snapshot = replace(self._stats)
        snapshot.resident = self._lanes.resident
        snapshot.lanes_waiting = self._lanes.count(WAITING)
        snapshot.lanes_held = self._lanes.count(HELD)
        snapshot.not_durable = self._store.not_durable
        snapshot.unrecorded = self._store.unrecorded
        snapshot.spool_error = self._store.failure
        if isinstance(self._store, ClaimsLanes):   # fleet mode
            # another instance may deliver what was submitted here
            snapshot.pending = self._store.backlog + self._lanes.resident
            snapshot.fleet = True
            snapshot.duplicates = self._store.duplicates
            snapshot.leases_held = self._store.leases_held
        return snapshot

    # -- producer side (ESL reader greenlet): never blocks -------------------------

    def submit(self, hook: Hook, payload: Payload, *, trigger: str = EVENT,
               hold_seconds: float = 0.0) -> bool:
        """Accept one delivery (never blocks; False: refused and counted).  Fleet mode:
        ``hold_seconds`` keeps it from being attempted sooner (an event of a call this
        instance joined late: another instance may be committing its earlier events,
        which its lane puts first by sequence)."""
        if not self._accepting:
            return self._drop("queue stopped", hook)
        # memory bound: resident deliveries, and those not committed yet (mostly the same;
        # with a full disk, the not-durable ones, delivered from the spool's memory)
        if max(self._lanes.resident, self._store.backlog) >= self._config.buffer_size:
            return self._drop("buffer full (%d)" % self._config.buffer_size, hook)
        # Only bookkeeping here: the request is encoded by the attempt, the row by the
        # spool's flusher, so the reader's cost per matching hook stays small.
        self._known_hooks[hook.id] = hook
        call_id = payload["call_id"] if "call_id" in payload else None  # not in a notice
        event_id = payload.get("event_id")
        now = self._clock()
        delivery = Delivery(self._take_id(), hook, payload, call_id, event_id,
                            payload.get("hook_event"), make_webhook_id(event_id, hook.id),
                            now, next_attempt=now + hold_seconds if hold_seconds else None,
                            trigger=trigger)
        self._store.added(delivery)      # write-ahead: committed within a few ms
        self._stats.submitted += 1
        if self._claiming:               # attempted once the store says the lane is ours
            return True
        self._add_pending(1)
        lane = self._lanes.submit(delivery)
        if lane is not None:
            self._schedule(lane)
        return True

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

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

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Resume what the spool holds, then start delivering."""
        if self._started or self._stopping:
            raise RuntimeError("DeliveryQueue.start: already started or stopped")
        self._started = True
        self._supervisor = supervisor or self._supervisor
        contents, self._resumed = self._resumed, None
        assert contents is not None     # only the first start() gets here
        self._add_pending(contents.pending)
        now = self._clock()
        for key, next_attempt in contents.lanes.items():
            self._wait(self._lanes.resumed(key), max(0.0, (next_attempt or now) - now))
        if contents.pending:
            log.info("resuming %d pending webhook deliveries in %d lanes from %s",
                     contents.pending, len(contents.lanes), self._store.location)
        self._store.start(self._supervisor)
        for _ in range(self._config.max_in_flight):
            self._spawn("delivery worker", self._work, group=self._workers)
        self._spawn("attempt log pruner", prune_loop, self._store, self._clock,
                    self._config.attempt_log_days)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or in flight; False if ``timeout`` passed first.
        Fleet mode: nothing handed to the store uncommitted and no lane held here."""
        if not self._claiming:
            return bool(self._idle.wait(timeout))
        deadline = time.monotonic() + timeout
        while self._store.backlog or self._lanes.lanes or self._stats.in_flight:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.01)
        return True

    def stop(self, deadline: Deadline | None = None, *, timeout: float | None = None) -> None:
        """Stop accepting; keep delivering what can go before ``deadline`` (or
        ``timeout`` seconds from now; retries due by then included); then cancel retry
        waits, kill attempts still running and commit everything pending to the
        spool, for the next start to resume."""
        deadline = deadline_of(deadline, 10.0 if timeout is None else timeout)
        self._accepting = False
        if self._started:
            while not deadline.passed and not self._drained(deadline.at):
                gevent.sleep(0.02)
        self._stopping = self._lanes.stopping = True
        for lane in self._lanes:
            _close_timer(lane)
        self._ready.put_nowait(_STOP)
        self._workers.join(timeout=deadline.left())
        if len(self._workers):
            log.warning("killing %d delivery attempts still running at the shutdown "
                        "deadline", self._stats.in_flight)
            self._workers.kill(block=True, timeout=KILL_GRACE_SECONDS)
        self._group.kill(block=True, timeout=KILL_GRACE_SECONDS)
        self._store.close(deadline)
        if self.stats.pending:
            log.warning("stopped with %d undelivered webhook deliveries, kept in %s",
                        self.stats.pending, self._store.location)
        if self._owns_sender:
            self._sender.close()

    def _drained(self, deadline: float) -> bool:
        """Nothing more can happen before ``deadline``: no attempt running, no lane ready
        or loading, no retry due before it."""
        if self._stats.in_flight:
            return False
        now, left = self._clock(), deadline - time.monotonic()
        for lane in self._lanes.lanes.values():
            if lane.state in (ACTIVE, LOADING):
                return False
            if lane.state == WAITING and lane.timer is not None and lane.due - now < left:
                return False
        return True

    # -- dispatching ----------------------------------------------------------------

    def _schedule(self, lane: Lane) -> None:
        if self._lanes.schedule(lane):
            self._ready.put_nowait(lane.key)

    def _step(self, lane: Lane, step: str) -> None:
        """Do what the lane state machine asked for."""
        if step == SCHEDULE:
            self._schedule(lane)
        elif step == LOAD:
            self._load_soon(lane)

    def _spawn(self, name: str, function: Callable[..., Any], *args: Any,
               group: Group | None = None) -> None:
        """A loop of this queue: restarted should a bug end it (workers: so that
        max_in_flight of them stay)."""
        self._supervisor.spawn_supervised(name, function, *args, how=RESTART,
                                          group=group if group is not None else self._group)

    def _spawn_task(self, name: str, function: Callable[..., Any], *args: Any) -> None:
        self._supervisor.spawn_supervised(name, function, *args, how=TASK, group=self._group)

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

    def _admit(self, key: LaneKey) -> tuple[Lane, Delivery, Hashable] | None:
        """(lane, head, host) when the lane's head may be attempted now; else None, the
        lane having been parked for its host's circuit or queued for a connection slot."""
        taken = self._lanes.head(key)
        if taken is None:
            return None
        lane, head = taken
        host = host_key(head.hook.uri)
        if host is not None:
            now = self._clock()
            verdict, circuit = self._hosts.admit(host, key, now)
            if verdict == PARKED:   # the host is failing: wait in the spool, not in a slot
                lane.scheduled = False
                self._retry_at(lane, head, self._hosts.park_delay(circuit, now, self._rand()))
                return None
            if verdict != ADMITTED:
                return None
        return lane, head, host

    def _release_host(self, host: Hashable) -> None:
        if host is not None:
            key = self._hosts.release(host)
            if key is not None:
                self._ready.put_nowait(key)

    # -- one attempt --------------------------------------------------------------

    def _attempt(self, lane: Lane, head: Delivery, host: Hashable) -> None:
        hook = self._current_hook(head)
        self._stats.in_flight += 1
        try:
            outcome = self._send(head, hook) if hook is not None else None
        except Exception:   # a bug, not a delivery failure: do not stall the lane
            log.exception("delivery of event %s to hook %s crashed (a bug in eslhook); "
                          "giving up", head.event_id, head.hook.id)
            # the receiver's attempt log says only this; the traceback is the operator's
            outcome = Outcome(None, INTERNAL_ERROR, error="internal error")
        finally:
            self._stats.in_flight -= 1
            self._release_host(host)
            lane.scheduled = False
        if hook is None:
            return self._hook_gone(lane)
        if not hook.enabled:
            return self._hold(lane)
        assert outcome is not None      # there was a hook to send to
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
        delivery.sent_headers = signed
        return self._sender.send(request, signed)

    def _settle(self, lane: Lane, head: Delivery, hook: Hook, host: Hashable,
                outcome: Outcome) -> None:
        now = self._clock()
        head.attempts += 1
        health = self._health.get(hook.id, HEALTHY)
        if head.trigger == TEST:   # one try; a probe neither sickens nor disables the hook
            decision = decide(outcome, Attempt(head.attempts, health),
                              replace(hook, retries=0), self._policies, now, self._rand())
            decision = decision._replace(health=health, disable=None)
        else:
            decision = decide(outcome, Attempt(head.attempts, health), hook, self._policies,
                              now, self._rand())
        self._store.attempted(attempt_record(head, hook, outcome, decision, now,
                                             head.sent_headers))
        if self.on_attempt is not None:
            self.on_attempt(hook, outcome)
        if host is not None:
            for key in self._hosts.settled(host, outcome, now):
                self._ready.put_nowait(key)       # queued for a slot: to the spool
        self._health[hook.id] = decision.health
        self._follow(lane, head, hook, outcome, decision, now)
        if decision.disable is not None:
            self._disable(hook, decision.disable)

    def _follow(self, lane: Lane, head: Delivery, hook: Hook, outcome: Outcome,
                decision: Decision, now: float) -> None:
        if decision.action == DELIVER:
            self._stats.delivered += 1
            self._finish(lane, head, DELIVERED, now)
        elif decision.action == RETRY:
            assert decision.delay is not None     # a RETRY decision always has one
            self._stats.retried += 1
            log.info("retrying %s to hook %s (call %s) in %.2fs after attempt %d: %s %s",
                     head.hook_event, hook.id, head.call_id, decision.delay, head.attempts,
                     outcome.reason, outcome.status or outcome.error or "")
            self._retry_at(lane, head, decision.delay)
        else:
            self._give_up(head, outcome)
            self._finish(lane, head, FAILED, now)

    def _retry_at(self, lane: Lane, head: Delivery, delay: float) -> None:
        """The head's next try is ``delay`` from now: recorded, and the lane waits."""
        head.next_attempt = self._clock() + delay
        self._store.changed(head)
        self._wait(lane, delay)

    def _give_up(self, delivery: Delivery, outcome: Outcome) -> None:
        self._stats.given_up += 1
        log.warning("giving up %s (event %s) to hook %s for call %s after %d attempt(s): "
                    "%s %s", delivery.hook_event, delivery.event_id, delivery.hook.id,
                    delivery.call_id, delivery.attempts, outcome.reason,
                    outcome.status or outcome.error or "")

    def _finish(self, lane: Lane, head: Delivery, state: str, now: float) -> None:
        head.state, head.finished = state, now
        self._store.changed(head)
        self._add_pending(-1)
        self._step(lane, self._lanes.finished(lane, head))

    # -- waiting in the spool, reading back ---------------------------------------

    def _wait(self, lane: Lane, delay: float) -> None:
        """Everything of the lane now waits in the spool; back after ``delay``."""
        if not self._lanes.wait(lane, self._clock() + delay):
            return
        _close_timer(lane)
        lane.timer = gevent.get_hub().loop.timer(delay)
        lane.timer.start(self._due, lane)

    def _due(self, lane: Lane) -> None:
        # runs in the hub: must not block (spawning does not)
        _close_timer(lane)
        if self._lanes.is_due(lane):
            self._load_soon(lane)

    def _load_soon(self, lane: Lane) -> None:
        self._lanes.loading(lane)
        self._spawn_task("delivery lane loader", self._load, lane)

    def _load(self, lane: Lane) -> None:
        hook_id, call_id = lane.key
        for _ in range(1000):       # bounded: each round ends deliveries or loads some
            self._lanes.reading(lane)
            try:
                rows = self._store.lane(hook_id, call_id, LOAD_BATCH)
            except DeliveryStoreError as exc:    # the database away: read again later
                return self._read_failed(lane, exc)
            if not self._lanes.read_still_wanted(lane):
                return
            hook = self._lookup(hook_id)
            if hook is None:
                return self._hook_gone(lane)
            if not hook.enabled or hook_id in self._lanes.held_hooks:
                return self._hold(lane)
            step = self._lanes.loaded(lane, self._expire(rows, hook), len(rows) >= LOAD_BATCH)
            if step == SCHEDULE and lane.items[0].next_attempt is not None:
                wait = lane.items[0].next_attempt - self._clock()
                if wait > 0:        # a head held at submit (fleet: joined mid-call)
                    return self._wait(lane, wait)
            if step != LOAD:
                return self._step(lane, step)
        log.error("lane of hook %s, call %s: still loading after 1000 rounds", hook_id, call_id)

    def _read_failed(self, lane: Lane, exc: DeliveryStoreError) -> None:
        """A lane that could not be read back waits and is read again (a loader that
        died here left its lane loading for good: its deliveries never went)."""
        if self._read_errors.due():
            log.error("delivery lanes cannot be read back from %s (%s): retrying every "
                      "%gs", self._store.location, exc, LOAD_RETRY_SECONDS)
        if self._lanes.read_still_wanted(lane):      # not held or stopped meanwhile
            self._wait(lane, LOAD_RETRY_SECONDS)

    def _expire(self, rows: list[StoredDelivery], hook: Hook) -> list[Delivery]:
        """Deliveries for the rows; those older than max_age_seconds are ended."""
        now = self._clock()
        fresh = []
        for row in rows:
            delivery = Delivery(row.id, hook, row.payload, row.call_id, row.event_id,
                                row.hook_event, row.webhook_id, row.created, row.attempts,
                                row.next_attempt, trigger=row.trigger)
            if now - row.created > self._config.max_age_seconds:
                delivery.state, delivery.finished = EXPIRED, now
                self._store.changed(delivery)
                self._stats.expired += 1
                self._add_pending(-1)
            else:
                fresh.append(delivery)
        if len(fresh) < len(rows):
            log.warning("hook %s: %d pending deliveries older than %gs dropped", hook.id,
                        len(rows) - len(fresh), self._config.max_age_seconds)
        return fresh

    def _hold(self, lane: Lane) -> None:
        self._lanes.hold(lane)
        _close_timer(lane)

    def _hook_gone(self, lane: Lane) -> None:
        """The hook was deleted: its pending deliveries end."""
        self._lanes.forget(lane)
        _close_timer(lane)
        ended = self._store.end_lane(lane.key[0], lane.key[1], DROPPED)
        self._add_pending(-ended)
        if ended:
            log.warning("hook %s no longer exists: %d pending deliveries dropped",
                        lane.key[0], ended)

    # -- disable and resume -----------------------------------------------------------

    def _disable(self, hook: Hook, reason: str) -> None:
        held = self._lanes.disable(hook.id)
        if held is None:
            return
        for lane in held:
            _close_timer(lane)
        self._stats.hooks_disabled += 1
        log.warning("disabling hook %s (%s): %s; its pending deliveries wait in the spool",
                    hook.id, hook.name, reason)
        if self._on_disable is not None:
            self._disabling.add(hook.id)
            self._spawn_task("hook disabler", self._run_on_disable, hook, reason)

    def _run_on_disable(self, hook: Hook, reason: str) -> None:
        on_disable = self._on_disable
        assert on_disable is not None   # spawned only when there is one
        try:
            on_disable(hook, reason)
        finally:
            self._disabling.discard(hook.id)

    def resume_hook(self, hook_id: str) -> int:
        """The hook was enabled again: send what waits for it (except what is older
        than ``max_age_seconds``).  Returns the number of lanes resumed."""
        self._health.pop(hook_id, None)
        lanes = self._lanes.resume(hook_id)
        for lane in lanes:
            self._load_soon(lane)
        return len(lanes)

    def refresh_hooks(self) -> None:
        """After hooks.yaml changed: resume held lanes of hooks enabled again by hand,
        end those of deleted hooks."""
        for hook_id in self._lanes.held_hook_ids():
            if hook_id in self._disabling:
                continue
            hook = self._lookup(hook_id)
            if hook is None or hook.enabled:
                self.resume_hook(hook_id)

    # -- attempt log and replay (for the REST API) -------------------------------------

    def attempts(self, account_id: str, hook_id: str | None = None, *, page_size: int = 50,
                 start_key: str | None = None,
                 only: AttemptFilter = AttemptFilter()) -> AttemptPage:
        """The attempt log of an account (or one of its hooks), newest first, the
        records ``only`` lets through.  ``start_key``: the ``next_start_key`` of the
        previous page.  ValueError for a bad page_size or start_key."""
        key = page_start(page_size, start_key)
        return self._store.attempts_page(account_id, hook_id, page_size, key, only)

    def resend(self, hook: Hook, attempt_id: int) -> str | None:
        """Send again the delivery the hook's attempt ``attempt_id`` was made for: a
        new delivery (trigger ``resend``, the hook's retries), the same payload and
        ``webhook-id``, after what its call has pending.  Its webhook-id, or None if
        the attempt (or its delivery) is no longer kept."""
        row = self._store.attempted_delivery(hook.account_id, hook.id, attempt_id)
        if row is None:
            return None
        self._queue_copies(hook, replay_copies([row], hook, self._take_id, self._clock(),
                                               RESEND))
        log.info("resending delivery %s to hook %s (attempt %d)", row.webhook_id, hook.id,
                 attempt_id)
        return row.webhook_id

    def test(self, hook: Hook, payload: Payload) -> bool:
        """Send ``payload`` to the hook once (trigger ``test``: no retries, the hook's
        health untouched), through the normal path: its network policy, signature,
        host limits.  False when the queue refused it (stopped, buffer full)."""
        return self.submit(hook, payload, trigger=TEST)

    def replay(self, hook: Hook, since: float, until: float) -> int:
        """Send again the deliveries of ``hook`` accepted in [since, until) (unix times)
        and already finished: new attempts, same ``webhook-id``, in their original order.
        Returns how many were queued.  ValueError for an empty or inverted window."""
        if not since < until:
            raise ValueError("since: must be before until")
        rows = self._store.window(hook.id, since, until, REPLAY_LIMIT)
        if not rows:
            return 0
        copies = replay_copies(rows, hook, self._take_id, self._clock())
        self._queue_copies(hook, copies)
        log.info("replaying %d deliveries to hook %s", len(copies), hook.id)
        return len(copies)

    def _owned(self, keys: list[LaneKey]) -> None:
        """The store committed lanes this instance holds (fleet mode): read back each
        one not already reading or holding what the store has."""
        if self._stopping:
            return
        for key in keys:
            lane = self._lanes.spool_arrival(key)
            if lane is not None:
                self._load_soon(lane)

    def _renewed(self, keys: list[LaneKey]) -> None:
        """The renewal's list of every lane this instance holds (fleet mode): a lane in
        memory that is not on it was taken over (this instance paused or cut off from
        the database past its lease), so it leaves memory: only the new holder sends
        it from now on (an attempt already running ends; a repeat has the same
        webhook-id).  Then the held ones are read back as after a commit."""
        held = set(keys)
        # only a lane with pending work can have been taken: a lease is released when
        # its lane has nothing pending (a lane just reading back or ending has none)
        lost = [lane for key, lane in self._lanes.lanes.items()
                if key not in held and (lane.items or lane.state == WAITING)]
        for lane in lost:
            self._lanes.forget(lane)
            _close_timer(lane)
        if lost:
            self._stats.lanes_lost += len(lost)
            log.warning("%d delivery lane(s) were taken over by another instance (this one "
                        "was cut off from the database or paused longer than the lease): "
                        "no longer delivered from here", len(lost))
        self._owned(keys)

    def _queue_copies(self, hook: Hook, copies: list[DeliveryRow]) -> None:
        """New pending deliveries, durably in the store first, then their lanes."""
        self._store.insert_copies(copies)
        self._known_hooks.setdefault(hook.id, hook)
        self._add_pending(len(copies))
        if self._claiming:       # the store woke the lanes this instance holds
            return
        for call_id in dict.fromkeys(copy.call_id or None for copy in copies):
            lane = self._lanes.spool_arrival((hook.id, call_id))
            if lane is not None:
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
        self._spawn("hooks follower", follow)


def _close_timer(lane: Lane) -> None:
    if lane.timer is not None:
        lane.timer.close()
        lane.timer = None

