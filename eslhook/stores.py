"""The one place that picks each store's backend from the configuration.

Three stores sit behind small interfaces: the hook repository
(``hooks/repository.py``), the delivery store (``delivery/store.py``) and the
open-call store (``calls_store.py``).  The pipeline (``Bridge``, ``DeliveryQueue``,
``Reconciler``, the API's context) holds only those interfaces; these functions
build the concrete backends, by ``storage.backend``: *embedded* (the default:
hooks.yaml, a SQLite spool and a JSON file under ``state_dir``, one process) or
*postgresql* (fleet mode, docs/fleet.md: hooks, deliveries with their attempt log
and open calls in the database).  The
driver is imported only for postgresql, so embedded mode never loads it.  One
pool per configuration is shared by the stores (``database``; ``close`` at exit).
docs/stores.md says what a backend must do.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from .accounts import AccountDirectory
from .calls import OpenCalls
from .calls_store import OpenCallStore
from .config import Config, DeliveryConfig
from .delivery.spool import Spool
from .delivery.store import DeliveryStore
from .hooks.repository import HookRepository
from .hooks.store import HookStore
from .timings import Timings

if TYPE_CHECKING:
    from .pg.database import Database

DELIVERY_FILE = "delivery.sqlite3"      # in state_dir
OPEN_CALLS_FILE = "open-calls.json"     # in state_dir


_databases: dict[str, "Database"] = {}     # dsn -> the open pool


def database(config: Config) -> "Database":
    """The pool to ``storage.dsn``, opened and migrated on first use
    (DatabaseUnavailable if it cannot be)."""
    from .pg.database import open_database
    dsn = config.storage.dsn or ""
    if dsn not in _databases:
        _databases[dsn] = open_database(config.storage)
    return _databases[dsn]


def close() -> None:
    """Close the pools ``database`` opened."""
    while _databases:
        _databases.popitem()[1].close()


def hook_repository(config: Config, accounts: AccountDirectory,
                    timings: Timings = Timings()) -> HookRepository:
    if config.storage.postgresql:
        from .pg.hooks import PgHookRepository
        return PgHookRepository(database(config), accounts)
    return HookStore(config.hooks_file, accounts, settle_seconds=timings.hooks_settle_seconds,
                     empty_settle_seconds=timings.hooks_empty_settle_seconds)


def delivery_store(config: Config, timings: Timings = Timings()) -> DeliveryStore:
    """Opens the store (DeliveryStoreUnusable if it cannot be used)."""
    if config.storage.postgresql:
        from .pg.deliveries import PgDeliveryStore
        return PgDeliveryStore(database(config), instance_name(config),
                               memory_limit=config.delivery.buffer_size,
                               lease_seconds=config.storage.lease_seconds,
                               renew_seconds=config.storage.renew_seconds,
                               commit_retry_seconds=timings.spool_commit_retry_seconds,
                               error_report_seconds=timings.spool_error_report_seconds)
    return embedded_delivery_store(str(config.state_dir / DELIVERY_FILE), config.delivery,
                                   timings)


def instance_name(config: Config) -> str:
    """This instance among those sharing a database: its host and state_dir, the same
    across restarts (its delivery ids' range is kept by this name)."""
    return "%s:%s" % (socket.gethostname(), config.state_dir.resolve())


def open_call_store(config: Config, timings: Timings = Timings()) -> OpenCallStore:
    if config.storage.postgresql:
        from .pg.calls import PgCallTable
        return OpenCalls(table=PgCallTable(database(config), instance_name(config)),
                         sequence_from_switch=True,
                         flush_seconds=timings.open_calls_flush_seconds,
                         error_report_seconds=timings.open_calls_error_report_seconds)
    return OpenCalls(config.state_dir / OPEN_CALLS_FILE,
                     flush_seconds=timings.open_calls_flush_seconds,
                     error_report_seconds=timings.open_calls_error_report_seconds)


def embedded_delivery_store(path: str | None, delivery: DeliveryConfig,
                            timings: Timings = Timings()) -> DeliveryStore:
    """The SQLite spool at ``path`` (None: in memory, for tests and tools); it holds
    at most ``delivery.buffer_size`` finished records in memory while commits fail."""
    return Spool(path or ":memory:", memory_limit=delivery.buffer_size,
                 commit_retry_seconds=timings.spool_commit_retry_seconds,
                 error_report_seconds=timings.spool_error_report_seconds)
