"""The connection pool to fleet mode's database, and its versioned schema.

psycopg 3 (``scripts/bench_pg_driver.py``: 1.6x pg8000's round trips under gevent,
and a connection whose query was interrupted raises instead of answering the
next query with the old result) through ``psycopg_pool``: at most
``storage.pool_size`` connections, each checked out for one unit of work; a
connection left broken (a greenlet killed mid-query, a server restart) is
discarded by the pool, not handed out again.  With gevent's monkey patching
psycopg waits on sockets through the hub: no call blocks it.

Migrations are the numbered files ``migrations/NNN_name.sql``, applied in order,
each in its own transaction with its row in ``schema_version``, under a
session advisory lock so instances starting together apply each one once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Iterator

import psycopg
from psycopg_pool import ConnectionPool

from ..config import StorageConfig
from . import DatabaseUnavailable
from .dsn import redacted

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x65736c68   # "eslh": pg_advisory_lock key of schema migrations
DatabaseError = psycopg.Error


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The shipped migrations, in version order."""
    found = []
    for item in resources.files(__package__).joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number, _, rest = item.name.partition("_")
            found.append(Migration(int(number), rest[:-4], item.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise AssertionError("migrations must be numbered 1, 2, 3...: %s"
                             % [m.version for m in found])
    return found


LATEST_VERSION = len(migrations())


RECONNECT_GIVE_UP_SECONDS = 5.0


class Database:
    """A bounded pool of connections to ``storage.dsn``."""

    def __init__(self, storage: StorageConfig):
        if not storage.dsn:
            raise ValueError("Database: storage.dsn is not set")
        self.location = "postgresql " + redacted(storage.dsn)
        self._timeout = storage.connect_timeout_seconds
        self._dsn = storage.dsn
        self._pool = ConnectionPool(
            storage.dsn, min_size=1, max_size=storage.pool_size, open=False,
            timeout=storage.connect_timeout_seconds, name="eslhook",
            # the pool's retries back off 1, 2, 4, 8, 16 s...: after a 30 s outage the
            # next try came up to 20 s after the database was back.  Given up after 5 s,
            # the next unit of work (commits retry every second) starts a fresh try.
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            kwargs={"connect_timeout": max(1, round(storage.connect_timeout_seconds))})

    def open(self) -> None:
        """Open the pool; DatabaseUnavailable if no connection comes within the timeout."""
        try:
            self._pool.open(wait=True, timeout=self._timeout)
        except Exception as exc:     # psycopg_pool.PoolTimeout, psycopg.Error
            self._pool.close()
            raise DatabaseUnavailable("cannot connect to %s: %s" % (
                self.location, error_line(exc))) from None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """One connection for one unit of work: committed on exit, rolled back on error."""
        with self._pool.connection(timeout=self._timeout) as connection:
            yield connection

    def dedicated(self) -> psycopg.Connection:
        """A connection of its own, outside the pool (LISTEN needs one kept open)."""
        return psycopg.connect(self._dsn, autocommit=True,
                               connect_timeout=max(1, round(self._timeout)))

    def close(self) -> None:
        self._pool.close()


def error_line(exc: BaseException) -> str:
    """The first line of a driver error (its name when it says nothing)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def schema_version(connection: psycopg.Connection) -> int:
    """The version the database's schema is at (0: none applied)."""
    found = connection.execute("SELECT to_regclass('schema_version')").fetchone()
    if found is None or found[0] is None:
        return 0
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(database: Database) -> tuple[int, int]:
    """Apply the missing migrations; returns (version before, version after).
    DatabaseUnavailable if the database is newer than this eslhook."""
    with database.connection() as connection:
        connection.autocommit = True
        connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            before = current = schema_version(connection)
            if before > LATEST_VERSION:
                raise DatabaseUnavailable(
                    "%s has schema version %d; this eslhook knows up to %d: upgrade "
                    "eslhook" % (database.location, before, LATEST_VERSION))
            for migration in migrations()[current:]:
                with connection.transaction():
                    connection.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version integer "
                        "PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL "
                        "DEFAULT now())")
                    connection.execute(migration.sql.encode())
                    connection.execute("INSERT INTO schema_version (version, name) "
                                       "VALUES (%s, %s)", (migration.version, migration.name))
                current = migration.version
                log.info("%s: schema migrated to version %d (%s)", database.location,
                         current, migration.name)
            return before, current
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            connection.autocommit = False


def open_database(storage: StorageConfig) -> Database:
    """Open the pool and bring the schema up to date (at start, under the lock)."""
    database = Database(storage)
    database.open()
    try:
        migrate(database)
    except DatabaseError as exc:
        database.close()
        raise DatabaseUnavailable("%s: migrating failed: %s" % (
            database.location, error_line(exc))) from None
    except BaseException:
        database.close()
        raise
    return database
