"""The durable spool: SQLite (WAL) under ``state_dir``, written ahead in batches.

Every delivery accepted by ``DeliveryQueue.submit`` is added to an in-memory
write-ahead batch; a flusher greenlet commits the batch every
``FLUSH_INTERVAL_SECONDS`` (5 ms) in one transaction, in gevent's threadpool,
so the hub never waits on the disk and the fast path costs no SQLite call of
its own.  State changes (attempt counts, next attempt times, delivered/failed)
and attempt-log rows ride in the same batches.  Reads flush first, so a read
sees everything handed over before it.

Tables: ``deliveries`` (every delivery: pending ones are the spool, finished
ones the history that replay re-sends) and ``attempts`` (the attempt log).
WAL with ``synchronous=NORMAL``: a committed batch survives ``kill -9`` (it is
in the OS's page cache); a power cut may lose the last batches.

A commit that fails (a full disk: SQLITE_FULL) is retried in halves down to one
row, committing the longest start of the batch that fits.  What does not fit stays
in memory, "not durable": lane reads serve it as if it were in the file, so it is
still delivered in order; every ``COMMIT_RETRY_SECONDS`` the spool tries again, and
it says so once per ``ERROR_REPORT_INTERVAL_SECONDS``.

``SpoolDb`` is the synchronous part (runs in worker threads, one at a time);
``Spool`` is the greenlet-side part owning the batch.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, TypeVar

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from eslhook.delivery.request import encode_json
from eslhook.hooks.model import Hook
from eslhook.statedir import private_dir, private_file, tighten_existing
from eslhook.supervise import CRITICAL, KILL_GRACE_SECONDS, Deadline, Supervisor, deadline_of
from eslhook.threads import in_threadpool

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.005
ERROR_REPORT_INTERVAL_SECONDS = 10.0   # while commits fail: one log line per interval
COMMIT_RETRY_SECONDS = 1.0             # while commits fail: how often to try again
PENDING, DELIVERED, FAILED, EXPIRED, DROPPED = "pending", "delivered", "failed", "expired", \
    "dropped"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,            -- submission order: the order within a lane
    hook_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    call_id TEXT NOT NULL,             -- '' when the payload has none
    event_id TEXT,
    hook_event TEXT,
    webhook_id TEXT NOT NULL,
    payload TEXT NOT NULL,             -- JSON
    created REAL NOT NULL,             -- unix time accepted
    attempts INTEGER NOT NULL,
    next_attempt REAL,                 -- unix time; NULL: as soon as possible
    state TEXT NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS deliveries_pending
    ON deliveries (hook_id, call_id, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_hook_time ON deliveries (hook_id, created);
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (finished)
    WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    hook_id TEXT NOT NULL,
    delivery_id INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT,
    call_id TEXT,
    hook_event TEXT,
    uri TEXT NOT NULL,
    method TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    result TEXT NOT NULL,              -- success | failure
    reason TEXT NOT NULL,
    response_code INTEGER,
    response_body TEXT,
    retries_left INTEGER NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_account ON attempts (account_id, id);
CREATE INDEX IF NOT EXISTS attempts_by_hook ON attempts (hook_id, id);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (timestamp);
"""
_DELIVERY_COLUMNS = ("id, hook_id, account_id, call_id, event_id, hook_event, webhook_id, "
                     "payload, created, attempts, next_attempt, state, finished")
ATTEMPT_FIELDS = ("hook_id", "event_id", "call_id", "hook_event", "uri", "method", "attempt",
                  "result", "reason", "response_code", "response_body", "retries_left",
                  "timestamp")


@dataclass(eq=False)
class Delivery:
    """One (hook, payload) on its way; mirrored by a ``deliveries`` row."""
    id: int
    hook: Hook
    payload: Mapping[str, Any]
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    created: float
    attempts: int = 0
    next_attempt: float | None = None
    state: str = PENDING
    finished: float | None = None
    request: Any = None                # HttpRequest, built by the first attempt

    def row(self) -> tuple:
        return (self.id, self.hook.id, self.hook.account_id, self.call_id or "", self.event_id,
                self.hook_event, self.webhook_id, self.payload, self.created, self.attempts,
                self.next_attempt, self.state, self.finished)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A ``deliveries`` row as written (``replay``'s copies)."""
    id: int
    hook_id: str
    account_id: str
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: str                       # JSON, as stored
    created: float
    attempts: int = 0
    next_attempt: float | None = None
    state: str = PENDING
    finished: float | None = None

    def values(self) -> tuple:
        """In ``_DELIVERY_COLUMNS`` order."""
        return (self.id, self.hook_id, self.account_id, self.call_id or "", self.event_id,
                self.hook_event, self.webhook_id, self.payload, self.created, self.attempts,
                self.next_attempt, self.state, self.finished)


@dataclass(frozen=True, slots=True)
class FinishedDelivery:
    """A finished ``deliveries`` row, as ``window`` reads it for a replay."""
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: str                       # JSON, as stored


class AttemptRecord(NamedTuple):
    """One row of the attempt log (what the REST API's attempts list shows), in the
    order ``SpoolDb.apply`` inserts: account_id, delivery_id, webhook_id, then
    ``ATTEMPT_FIELDS``.  A named tuple: one is built for every attempt, and it goes to
    SQLite as it is."""
    account_id: str
    delivery_id: int
    webhook_id: str
    hook_id: str
    event_id: str | None
    call_id: str | None
    hook_event: str | None
    uri: str
    method: str
    attempt: int
    result: str                        # success | failure
    reason: str
    response_code: int | None
    response_body: str
    retries_left: int
    timestamp: float


@dataclass(frozen=True)
class StoredDelivery:
    """A pending ``deliveries`` row as read back (the hook is looked up by the caller)."""
    id: int
    hook_id: str
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: Mapping[str, Any]
    created: float
    attempts: int
    next_attempt: float | None


@dataclass(frozen=True)
class SpoolContents:
    """What ``open`` finds: the next free id, and the head of each pending lane."""
    next_id: int
    pending: int
    lanes: dict[tuple[str, str | None], float | None]   # (hook id, call id) -> next attempt


@dataclass(frozen=True)
class AttemptPage:
    attempts: list[dict]                # newest first
    next_start_key: str | None          # pass as start_key for the next page; None: last


@dataclass
class _Batch:
    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.attempts)

    def part(self, start: int, stop: int) -> "_Batch":
        """Rows [start, stop) of inserts + updates + attempts, in that order."""
        updates_at = len(self.inserts)
        attempts_at = updates_at + len(self.updates)
        return _Batch(self.inserts[start:stop],
                      self.updates[max(0, start - updates_at):max(0, stop - updates_at)],
                      self.attempts[max(0, start - attempts_at):max(0, stop - attempts_at)])


# -- the synchronous part: runs in a worker thread, one call at a time ---------------

class SpoolCorrupt(Exception):
    """The spool file is not a usable SQLite database; ``str()`` says what to do."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            "the delivery spool %s is corrupt (%s). To start afresh, stop eslhook and move "
            "it aside: mv %s %s.corrupt (and its -wal and -shm files, if any, the same "
            "way). This loses the deliveries pending in it and the attempt log; the moved "
            "file can still be inspected with sqlite3." % (path, problem, path, path))


_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _is_corruption(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT_CODES


class SpoolDb:
    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            private_dir(os.path.dirname(os.path.abspath(path)))
            private_file(path)       # before SQLite: its -wal and -shm take this file's mode
            for suffix in ("-wal", "-shm"):
                tighten_existing(path + suffix)
        try:
            self.connection = sqlite3.connect(path, check_same_thread=False,
                                              isolation_level=None)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise SpoolCorrupt(path, str(exc)) from None
            raise

    def contents(self) -> SpoolContents:
        try:
            return self._contents()
        except sqlite3.DatabaseError as exc:    # a truncated file shows on the first reads
            if _is_corruption(exc):
                raise SpoolCorrupt(self.path, str(exc)) from None
            raise

    def _contents(self) -> SpoolContents:
        db = self.connection
        next_id = (db.execute("SELECT MAX(id) FROM deliveries").fetchone()[0] or 0) + 1
        lanes: dict = {}
        pending = 0
        for hook_id, call_id, next_attempt in db.execute(
                "SELECT hook_id, call_id, next_attempt FROM deliveries "
                "WHERE state = 'pending' ORDER BY id"):
            pending += 1
            lanes.setdefault((hook_id, call_id or None), next_attempt)
        return SpoolContents(next_id, pending, lanes)

    def apply(self, batch: _Batch) -> None:
        """One transaction: new rows, changed rows, attempt-log rows."""
        inserts = [row[:7] + (_encode(row[7]),) + row[8:] for row in batch.inserts]
        db = self.connection
        db.execute("BEGIN")
        try:
            _insert_many(db, "INSERT OR REPLACE INTO deliveries (%s) VALUES "
                         % _DELIVERY_COLUMNS, 13, inserts)
            _update_many(db, batch.updates)
            _insert_many(db, "INSERT INTO attempts (account_id, delivery_id, webhook_id, %s) "
                         "VALUES " % ", ".join(ATTEMPT_FIELDS), 3 + len(ATTEMPT_FIELDS),
                         batch.attempts)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:    # SQLITE_FULL has already rolled it back
                db.execute("ROLLBACK")
            raise

    def apply_what_fits(self, batch: _Batch) -> tuple[int, sqlite3.Error | None]:
        """Commit the batch, or the longest start of it that fits (new rows, then
        changes, then attempt-log rows, in order), in parts halved down to one row
        while they fail.  (rows committed, the error that stopped it or None)."""
        total, done, size, error = len(batch), 0, len(batch), None
        while done < total:
            size = min(size, total - done)
            try:
                self.apply(batch.part(done, done + size))
            except sqlite3.Error as exc:
                error = exc
                if size == 1:
                    break
                size = (size + 1) // 2
                continue
            done += size
        return done, (error if done < total else None)

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        rows = self.connection.execute(
            "SELECT id, hook_id, call_id, event_id, hook_event, webhook_id, payload, created, "
            "attempts, next_attempt FROM deliveries WHERE state = 'pending' AND hook_id = ? "
            "AND call_id = ? ORDER BY id LIMIT ?", (hook_id, call_id or "", limit)).fetchall()
        return [StoredDelivery(r[0], r[1], r[2] or None, r[3], r[4], r[5], json.loads(r[6]),
                               r[7], r[8], r[9]) for r in rows]

    def count_lane(self, hook_id: str, call_id: str | None) -> int:
        return self.connection.execute(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND hook_id = ? "
            "AND call_id = ?", (hook_id, call_id or "")).fetchone()[0]

    def end_lane(self, hook_id: str, call_id: str | None, state: str, now: float) -> int:
        """Finish every pending delivery of a lane as ``state``; how many there were."""
        cursor = self.connection.execute(
            "UPDATE deliveries SET state = ?, finished = ? WHERE state = 'pending' "
            "AND hook_id = ? AND call_id = ?", (state, now, hook_id, call_id or ""))
        return cursor.rowcount

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None) -> AttemptPage:
        args: list[object]
        where, args = ["account_id = ?"], [account_id]
        if hook_id is not None:
            where.append("hook_id = ?")
            args.append(hook_id)
        if start_key is not None:
            where.append("id <= ?")
            args.append(start_key)
        rows = self.connection.execute(
            "SELECT id, %s FROM attempts WHERE %s ORDER BY id DESC LIMIT ?"
            % (", ".join(ATTEMPT_FIELDS), " AND ".join(where)),
            args + [page_size + 1]).fetchall()
        records = [dict(zip(("id",) + ATTEMPT_FIELDS, row)) for row in rows[:page_size]]
        for record in records:
            record["id"] = str(record["id"])
        more = len(rows) > page_size
        return AttemptPage(records, str(rows[page_size][0]) if more else None)

    def window(self, hook_id: str, since: float, until: float,
               limit: int) -> list[FinishedDelivery]:
        """Finished deliveries of a hook accepted in [since, until), oldest first."""
        return [FinishedDelivery(*row) for row in self.connection.execute(
            "SELECT call_id, event_id, hook_event, webhook_id, payload FROM deliveries "
            "WHERE hook_id = ? AND created >= ? AND created < ? AND state != 'pending' "
            "ORDER BY id LIMIT ?", (hook_id, since, until, limit)).fetchall()]

    def insert_copies(self, rows: list[DeliveryRow]) -> None:
        self.connection.executemany("INSERT INTO deliveries (%s) VALUES (%s)"
                                    % (_DELIVERY_COLUMNS, ",".join("?" * 13)),
                                    [row.values() for row in rows])

    def prune(self, before: float) -> tuple[int, int]:
        db = self.connection
        attempts = db.execute("DELETE FROM attempts WHERE timestamp < ?", (before,)).rowcount
        finished = db.execute("DELETE FROM deliveries WHERE state != 'pending' "
                              "AND finished < ?", (before,)).rowcount
        return attempts, finished

    def close(self) -> None:
        self.connection.close()


# Rows go in multi-row statements: the sqlite3 module releases the GIL for each
# statement step, and the hub then has to hand it back, once per row with executemany.
# Statements hold 128, 64, ... or 1 rows (the binary digits of a batch's size): a
# handful of handoffs per batch, and at most eight distinct statements of each kind in
# sqlite3's statement cache (one per row count would fill it with large ones).
ROWS_PER_STATEMENT = 128
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


def _parts(rows: Sequence[tuple]) -> Iterator[Sequence[tuple]]:
    start, size = 0, ROWS_PER_STATEMENT
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start:start + size]
        start += size


def _insert_many(db: sqlite3.Connection, prefix: str, width: int, rows: Sequence[tuple]) -> None:
    row_marks = "(" + ",".join("?" * width) + ")"
    for part in _parts(rows):
        db.execute(prefix + ",".join([row_marks] * len(part)),
                   [value for row in part for value in row])


def _update_many(db: sqlite3.Connection, updates: list[tuple]) -> None:
    """(attempts, next_attempt, state, finished, id) rows."""
    if not _UPDATE_FROM:
        db.executemany("UPDATE deliveries SET attempts = ?, next_attempt = ?, state = ?, "
                       "finished = ? WHERE id = ?", updates)
        return
    # A row changed twice (a failed batch retried with newer changes) must end as the
    # later change, and UPDATE ... FROM would pick either: keep the last per id.
    updates = list({row[4]: row for row in updates}.values())
    for part in _parts(updates):
        db.execute("UPDATE deliveries SET attempts = u.column1, next_attempt = u.column2, "
                   "state = u.column3, finished = u.column4 FROM (VALUES %s) AS u "
                   "WHERE deliveries.id = u.column5" % ",".join(["(?,?,?,?,?)"] * len(part)),
                   [value for row in part for value in row])


def _encode(payload: Any) -> str:
    try:
        return encode_json(payload).decode("utf-8")
    except ValueError:
        # cannot be stored (nor sent: the attempt gives it up as an invalid payload)
        return "null"


# -- the greenlet side ----------------------------------------------------------------

class Spool:
    """Commits in the background what the queue records; while commits fail (a full
    disk), holds the deliveries not committed in memory, serves them to lane reads
    as if they were in the file, and retries every ``COMMIT_RETRY_SECONDS``."""

    def __init__(self, path: str, *, flush_interval: float = FLUSH_INTERVAL_SECONDS,
                 memory_limit: int = 10_000):
        self.path = path
        self._flush_interval = flush_interval
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

    def contents(self) -> SpoolContents:
        return self._call(SpoolDb.contents)

    def start(self, supervisor: Supervisor | None = None) -> None:
        # critical: without the flusher nothing accepted becomes durable
        (supervisor or Supervisor()).spawn_supervised(
            "spool flusher", self._flush_loop, how=CRITICAL, group=self._group)

    @property
    def backlog(self) -> int:
        """Deliveries accepted but not yet committed."""
        return len(self._new) + self._committing

    @property
    def not_durable(self) -> int:
        """Pending deliveries a commit failed for: in memory only (0 while commits work)."""
        return self.backlog if self._failing is not None else 0

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
    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

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
        batch = _Batch([d.row() for d in inserted + finished],
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
        self._failing = failing or _Failing(self.path)
        self._failing.regroup(self._new)
        self._trim()
        self._failing.report(error, len(self._new))

    def _trim(self) -> None:
        """Memory bound while commits fail: finished deliveries and attempt rows beyond
        ``memory_limit`` each are given up, oldest first, and counted (pending ones are
        bounded by delivery.buffer_size, in DeliveryQueue.submit)."""
        assert self._failing is not None    # called while commits fail
        unrecorded = self._failing.unrecorded
        excess = max(0, len(unrecorded) - self._memory_limit)
        for delivery_id in list(unrecorded)[:excess]:
            del unrecorded[delivery_id]
        extra = max(0, len(self._attempts) - self._memory_limit)
        del self._attempts[:extra]
        self.unrecorded += excess + extra
        self._failing.lost += excess + extra

    def _keep(self, inserted: list[Delivery], changed: list[Delivery],
              attempts: list[AttemptRecord],
              done: int) -> None:
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

    def _flush_loop(self) -> None:
        while not self._closed:
            if self._failing is None:
                self._dirty.wait()
                gevent.sleep(self._flush_interval)   # gather a batch
            else:
                self._closing.wait(max(0.0, self._failing.retry_at - time.monotonic()))
            self._dirty.clear()
            self.flush()

    # -- reads and maintenance (flush first, so they see everything handed over) ---
    def _call(self, method: Callable[..., T], *args) -> T:
        with self._lock:
            self._flush_locked()
            return in_threadpool(method, self._db, *args)

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        """The lane's first pending deliveries, those held in memory included.  May
        return more than ``limit``; fewer means there are no more."""
        with self._lock:
            self._flush_locked()
            rows = in_threadpool(SpoolDb.lane, self._db, hook_id, call_id, limit)
            if self._changed:          # changes not committed yet win over the file
                overlaid = [_overlay(row, self._changed.get(row.id)) for row in rows]
                rows = [row for row in overlaid if row is not None]
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
        except sqlite3.Error as exc:
            log.error("spool %s: cannot end the pending deliveries of hook %s, call %s "
                      "(%s): the next start ends them", self.path, hook_id, call_id, exc)
            return ended + self._call(SpoolDb.count_lane, hook_id, call_id)

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None) -> AttemptPage:
        return self._call(SpoolDb.attempts_page, account_id, hook_id, page_size, start_key)

    def window(self, hook_id: str, since: float, until: float,
               limit: int) -> list[FinishedDelivery]:
        return self._call(SpoolDb.window, hook_id, since, until, limit)

    def insert_copies(self, rows: Iterable[DeliveryRow]) -> None:
        self._call(SpoolDb.insert_copies, list(rows))

    def prune(self, before: float) -> tuple[int, int]:
        return self._call(SpoolDb.prune, before)

    def close(self, deadline: Deadline | None = None) -> None:
        """Stop the flusher (waiting for its commit until ``deadline``), commit what is
        left, close the database."""
        self._closed = True
        self._closing.set()
        self._dirty.set()
        self._group.join(timeout=deadline_of(deadline, 5.0).left())
        self._group.kill(timeout=KILL_GRACE_SECONDS)
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


class _Failing:
    """What the spool holds in memory while commits fail, and the reporting of it."""

    def __init__(self, path: str):
        self.path = path
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
        self.retry_at = now + COMMIT_RETRY_SECONDS
        if self._last_report is not None and \
                now - self._last_report < ERROR_REPORT_INTERVAL_SECONDS:
            return
        self._last_report = now
        log.error("spool %s: cannot commit (%s): %d deliveries are not durable (held in "
                  "memory, still delivered), %d finished ones not recorded yet, %d given "
                  "up for memory since the last report; retrying every %gs", self.path,
                  self.error, not_durable, len(self.unrecorded), self.lost,
                  COMMIT_RETRY_SECONDS)
        self.lost = 0

    def recovered(self, path: str, committed: int) -> None:
        log.warning("spool %s: commits succeed again after %.0fs; %d deliveries held in "
                    "memory are durable again", path, time.monotonic() - self._since,
                    committed)


def _lane_of(delivery: Delivery) -> tuple:
    return (delivery.hook.id, delivery.call_id or None)


def _overlay(row: StoredDelivery, delivery: Delivery | None) -> StoredDelivery | None:
    """A row read back, as changed since in memory (None: no longer pending)."""
    if delivery is None:
        return row
    if delivery.state != PENDING:
        return None
    return replace(row, attempts=delivery.attempts, next_attempt=delivery.next_attempt)


def _merge_held(rows: list[StoredDelivery], held: list[Delivery],
                limit: int) -> list[StoredDelivery]:
    """Rows from the file and deliveries held in memory, in order; when the file may
    have more, only held ones before its last row."""
    if len(rows) >= limit:
        held = [d for d in held if d.id < rows[-1].id]
    stored = [StoredDelivery(d.id, d.hook.id, d.call_id, d.event_id, d.hook_event,
                             d.webhook_id, d.payload, d.created, d.attempts, d.next_attempt)
              for d in held]
    return sorted(rows + stored, key=lambda row: row.id)

