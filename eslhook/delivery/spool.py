"""The SQLite spool's greenlet side: the delivery store (``delivery/store.py``) of
embedded mode, a SQLite file (WAL) under ``state_dir``, written ahead in batches.

Every delivery accepted by ``DeliveryQueue.submit`` is added to an in-memory
write-ahead batch; a flusher greenlet commits the batch every
``FLUSH_INTERVAL_SECONDS`` (5 ms) in one transaction, in gevent's threadpool,
so the hub never waits on the disk and the fast path costs no SQLite call of
its own.  State changes (attempt counts, next attempt times, delivered/failed)
and attempt-log rows ride in the same batches.  Reads flush first, so a read
sees everything handed over before it.  The schema and the SQL are in
``spool_sql.py`` (``SpoolDb``, the synchronous part, in worker threads).

A commit that fails (a full disk: SQLITE_FULL) is retried in halves down to one
row, committing the longest start of the batch that fits.  What does not fit stays
in memory, "not durable" (``_Failing``): lane reads serve it as if it were in the
file, so it is still delivered in order; every ``COMMIT_RETRY_SECONDS`` the spool
tries again, and it says so once per ``ERROR_REPORT_INTERVAL_SECONDS``.  SQLite's
errors stop here: reads and maintenance that fail raise ``DeliveryStoreError``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable, Iterable, TypeVar

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from eslhook.delivery.rows import (
    PENDING, AttemptRecord, Delivery, DeliveryRow, SpoolContents, StoredDelivery, overlaid)
from eslhook.delivery.spool_sql import Batch, SpoolDb
from eslhook.delivery.store import BackgroundCommits, DeliveryStoreError, StatementReads
from eslhook.supervise import CRITICAL, Deadline, Supervisor
from eslhook.threads import in_threadpool

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.005
ERROR_REPORT_INTERVAL_SECONDS = 10.0   # while commits fail: one log line per interval
COMMIT_RETRY_SECONDS = 1.0             # while commits fail: how often to try again
T = TypeVar("T")


class Spool(BackgroundCommits, StatementReads):
    """Commits in the background what the queue records; while commits fail (a full
    disk), holds the deliveries not committed in memory, serves them to lane reads
    as if they were in the file, and retries every ``COMMIT_RETRY_SECONDS``."""

    _statements = SpoolDb        # the reads of StatementReads

    def __init__(self, path: str, *, flush_interval: float = FLUSH_INTERVAL_SECONDS,
                 memory_limit: int = 10_000, commit_retry_seconds: float = COMMIT_RETRY_SECONDS,
                 error_report_seconds: float = ERROR_REPORT_INTERVAL_SECONDS):
        self.path = path
        self._flush_interval = flush_interval
        self._failing_intervals = (commit_retry_seconds, error_report_seconds)
        self._memory_limit = memory_limit       # finished deliveries / attempt rows held
        self._db = in_threadpool(SpoolDb, path)
        self._new: dict[int, Delivery] = {}        # accepted, not committed yet
        self._changed: dict[int, Delivery] = {}    # in the database, state changed since
        self._attempts: list[AttemptRecord] = []
        self._dirty = Event()
        self._closing = Event()
        self._lock = Semaphore()                   # one database call at a time
        self._group = Group()
        self._closed = False
        self._committing = 0                       # accepted deliveries in the commit running
        self._failing: _Failing | None = None      # set while commits fail
        self.unrecorded = 0    # finished deliveries and attempt rows given up, see _trim

    @property
    def location(self) -> str:
        return self.path

    def contents(self) -> SpoolContents:
        return self._call(SpoolDb.contents)

    def start(self, supervisor: Supervisor | None = None) -> None:
        # critical: without the flusher nothing accepted becomes durable
        (supervisor or Supervisor()).spawn_supervised(
            "spool flusher", self._flush_loop, how=CRITICAL, group=self._group)

    @property
    def failure(self) -> str | None:
        """Why commits fail now (the SQLite error), None while they succeed."""
        return self._failing.error if self._failing is not None else None

    # -- recording (hub side, never blocks) ---------------------------------------
    def added(self, delivery: Delivery) -> None:
        self._new[delivery.id] = delivery
        if self._failing is not None:
            self._failing.hold(delivery)
        self._dirty.set()

    def changed(self, delivery: Delivery) -> None:
        if delivery.id in self._new:    # a new row is captured as it is at commit time
            if self._failing is not None:
                self._failing.changed(delivery, self._new)
            else:
                self._new[delivery.id] = delivery    # a read back made a new object of it
        else:
            self._changed[delivery.id] = delivery
            self._dirty.set()

    def attempted(self, record: AttemptRecord) -> None:
        self._attempts.append(record)
        self._dirty.set()

    # -- committing ---------------------------------------------------------------
    def _flush_locked(self, force: bool = False) -> None:
        failing = self._failing
        if failing is not None and not force and time.monotonic() < failing.retry_at:
            return                     # a full disk: try again at the retry time only
        inserted = list(self._new.values())
        finished = list(failing.unrecorded.values()) if failing is not None else []
        changed, attempts = list(self._changed.values()), self._attempts
        if not (inserted or finished or changed or attempts):
            return
        self._new, self._changed, self._attempts = {}, {}, []
        if failing is not None:
            failing.unrecorded = {}
        batch = Batch([d.row() for d in inserted + finished],
                       [(d.attempts, d.next_attempt, d.state, d.finished, d.id)
                        for d in changed], attempts)
        self._committing = len(inserted)
        try:
            done, error = in_threadpool(self._db.apply_what_fits, batch)
        except BaseException:          # killed (closing): keep everything for the next try
            self._keep(inserted + finished, changed, attempts, 0)
            raise
        finally:
            self._committing = 0
        if error is None:
            if failing is not None:
                self._failing = None
                # finished during this commit: recorded by the next one, like any new row
                self._new.update(failing.unrecorded)
                failing.recovered(self.path, len(inserted))
            return
        self._keep(inserted + finished, changed, attempts, done)
        self._failing = failing or _Failing(self.path, *self._failing_intervals)
        self._failing.regroup(self._new)
        self._trim()
        self._failing.report(error, len(self._new))

    def _trim(self) -> None:
        """Memory bound while commits fail: finished deliveries and attempt rows beyond
        ``memory_limit`` each are given up, oldest first, and counted (pending ones are
        bounded by delivery.buffer_size, in DeliveryQueue.submit)."""
        failing = self._failing
        assert failing is not None          # called while commits fail only
        unrecorded = failing.unrecorded
        excess = max(0, len(unrecorded) - self._memory_limit)
        for delivery_id in list(unrecorded)[:excess]:
            del unrecorded[delivery_id]
        extra = max(0, len(self._attempts) - self._memory_limit)
        del self._attempts[:extra]
        self.unrecorded += excess + extra
        failing.lost += excess + extra

    def _keep(self, inserted: list[Delivery], changed: list[Delivery],
              attempts: list[AttemptRecord], done: int) -> None:
        """Put back what was not committed, before what came meanwhile."""
        changes_at = len(inserted)
        attempts_at = changes_at + len(changed)
        for delivery in changed[max(0, done - changes_at):]:
            self._changed.setdefault(delivery.id, delivery)    # a newer change wins
        # Not in the file: the insert records the latest state.  A change made during
        # the commit may be of a newer object (a lane read makes one of a held
        # delivery): that one goes back, and no update, which would come after it.
        newer, self._new = self._new, {}
        for delivery in inserted[done:]:
            self._new[delivery.id] = self._changed.pop(delivery.id, delivery)
        self._new.update(newer)
        self._attempts = attempts[max(0, done - attempts_at):] + self._attempts

    def _next_retry(self) -> float | None:
        return self._failing.retry_at if self._failing is not None else None

    # -- reads and maintenance (flush first, so they see everything handed over) ---
    def _call(self, method: Callable[..., T], *args) -> T:
        with self._lock:
            self._flush_locked()
            return _read(method, self._db, *args)

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        """The lane's first pending deliveries, those held in memory included.  May
        return more than ``limit``; fewer means there are no more."""
        with self._lock:
            self._flush_locked()
            rows = _read(SpoolDb.lane, self._db, hook_id, call_id, limit)
            if self._changed:          # changes not committed yet win over the file
                shown = [overlaid(row, self._changed.get(row.id)) for row in rows]
                rows = [row for row in shown if row is not None]
            if self._failing is None:
                return rows
            return _merge_held(rows, self._failing.held_of((hook_id, call_id or None)), limit)

    def end_lane(self, hook_id: str, call_id: str | None, state: str) -> int:
        now = time.time()
        ended = 0
        if self._failing is not None:
            for delivery in self._failing.held_of((hook_id, call_id or None)):
                delivery.state, delivery.finished = state, now
                self.changed(delivery)
                ended += 1
        try:
            return ended + self._call(SpoolDb.end_lane, hook_id, call_id, state, now)
        except DeliveryStoreError as exc:
            log.error("spool %s: cannot end the pending deliveries of hook %s, call %s "
                      "(%s): the next start ends them", self.path, hook_id, call_id, exc)
            return ended + self._call(SpoolDb.count_lane, hook_id, call_id)

    def insert_copies(self, rows: Iterable[DeliveryRow]) -> None:
        self._call(SpoolDb.insert_copies, list(rows))

    def close(self, deadline: Deadline | None = None) -> None:
        """Stop the flusher (waiting for its commit until ``deadline``), commit what is
        left, close the database."""
        self._stop_flusher(deadline)
        with self._lock:
            try:
                self._flush_locked(force=True)
            except Exception:      # what killed the flusher: the stop must still finish
                log.exception("spool %s: the last commit failed: %d deliveries lost",
                              self.path, self.backlog)
            if self._failing is not None:
                log.error("spool %s: %d deliveries could not be committed before closing "
                          "(%s): lost", self.path, self.backlog, self._failing.error)
            in_threadpool(self._db.close)


def _read(method: Callable[..., T], db: SpoolDb, *args) -> T:
    """``method(db, *args)`` in a worker thread, SQLite's errors as the store's."""
    try:
        return in_threadpool(method, db, *args)
    except sqlite3.Error as exc:
        raise DeliveryStoreError(str(exc)) from exc


class _Failing:
    """What the spool holds in memory while commits fail, and the reporting of it."""

    def __init__(self, path: str, retry_seconds: float = COMMIT_RETRY_SECONDS,
                 report_seconds: float = ERROR_REPORT_INTERVAL_SECONDS):
        self.path = path
        self.retry_seconds, self.report_seconds = retry_seconds, report_seconds
        self.error = ""
        self.retry_at = 0.0
        self.held: dict[tuple, dict[int, Delivery]] = {}   # lane -> pending, not committed
        self.unrecorded: dict[int, Delivery] = {}          # finished, not committed
        self.lost = 0                                       # given up since the last line
        self._last_report: float | None = None
        self._since = time.monotonic()

    def hold(self, delivery: Delivery) -> None:
        self.held.setdefault(_lane_of(delivery), {})[delivery.id] = delivery

    def held_of(self, key: tuple) -> list[Delivery]:
        return sorted(self.held.get(key, {}).values(), key=lambda d: d.id)

    def changed(self, delivery: Delivery, new: dict[int, Delivery]) -> None:
        """A delivery not committed changed: still pending, it stays held (as its newest
        object); finished, it waits to be recorded with the history."""
        lane = self.held.setdefault(_lane_of(delivery), {})
        if delivery.state == PENDING:
            new[delivery.id] = lane[delivery.id] = delivery
            return
        del new[delivery.id]
        lane.pop(delivery.id, None)
        self.unrecorded[delivery.id] = delivery

    def regroup(self, new: dict[int, Delivery]) -> None:
        """After a failed commit: ``new`` keeps the pending deliveries (held, by lane),
        the finished ones wait with the history."""
        for delivery in [d for d in new.values() if d.state != PENDING]:
            del new[delivery.id]
            self.unrecorded[delivery.id] = delivery
        self.held = {}
        for delivery in new.values():
            self.hold(delivery)

    def report(self, error: sqlite3.Error, not_durable: int) -> None:
        """Retry later; say so at most once per interval."""
        self.error = str(error)
        now = time.monotonic()
        self.retry_at = now + self.retry_seconds
        if self._last_report is not None and \
                now - self._last_report < self.report_seconds:
            return
        self._last_report = now
        log.error("spool %s: cannot commit (%s): %d deliveries are not durable (held in "
                  "memory, still delivered), %d finished ones not recorded yet, %d given "
                  "up for memory since the last report; retrying every %gs", self.path,
                  self.error, not_durable, len(self.unrecorded), self.lost,
                  self.retry_seconds)
        self.lost = 0

    def recovered(self, path: str, committed: int) -> None:
        log.warning("spool %s: commits succeed again after %.0fs; %d deliveries held in "
                    "memory are durable again", path, time.monotonic() - self._since,
                    committed)


def _lane_of(delivery: Delivery) -> tuple:
    return (delivery.hook.id, delivery.call_id or None)


def _merge_held(rows: list[StoredDelivery], held: list[Delivery],
                limit: int) -> list[StoredDelivery]:
    """Rows from the file and deliveries held in memory, in order; when the file may
    have more, only held ones before its last row."""
    if len(rows) >= limit:
        held = [d for d in held if d.id < rows[-1].id]
    stored = [StoredDelivery.of(d) for d in held]
    return sorted(rows + stored, key=lambda row: row.id)

