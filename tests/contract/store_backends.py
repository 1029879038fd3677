"""The backends the contract suites run against, one list per store interface.

Each entry builds a backend on real storage under ``tmp_path`` and knows the few
backend-specific moves a suite needs (break commits like a full disk, corrupt the
storage).  The suites themselves speak only the interfaces (eslhook/stores.py).
Adding a backend = one class and one entry per list; a class naming ``fixtures``
gets those pytest fixtures as keyword arguments (PostgreSQL: ``pg_dsn``, a database
of its own on the server the suite starts, tests/pg_support.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

from eslhook.accounts import AccountDirectory
from eslhook.calls import OpenCalls
from eslhook.calls_store import OpenCallStore
from eslhook.config import AccountConfig, StorageConfig
from eslhook.delivery import spool as spool_module
from eslhook.delivery.spool import Spool
from eslhook.delivery.store import DeliveryStore
from eslhook.hooks.model import Hook
from eslhook.hooks.repository import HookRepository
from eslhook.hooks.store import HookStore
from eslhook.supervise import Deadline
from eslhook.threads import in_threadpool

if TYPE_CHECKING:
    from eslhook.pg.database import Database

ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
OTHER = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
ACCOUNTS = AccountDirectory([AccountConfig(id=ACME), AccountConfig(id=OTHER)])


def backend_fixture(backends: list):
    """A fixture running each test once per backend of ``backends`` (the test id names
    it), on storage under tmp_path, closing whatever the test opened."""
    @pytest.fixture(params=backends, ids=lambda backend: backend.name)
    def backend(request, tmp_path, monkeypatch):
        # a backend's own fixtures by name (PostgreSQL: pg_dsn, a database of its own)
        extra = {name: request.getfixturevalue(name)
                 for name in getattr(request.param, "fixtures", ())}
        made = request.param(tmp_path, monkeypatch, **extra)
        yield made
        made.close_all()
    return backend


def numbered_hook(n: int, account_id: str = ACME, **fields) -> Hook:
    """Hook number ``n``: a stable id and name, so reopened stores can be compared."""
    values = dict(id="c0%030x" % n, account_id=account_id, name="hook %d" % n,
                  uri="http://127.0.0.1:9/%d" % n, hook="channel_create")
    return Hook(**{**values, **fields})


# -- hook repositories ---------------------------------------------------------------

class YamlHooks:
    """hooks.yaml: each ``open()`` is another writer of the same file (another
    process, or a hand edit's source)."""

    name = "yaml"

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.path = tmp_path / "hooks.yaml"
        self.opened: list[HookStore] = []

    def open(self) -> HookRepository:
        store = HookStore(self.path, ACCOUNTS, settle_seconds=0.005, empty_settle_seconds=0.05)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.stop(Deadline.after(1))


def open_database(storage: StorageConfig) -> "Database":
    from eslhook.pg.database import open_database as opened   # the driver: only here
    return opened(storage)


class PgHooks:
    """PostgreSQL: each ``open()`` is another instance on the same database."""

    name = "postgresql"
    fixtures = ("pg_dsn",)

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_dsn: str):
        self.storage = StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=4)
        self.databases: list[Database] = []
        self.opened: list[HookRepository] = []

    def open(self) -> HookRepository:
        from eslhook.pg.hooks import PgHookRepository
        database = open_database(self.storage)
        self.databases.append(database)
        repository = PgHookRepository(database, ACCOUNTS)
        self.opened.append(repository)
        return repository

    def close_all(self) -> None:
        for repository in self.opened:
            repository.stop(Deadline.after(1))
        for database in self.databases:
            database.close()


HOOK_BACKENDS = [YamlHooks, PgHooks]


# -- delivery stores ---------------------------------------------------------------

class SqliteSpool:
    """The SQLite spool.  Commits fail as on a full disk (SQLITE_FULL) by capping the
    database at its current page count on the store's own connection."""

    name = "sqlite"

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.path = tmp_path / "state" / "delivery.sqlite3"
        monkeypatch.setattr(spool_module, "COMMIT_RETRY_SECONDS", 0.05)
        self.opened: list[Spool] = []

    def open(self, memory_limit: int = 1000) -> DeliveryStore:
        store = Spool(str(self.path), memory_limit=memory_limit)
        self.opened.append(store)
        return store

    def fill_up(self, store: DeliveryStore) -> None:
        self._cap(store, "(SELECT page_count FROM pragma_page_count())")

    def free_up(self, store: DeliveryStore) -> None:
        self._cap(store, "1073741823")

    def _cap(self, store: DeliveryStore, pages: str) -> None:
        assert isinstance(store, Spool)
        connection = store._db.connection
        with store._lock:      # not while a commit runs in its thread
            count = in_threadpool(lambda: connection.execute(
                "SELECT %s" % pages).fetchone()[0])
            in_threadpool(connection.execute, "PRAGMA max_page_count=%d" % count)

    def corrupt(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(bytes(range(256)) * 64)

    def close_all(self) -> None:
        for store in self.opened:
            if not store._closed:     # the tests close what they reopen
                store.close()


class PgDeliveries:
    """PostgreSQL's deliveries tables; each ``open()`` is the same instance again (a
    restart).  Commits fail as on a full disk through a trigger refusing inserts with
    disk_full's SQLSTATE; reads still work."""

    name = "postgresql"
    fixtures = ("pg_dsn",)

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_dsn: str):
        self.storage = StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=4)
        self.database = open_database(self.storage)
        self.opened: list = []

    def open(self, memory_limit: int = 1000, instance: str = "test-instance") -> DeliveryStore:
        from eslhook.pg.deliveries import PgDeliveryStore
        store = PgDeliveryStore(self.database, instance, memory_limit=memory_limit,
                                commit_retry_seconds=0.05)
        self.opened.append(store)
        return store

    def _execute(self, sql: str) -> None:
        with self.database.connection() as connection:
            connection.execute(sql)

    def fill_up(self, store: DeliveryStore) -> None:
        self._execute("CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on "
                      "device' USING ERRCODE = 'disk_full'; END $$; "
                      "CREATE TRIGGER disk_full BEFORE INSERT ON deliveries "
                      "FOR EACH ROW EXECUTE FUNCTION disk_full()")

    def free_up(self, store: DeliveryStore) -> None:
        self._execute("DROP TRIGGER disk_full ON deliveries")

    def corrupt(self) -> None:
        self._execute("DROP TABLE deliveries")

    def close_all(self) -> None:
        for store in self.opened:
            if not store._closed:
                store.close()
        self.database.close()


DELIVERY_BACKENDS = [SqliteSpool, PgDeliveries]


# -- open-call stores ------------------------------------------------------------------

class JsonOpenCalls:
    """open-calls.json in a state directory; saving fails while that directory is
    replaced by a plain file (as unwritable as a full disk)."""

    name = "json"
    SAVE_SECONDS = 0.02

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.state = tmp_path / "state"
        self.opened: list[OpenCalls] = []

    def open(self, clock: Callable[[], float] | None = None) -> OpenCallStore:
        options = {"clock": clock} if clock is not None else {}
        calls = OpenCalls(self.state / "open-calls.json", flush_seconds=self.SAVE_SECONDS,
                          **options)
        self.opened.append(calls)
        return calls

    def break_saving(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.write_text("not a directory")

    def mend_saving(self) -> None:
        self.state.unlink()
        self.state.mkdir()

    def corrupt(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "open-calls.json").write_text('{"switches": {"sw1": [{"call_id": ')

    def close_all(self) -> None:
        for calls in self.opened:
            calls.stop()


class PgOpenCalls:
    """PostgreSQL's open_calls table; saving fails while the table is renamed away."""

    name = "postgresql"
    fixtures = ("pg_dsn",)
    SAVE_SECONDS = 0.02

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_dsn: str):
        self.storage = StorageConfig(backend="postgresql", dsn=pg_dsn, pool_size=4)
        self.database = open_database(self.storage)
        self.opened: list[OpenCalls] = []

    def open(self, clock: Callable[[], float] | None = None) -> OpenCallStore:
        from eslhook.pg.calls import PgCallTable
        options = {"clock": clock} if clock is not None else {}
        # as stores.open_call_store builds it in fleet mode
        calls = OpenCalls(table=PgCallTable(self.database, "host-a:/state"),
                          sequence_from_switch=True, flush_seconds=self.SAVE_SECONDS, **options)
        self.opened.append(calls)
        return calls

    def _execute(self, sql: str) -> None:
        with self.database.connection() as connection:
            connection.execute(sql)

    def break_saving(self) -> None:
        self._execute("ALTER TABLE open_calls RENAME TO open_calls_away")

    def mend_saving(self) -> None:
        self._execute("ALTER TABLE open_calls_away RENAME TO open_calls")

    def corrupt(self) -> None:
        self._execute("""INSERT INTO open_calls VALUES ('sw1', 'x', '{"call_id": 7}')""")

    def close_all(self) -> None:
        for calls in self.opened:
            calls.stop()
        self.database.close()


OPEN_CALL_BACKENDS = [JsonOpenCalls, PgOpenCalls]
