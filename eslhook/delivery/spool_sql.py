"""The SQLite spool's synchronous part: the schema, one transaction per batch, the
reads.  ``SpoolDb`` runs in gevent's threadpool, one call at a time (``Spool`` in
``spool.py`` sees to that); nothing here touches the hub.

Tables: ``deliveries`` (every delivery: pending ones are the spool, finished
ones the history that replay re-sends) and ``attempts`` (the attempt log).
WAL with ``synchronous=NORMAL``: a committed batch survives ``kill -9`` (it is
in the OS's page cache); a power cut may lose the last batches.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from eslhook.delivery.rows import (
    ATTEMPT_FIELDS, AttemptFilter, AttemptPage, AttemptRecord, DeliveryRow, FinishedDelivery,
    SpoolContents, StoredDelivery, attempt_page, encode_payload)
from eslhook.delivery.store import DeliveryStoreUnusable
from eslhook.statedir import private_dir, private_file, tighten_existing

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
    finished REAL,
    trigger TEXT NOT NULL DEFAULT 'event'   -- rows.TRIGGERS
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
    timestamp REAL NOT NULL,
    trigger TEXT NOT NULL DEFAULT 'event',
    request_headers TEXT NOT NULL DEFAULT '{}',   -- JSON, values redacted
    request_body TEXT NOT NULL DEFAULT '',        -- its first REQUEST_BODY_KEPT_BYTES
    request_body_size INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL                   -- NULL: logged before it was recorded
);
CREATE INDEX IF NOT EXISTS attempts_by_account ON attempts (account_id, id);
CREATE INDEX IF NOT EXISTS attempts_by_hook ON attempts (hook_id, id);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (timestamp);
"""
_DELIVERY_COLUMNS = ("id, hook_id, account_id, call_id, event_id, hook_event, webhook_id, "
                     "payload, created, attempts, next_attempt, state, finished, trigger")
_DELIVERY_WIDTH = 14
# Columns added since the first spool files: (table, column, definition).  A file made
# before them gets them (ALTER TABLE ... ADD COLUMN, with their defaults) when opened,
# and keeps every row.
_ADDED_COLUMNS = (
    ("deliveries", "trigger", "TEXT NOT NULL DEFAULT 'event'"),
    ("attempts", "trigger", "TEXT NOT NULL DEFAULT 'event'"),
    ("attempts", "request_headers", "TEXT NOT NULL DEFAULT '{}'"),
    ("attempts", "request_body", "TEXT NOT NULL DEFAULT ''"),
    ("attempts", "request_body_size", "INTEGER NOT NULL DEFAULT 0"),
    ("attempts", "duration_ms", "REAL"),
)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older spool file lacks (one transaction)."""
    missing = []
    for table, column, definition in _ADDED_COLUMNS:
        have = {row[1] for row in db.execute("PRAGMA table_info(%s)" % table)}
        if column not in have:
            missing.append("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, definition))
    if missing:
        db.executescript("BEGIN; %s; COMMIT;" % "; ".join(missing))


@dataclass
class Batch:
    """What one commit writes: new delivery rows (``Delivery.row()`` tuples), changes
    (attempts, next_attempt, state, finished, id) and attempt records."""
    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.attempts)

    def part(self, start: int, stop: int) -> "Batch":
        """Rows [start, stop) of inserts + updates + attempts, in that order."""
        updates_at = len(self.inserts)
        attempts_at = updates_at + len(self.updates)
        return Batch(self.inserts[start:stop],
                     self.updates[max(0, start - updates_at):max(0, stop - updates_at)],
                     self.attempts[max(0, start - attempts_at):max(0, stop - attempts_at)])


# -- runs in a worker thread, one call at a time -------------------------------------

class SpoolCorrupt(DeliveryStoreUnusable):
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
            _migrate(self.connection)
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

    def apply(self, batch: Batch) -> None:
        """One transaction: new rows, changed rows, attempt-log rows."""
        inserts = [row[:7] + (encode_payload(row[7]),) + row[8:] for row in batch.inserts]
        db = self.connection
        db.execute("BEGIN")
        try:
            _insert_many(db, "INSERT OR REPLACE INTO deliveries (%s) VALUES "
                         % _DELIVERY_COLUMNS, _DELIVERY_WIDTH, inserts)
            _update_many(db, batch.updates)
            _insert_many(db, "INSERT INTO attempts (account_id, delivery_id, webhook_id, %s) "
                         "VALUES " % ", ".join(ATTEMPT_FIELDS), 3 + len(ATTEMPT_FIELDS),
                         batch.attempts)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:    # SQLITE_FULL has already rolled it back
                db.execute("ROLLBACK")
            raise

    def apply_what_fits(self, batch: Batch) -> tuple[int, sqlite3.Error | None]:
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
            "attempts, next_attempt, trigger FROM deliveries WHERE state = 'pending' "
            "AND hook_id = ? AND call_id = ? ORDER BY id LIMIT ?",
            (hook_id, call_id or "", limit)).fetchall()
        return [StoredDelivery(r[0], r[1], r[2] or None, r[3], r[4], r[5], json.loads(r[6]),
                               r[7], r[8], r[9], r[10]) for r in rows]

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
                      start_key: int | None,
                      only: AttemptFilter = AttemptFilter()) -> AttemptPage:
        where, args = only.conditions(account_id, hook_id, start_key, "?")
        rows = self.connection.execute(
            "SELECT id, %s FROM attempts WHERE %s ORDER BY id DESC LIMIT ?"
            % (", ".join(ATTEMPT_FIELDS), " AND ".join(where)),
            args + [page_size + 1]).fetchall()
        return attempt_page(rows, page_size)

    def window(self, hook_id: str, since: float, until: float,
               limit: int) -> list[FinishedDelivery]:
        """Finished deliveries of a hook accepted in [since, until), oldest first."""
        return [FinishedDelivery(*row) for row in self.connection.execute(
            "SELECT call_id, event_id, hook_event, webhook_id, payload FROM deliveries "
            "WHERE hook_id = ? AND created >= ? AND created < ? AND state != 'pending' "
            "ORDER BY id LIMIT ?", (hook_id, since, until, limit)).fetchall()]

    def attempted_delivery(self, account_id: str, hook_id: str,
                           attempt_id: int) -> FinishedDelivery | None:
        """The delivery the attempt ``attempt_id`` of the hook was made for, if both
        are still kept (pruning drops them after attempt_log_days)."""
        row = self.connection.execute(
            "SELECT d.call_id, d.event_id, d.hook_event, d.webhook_id, d.payload "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "WHERE a.id = ? AND a.account_id = ? AND a.hook_id = ?",
            (attempt_id, account_id, hook_id)).fetchone()
        return FinishedDelivery(*row) if row is not None else None

    def insert_copies(self, rows: list[DeliveryRow]) -> None:
        self.connection.executemany("INSERT INTO deliveries (%s) VALUES (%s)"
                                    % (_DELIVERY_COLUMNS, ",".join("?" * _DELIVERY_WIDTH)),
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


def _insert_many(db: sqlite3.Connection, prefix: str, width: int,
                 rows: Sequence[tuple]) -> None:
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
