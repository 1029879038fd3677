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

``SpoolDb`` is the synchronous part (runs in worker threads, one at a time);
``Spool`` is the greenlet-side part owning the batch.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from eslhook.delivery.request import encode_json
from eslhook.hooks.model import Hook
from eslhook.threads import in_threadpool

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.005
ERROR_REPORT_INTERVAL_SECONDS = 10.0
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


@dataclass(frozen=True)
class StoredDelivery:
    """A pending ``deliveries`` row as read back (the hook is looked up by the caller)."""
    id: int
    hook_id: str
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: dict
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
    attempts: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.attempts)

    def merge_after(self, earlier: "_Batch") -> "_Batch":
        return _Batch(earlier.inserts + self.inserts, earlier.updates + self.updates,
                      earlier.attempts + self.attempts)


# -- the synchronous part: runs in a worker thread, one call at a time ---------------

class SpoolDb:
    def __init__(self, path: str):
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(_SCHEMA)

    def contents(self) -> SpoolContents:
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
            db.execute("ROLLBACK")
            raise

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        rows = self.connection.execute(
            "SELECT id, hook_id, call_id, event_id, hook_event, webhook_id, payload, created, "
            "attempts, next_attempt FROM deliveries WHERE state = 'pending' AND hook_id = ? "
            "AND call_id = ? ORDER BY id LIMIT ?", (hook_id, call_id or "", limit)).fetchall()
        return [StoredDelivery(r[0], r[1], r[2] or None, r[3], r[4], r[5], json.loads(r[6]),
                               r[7], r[8], r[9]) for r in rows]

    def end_lane(self, hook_id: str, call_id: str | None, state: str, now: float) -> int:
        """Finish every pending delivery of a lane as ``state``; how many there were."""
        cursor = self.connection.execute(
            "UPDATE deliveries SET state = ?, finished = ? WHERE state = 'pending' "
            "AND hook_id = ? AND call_id = ?", (state, now, hook_id, call_id or ""))
        return cursor.rowcount

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None) -> AttemptPage:
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

    def window(self, hook_id: str, since: float, until: float, limit: int) -> list[tuple]:
        """Finished deliveries of a hook accepted in [since, until), oldest first."""
        return self.connection.execute(
            "SELECT call_id, event_id, hook_event, webhook_id, payload FROM deliveries "
            "WHERE hook_id = ? AND created >= ? AND created < ? AND state != 'pending' "
            "ORDER BY id LIMIT ?", (hook_id, since, until, limit)).fetchall()

    def insert_copies(self, rows: list[tuple]) -> None:
        self.connection.executemany("INSERT INTO deliveries (%s) VALUES (%s)"
                                    % (_DELIVERY_COLUMNS, ",".join("?" * 13)), rows)

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


def _parts(rows: list[tuple]) -> Iterator[list[tuple]]:
    start, size = 0, ROWS_PER_STATEMENT
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start:start + size]
        start += size


def _insert_many(db: sqlite3.Connection, prefix: str, width: int, rows: list[tuple]) -> None:
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
    def __init__(self, path: str, *, flush_interval: float = FLUSH_INTERVAL_SECONDS):
        self.path = path
        self._flush_interval = flush_interval
        self._db = in_threadpool(SpoolDb, path)
        self._new: dict[int, Delivery] = {}        # accepted, not yet in a batch
        self._changed: dict[int, Delivery] = {}    # in the database, state changed since
        self._attempts: list[tuple] = []
        self._failed = _Batch()                    # a batch whose commit failed: goes first
        self._dirty = Event()
        self._lock = Semaphore()                   # one database call at a time
        self._group = Group()
        self._closed = False
        self._last_error_report = 0.0

    def contents(self) -> SpoolContents:
        return self._call(SpoolDb.contents)

    def start(self) -> None:
        self._group.spawn(self._flush_loop).link_exception(_log_crash)

    @property
    def backlog(self) -> int:
        """Deliveries accepted but not yet committed."""
        return len(self._new) + len(self._failed.inserts)

    # -- recording (hub side, never blocks) ---------------------------------------
    def added(self, delivery: Delivery) -> None:
        self._new[delivery.id] = delivery
        self._dirty.set()

    def changed(self, delivery: Delivery) -> None:
        if delivery.id not in self._new:     # a new row is captured as it is at flush time
            self._changed[delivery.id] = delivery
            self._dirty.set()

    def attempted(self, row: tuple) -> None:
        self._attempts.append(row)
        self._dirty.set()

    # -- committing ---------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        batch = self._take()
        if not batch:
            return
        try:
            in_threadpool(self._db.apply, batch)
        except Exception as exc:    # disk full, I/O error: keep the rows and try again
            self._failed = batch
            self._dirty.set()
            now = time.monotonic()
            if now - self._last_error_report >= ERROR_REPORT_INTERVAL_SECONDS:
                self._last_error_report = now
                log.error("spool %s: cannot commit %d deliveries (%s); keeping them in "
                          "memory and retrying", self.path, len(batch.inserts), exc)

    def _take(self) -> _Batch:
        batch = _Batch([d.row() for d in self._new.values()],
                       [(d.attempts, d.next_attempt, d.state, d.finished, d.id)
                        for d in self._changed.values()],
                       self._attempts)
        self._new, self._changed, self._attempts = {}, {}, []
        batch, self._failed = batch.merge_after(self._failed), _Batch()
        return batch

    def _flush_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            gevent.sleep(self._flush_interval)   # gather a batch
            self._dirty.clear()
            self.flush()

    # -- reads and maintenance (flush first, so they see everything handed over) ---
    def _call(self, method: Callable[..., T], *args) -> T:
        with self._lock:
            self._flush_locked()
            return in_threadpool(method, self._db, *args)

    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        return self._call(SpoolDb.lane, hook_id, call_id, limit)

    def end_lane(self, hook_id: str, call_id: str | None, state: str) -> int:
        return self._call(SpoolDb.end_lane, hook_id, call_id, state, time.time())

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None) -> AttemptPage:
        return self._call(SpoolDb.attempts_page, account_id, hook_id, page_size, start_key)

    def window(self, hook_id: str, since: float, until: float, limit: int) -> list[tuple]:
        return self._call(SpoolDb.window, hook_id, since, until, limit)

    def insert_copies(self, rows: Iterable[tuple]) -> None:
        self._call(SpoolDb.insert_copies, list(rows))

    def prune(self, before: float) -> tuple[int, int]:
        return self._call(SpoolDb.prune, before)

    def close(self) -> None:
        """Stop the flusher, commit what is left, close the database."""
        self._closed = True
        self._dirty.set()
        self._group.join(timeout=5)
        self._group.kill(timeout=1)
        with self._lock:
            self._flush_locked()
            if self._failed:
                log.error("spool %s: %d deliveries could not be committed before closing",
                          self.path, len(self._failed.inserts))
            in_threadpool(self._db.close)


def _log_crash(greenlet) -> None:
    log.error("spool flusher crashed: %r", greenlet.exception, exc_info=greenlet.exc_info)
