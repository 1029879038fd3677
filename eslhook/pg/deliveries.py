"""The delivery store on PostgreSQL (fleet mode): ``delivery/store.py``'s interface,
the tables of migration 002, the SQL in ``pg/deliveries_sql.py``.

As the SQLite spool: ``added``/``changed``/``attempted`` only hand the change over
(a dict or list append on the hub); a flusher greenlet commits what gathered every
``FLUSH_INTERVAL_SECONDS`` as one batch, one statement, one round trip.  psycopg
waits on its socket through gevent's hub (it detects the monkey patching), so no
database call blocks the hub.  Reads flush first, so they see everything handed
over before them.

Several instances share the tables:

- Delivery ids: each instance makes them in its own range (``fleet_instances``:
  a number per instance name, ids ``number * 2^40 + 1 ...``); a lane is read in
  commit order (``seq``), which is each call's event order whichever instance
  enqueued which event (an instance commits its events in the order it heard them,
  and a conflicting insert waits for the first one's commit).
- Exactly once into the queue: a call event's delivery is inserted under the
  unique (hook, event) key with ``ON CONFLICT DO NOTHING``; when another instance
  was first, this instance's delivery is a *duplicate*: counted, reported to
  ``on_duplicate`` (the queue's cue not to deliver it) and nothing more of it is
  recorded (its changes and attempts name a row that is not there).
- Lanes (fleet mode, once a queue calls ``claim_lanes``): each batch claims the
  leases of its new rows' lanes (table ``lanes``, migration 004), a renewer greenlet
  extends this instance's leases, releases finished lanes' and takes over expired
  ones; ``on_owned`` tells the queue which lanes it holds, the only ones it delivers
  (docs/fleet.md, third landing).

While commits fail (the database away, a full disk) nothing pending is lost: the
deliveries not committed stay in memory, lane reads serve them after the
database's rows, and commits are retried every ``commit_retry_seconds``;
finished deliveries and attempt records beyond ``memory_limit`` are given up and
counted (``unrecorded``).  The driver's errors stop here (``DeliveryStoreError``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterable, Iterator, TypeVar

import gevent
import psycopg
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from gevent.pool import Group

from eslhook.delivery.rows import (
    PENDING, AttemptRecord, Delivery, DeliveryRow, SpoolContents, StoredDelivery, overlaid)
from eslhook.delivery.store import (
    BackgroundCommits, DeliveryStoreError, DeliveryStoreUnusable, StatementReads)
# storage.lease_seconds / renew_seconds' defaults: a lane whose owner stopped renewing
# is taken over after the lease; renewals and takeover scans come this often
from eslhook.config.semantics import LEASE_SECONDS, RENEW_SECONDS
from eslhook.logs import OncePerInterval
from eslhook.supervise import CRITICAL, Deadline, Supervisor

from . import deliveries_sql as sql
from .database import Database, error_line

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.005
COMMIT_RETRY_SECONDS = 1.0
ERROR_REPORT_INTERVAL_SECONDS = 10.0
# SQLSTATEs of a schema that is not migration 002's: the store cannot be used
_BROKEN_SCHEMA = ("42P01", "42703")      # undefined_table, undefined_column
T = TypeVar("T")
LaneKey = tuple[str, "str | None"]


class PgDeliveryStore(BackgroundCommits, StatementReads):
    _statements = sql            # the reads of StatementReads

    def __init__(self, database: Database, instance: str, *,
                 flush_interval: float = FLUSH_INTERVAL_SECONDS, memory_limit: int = 10_000,
                 commit_retry_seconds: float = COMMIT_RETRY_SECONDS,
                 error_report_seconds: float = ERROR_REPORT_INTERVAL_SECONDS,
                 on_duplicate: Callable[[Delivery], None] | None = None,
                 lease_seconds: float = LEASE_SECONDS, renew_seconds: float = RENEW_SECONDS):
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError("renew_seconds: must be above 0 and below lease_seconds")
        self.database = database
        self.instance = instance
        self.on_duplicate = on_duplicate
        self._flush_interval = flush_interval
        self._memory_limit = memory_limit
        self._retry_seconds, self._report_seconds = commit_retry_seconds, error_report_seconds
        self._new: dict[int, Delivery] = {}         # handed over, not committed
        self._changed: dict[int, Delivery] = {}     # committed, changed since
        self._attempts: list[AttemptRecord] = []
        self._duplicates: set[int] = set()          # pending here, enqueued by another
        self._committing = 0
        self._dirty = Event()
        self._closing = Event()
        self._lock = Semaphore()                    # one unit of database work at a time
        self._group = Group()
        self._closed = False
        self._error: str | None = None              # why commits fail now
        self._retry_at = 0.0
        self._commit_errors = OncePerInterval(error_report_seconds)
        self.unrecorded = 0
        self.duplicates = 0                          # a running total
        self._lease_seconds, self._renew_seconds = lease_seconds, renew_seconds
        self._on_owned: Callable[[list[LaneKey]], None] | None = None   # claiming lanes
        self._on_renewed: Callable[[list[LaneKey]], None] | None = None
        self._renew_error: str | None = None       # why the last renewal failed
        self._claimed_meanwhile: set[LaneKey] | None = None   # while a renewal runs
        # lane reads waiting for the lock
        self._wanted: dict[LaneKey, AsyncResult[list[StoredDelivery]]] = {}
        self.leases_held = 0                        # lanes leased here, at the last renewal

    @property
    def location(self) -> str:
        return self.database.location

    @property
    def failure(self) -> str | None:
        """Why commits (or, in fleet mode, lease renewals) fail now: the database away."""
        return self._error or self._renew_error

    @property
    def _owner(self) -> str | None:
        return self.instance if self._on_owned is not None else None

    def contents(self) -> SpoolContents:
        with self._lock, _unit(self.database, "open") as connection:
            return sql.contents(connection, sql.instance_number(connection, self.instance),
                                self._owner)

    def claim_lanes(self, on_owned: Callable[[list[LaneKey]], None],
                    on_renewed: Callable[[list[LaneKey]], None] | None = None) -> None:
        """Fleet mode (``delivery/store.py``'s ``ClaimsLanes``): each batch claims the
        lanes of its new rows, a renewer keeps and takes over leases."""
        self._on_owned, self._on_renewed = on_owned, on_renewed or on_owned

    def start(self, supervisor: Supervisor | None = None) -> None:
        supervisor = supervisor or Supervisor()
        supervisor.spawn_supervised(
            "delivery store flusher", self._flush_loop, how=CRITICAL, group=self._group)
        if self._on_owned is not None:
            supervisor.spawn_supervised("delivery lane lease renewer", self._lease_loop,
                                        how=CRITICAL, group=self._group)
            supervisor.spawn_supervised("delivery lane listener", self._listen_loop,
                                        how=CRITICAL, group=self._group)

    # -- recording (hub side, never blocks) ---------------------------------------
    def added(self, delivery: Delivery) -> None:
        self._new[delivery.id] = delivery
        self._dirty.set()

    def changed(self, delivery: Delivery) -> None:
        if delivery.id in self._duplicates:
            if delivery.state != PENDING:
                self._duplicates.discard(delivery.id)
        elif delivery.id in self._new:     # a new row is captured as it is at commit time
            self._new[delivery.id] = delivery
        else:
            self._changed[delivery.id] = delivery
            self._dirty.set()

    def attempted(self, record: AttemptRecord) -> None:
        if record.delivery_id not in self._duplicates:
            self._attempts.append(record)
            self._dirty.set()

    # -- committing ---------------------------------------------------------------
    def _flush_locked(self, force: bool = False) -> None:
        if self._error is not None and not force and time.monotonic() < self._retry_at:
            return
        inserted, changed, attempts = list(self._new.values()), self._changed, self._attempts
        if not (inserted or changed or attempts):
            return
        self._new, self._changed, self._attempts = {}, {}, []
        once = [sql.once_key(d.trigger, d.event_id, d.hook_event, d.payload)
                for d in inserted]
        batch = sql.Batch([d.row() for d in inserted], once,
                          [(d.attempts, d.next_attempt, d.state, d.finished, d.id)
                           for d in changed.values()], attempts,
                          self._owner, self._lease_seconds)
        self._committing = len(inserted)
        try:
            with self.database.connection() as connection:
                applied = sql.apply(connection, batch)
        except psycopg.Error as exc:   # the pool's timeout included
            self._committing = 0       # back in _new: counted once in the backlog
            self._keep(inserted, changed, attempts)
            self._failed(exc)
            return
        except BaseException:          # killed (closing): keep everything for the next try
            self._keep(inserted, changed, attempts)
            raise
        finally:
            self._committing = 0
        if self._error is not None:
            log.warning("delivery store %s: commits succeed again", self.location)
            self._error = None
            self._commit_errors.clear()
        for delivery, first in zip(inserted, once):
            if first is not None and delivery.id not in applied.inserted:
                self._duplicate(delivery)
        if applied.owned:
            self._owned(applied.owned)

    def _owned(self, keys: list[LaneKey]) -> None:
        """Lanes held here, with deliveries: to the queue (and noted for a renewal
        under way, whose list of lanes held was read before)."""
        if self._claimed_meanwhile is not None:
            self._claimed_meanwhile.update(keys)
        if self._on_owned is not None:
            self._on_owned(keys)

    def _lease_loop(self) -> None:
        report = OncePerInterval(self._report_seconds)
        while not self._closing.wait(self._renew_seconds):     # set when closing
            try:
                self.renew_leases()
                report.clear()
            except DeliveryStoreError as exc:
                if not report.due():
                    continue
                log.error("delivery store %s: cannot renew lane leases (%s); lanes held "
                          "here are taken over by other instances %gs after the last "
                          "renewal", self.location, exc, self._lease_seconds)

    def _listen_loop(self) -> None:
        """Rows another instance added to a lane held here are read back at once (its
        NOTIFY), not at the next renewal; while the listening connection is lost the
        renewals still wake them (every ``renew_seconds``)."""
        report = OncePerInterval(self._report_seconds)
        while not self._closing.is_set():
            try:
                with self.database.dedicated() as connection:
                    connection.execute("LISTEN " + sql.LANES_CHANNEL)
                    report.clear()
                    while not self._closing.is_set():
                        self._woken(connection.notifies(timeout=1.0))
            except (psycopg.Error, OSError) as exc:
                if report.due():
                    log.warning("delivery store %s: lane notices not heard (%s): lanes "
                                "are woken by the renewals meanwhile", self.location,
                                error_line(exc))
                self._closing.wait(self._retry_seconds)

    def _woken(self, notices: Iterable[psycopg.Notify]) -> None:
        for notice in notices:
            parsed = sql.parse_lane_notice(notice.payload)
            if parsed is not None and parsed[0] == self.instance:
                self._owned([parsed[1]])

    def renew_leases(self) -> None:
        """One round of the renewer: extend this instance's leases, release those of
        finished lanes, take over expired ones, wake the lanes held with rows pending
        (those another instance added to included)."""
        # Not behind the store's lock: a busy instance's reads and commits must not
        # hold a renewal past the lease (its lanes would be taken from it).  Lanes
        # claimed by a commit meanwhile count as held, though the renewal's list
        # was read before.
        claimed: set[LaneKey] = set()
        self._claimed_meanwhile = claimed
        try:
            with _unit(self.database, "renew_leases") as connection:
                owned = sql.renew_leases(connection, self.instance, self._lease_seconds)
        except DeliveryStoreError as exc:
            self._renew_error = str(exc)
            raise
        finally:
            self._claimed_meanwhile = None
        self._renew_error, self.leases_held = None, len(owned)
        if self._on_renewed is not None:
            self._on_renewed(owned + sorted(claimed - set(owned), key=str))

    def _duplicate(self, delivery: Delivery) -> None:
        self.duplicates += 1
        self._changed.pop(delivery.id, None)
        self._attempts = [a for a in self._attempts if a.delivery_id != delivery.id]
        if delivery.state == PENDING:
            self._duplicates.add(delivery.id)
        if self.on_duplicate is not None:
            self.on_duplicate(delivery)

    def _keep(self, inserted: list[Delivery], changed: dict[int, Delivery],
              attempts: list[AttemptRecord]) -> None:
        """Put back what was not committed, before what came meanwhile."""
        for delivery_id, delivery in changed.items():
            self._changed.setdefault(delivery_id, delivery)       # a newer change wins
        newer, self._new = self._new, {}
        for delivery in inserted:      # not in the database: the insert takes the latest
            self._new[delivery.id] = self._changed.pop(delivery.id, delivery)
        self._new.update(newer)
        self._attempts = attempts + self._attempts
        self._trim()

    def _trim(self) -> None:
        """Memory bound while commits fail: finished deliveries and attempt records
        beyond ``memory_limit`` each are given up, oldest first (pending ones are
        bounded by delivery.buffer_size, in DeliveryQueue.submit)."""
        finished = [i for i, d in self._new.items() if d.state != PENDING]
        for delivery_id in finished[:max(0, len(finished) - self._memory_limit)]:
            del self._new[delivery_id]
        extra = max(0, len(self._attempts) - self._memory_limit)
        del self._attempts[:extra]
        self.unrecorded += max(0, len(finished) - self._memory_limit) + extra

    def _failed(self, exc: BaseException) -> None:
        self._error = error_line(exc)
        self._retry_at = time.monotonic() + self._retry_seconds
        if self._commit_errors.due():
            log.error("delivery store %s: cannot commit (%s): %d deliveries held in memory "
                      "(%s); retrying every %gs", self.location, self._error, self.backlog,
                      "delivery paused: the database decides who sends each lane"
                      if self._owner else "still delivered", self._retry_seconds)

    def _next_retry(self) -> float | None:
        return self._retry_at if self._error is not None else None

    # -- reads and maintenance (flush first, so they see everything handed over) ---
    def _call(self, method: Callable[..., T], *args: object) -> T:
        with self._lock:
            self._flush_locked()
            with _unit(self.database, method.__name__) as connection:
                return method(connection, *args)

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        """One lane's first ``limit`` pending rows.  Lanes asked for while another read
        waits for the store's lock are read together, in one round trip, by whichever
        gets the lock first (a busy instance wakes hundreds of lanes per second)."""
        key = (hook_id, call_id or None)
        wanted = self._wanted.get(key)
        if wanted is None:
            wanted = self._wanted[key] = AsyncResult()
        with self._lock:
            if not wanted.ready():
                self._read_wanted(limit)
        rows = wanted.get()            # the read's DeliveryStoreError, for each asker
        assert rows is not None        # set, never with None
        return rows

    def _read_wanted(self, limit: int) -> None:
        asked, self._wanted = self._wanted, {}
        try:
            self._flush_locked()
            with _unit(self.database, "lane") as connection:
                found = sql.lanes(connection, list(asked), limit)
        except BaseException as exc:   # every asker hears of it, none waits for good
            failure = exc if isinstance(exc, DeliveryStoreError) else \
                DeliveryStoreError("lane: the read was interrupted")
            for result in asked.values():
                result.set_exception(failure)
            if failure is not exc:
                raise
            return
        for key, result in asked.items():
            result.set(self._with_uncommitted(key, found[key], limit))

    def _with_uncommitted(self, key: LaneKey, rows: list[StoredDelivery],
                          limit: int) -> list[StoredDelivery]:
        if self._changed:              # changes not committed yet win
            rows = [r for r in (overlaid(row, self._changed.get(row.id)) for row in rows)
                    if r is not None]
        if self._error is None or len(rows) >= limit:
            return rows                # held ones come after the database's rows
        return rows + [StoredDelivery.of(d) for d in self._new.values()
                       if d.state == PENDING and (d.hook.id, d.call_id or None) == key]

    def end_lane(self, hook_id: str, call_id: str | None, state: str) -> int:
        now = time.time()
        ended = 0
        for delivery in list(self._new.values()):
            if (delivery.hook.id, delivery.call_id or None) == (hook_id, call_id or None) \
                    and delivery.state == PENDING:
                delivery.state, delivery.finished = state, now
                ended += 1
        try:
            return ended + self._call(sql.end_lane, hook_id, call_id, state, now)
        except DeliveryStoreError as exc:
            log.error("delivery store %s: cannot end the pending deliveries of hook %s, "
                      "call %s (%s)", self.location, hook_id, call_id, exc)
            return ended

    def insert_copies(self, rows: Iterable[DeliveryRow]) -> None:
        owned = self._call(sql.insert_copies, list(rows), self._owner, self._lease_seconds)
        if owned:
            self._owned(owned)

    def close(self, deadline: Deadline | None = None) -> None:
        """Stop the flusher, commit what is left; the pool stays (stores.close)."""
        self._stop_flusher(deadline)
        with self._lock:
            self._flush_locked(force=True)
            if self._error is not None:
                log.error("delivery store %s: %d deliveries could not be committed before "
                          "closing (%s): lost", self.location, self.backlog, self._error)
            elif self._on_owned is not None:   # the others take over at once, not in a lease
                try:
                    with _unit(self.database, "release") as connection:
                        sql.release_leases(connection, self.instance)
                except DeliveryStoreError as exc:
                    log.warning("delivery store %s: lane leases not released (%s): taken "
                                "over when they expire", self.location, exc)


@contextlib.contextmanager
def _unit(database: Database, what: str) -> Iterator[psycopg.Connection]:
    """A pooled connection for one read or maintenance call, the driver's errors as
    the store's (a schema that is not ours: ``DeliveryStoreUnusable``)."""
    try:
        with database.connection() as connection:
            yield connection
    except psycopg.Error as exc:       # the pool's timeout included
        if exc.sqlstate in _BROKEN_SCHEMA:
            raise DeliveryStoreUnusable(
                "the deliveries tables of %s are not as eslhook's migrations made them "
                "(%s). Restore the database, or drop the deliveries and attempts tables "
                "and the schema_version rows from 2 on, then run eslhook migrate (this "
                "loses the pending deliveries and the attempt log)."
                % (database.location, error_line(exc))) from None
        raise DeliveryStoreError("%s: %s" % (what, error_line(exc))) from None


