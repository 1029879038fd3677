"""The one place that picks each store's backend from the configuration.

Three stores sit behind small interfaces: the hook repository
(``hooks/repository.py``), the delivery store (``delivery/store.py``) and the
open-call store (``calls_store.py``).  The pipeline (``Bridge``, ``DeliveryQueue``,
``Reconciler``, the API's context) holds only those interfaces; these functions
build the concrete backends.  Today there is one, *embedded*: hooks.yaml, a SQLite
spool and a JSON file under ``state_dir``, one process.  Fleet mode (issue 14) adds
a ``storage.backend`` setting: each function then picks by it, and a PostgreSQL
backend is one more branch here plus one more entry in the contract suites'
backend lists (tests/contract/).  docs/stores.md says what a backend must do.
"""

from __future__ import annotations

from .accounts import AccountDirectory
from .calls import OpenCalls
from .calls_store import OpenCallStore
from .config import Config, DeliveryConfig
from .delivery.spool import Spool
from .delivery.store import DeliveryStore
from .hooks.repository import HookRepository
from .hooks.store import HookStore
from .timings import Timings

DELIVERY_FILE = "delivery.sqlite3"      # in state_dir
OPEN_CALLS_FILE = "open-calls.json"     # in state_dir


def hook_repository(config: Config, accounts: AccountDirectory,
                    timings: Timings = Timings()) -> HookRepository:
    return HookStore(config.hooks_file, accounts, settle_seconds=timings.hooks_settle_seconds,
                     empty_settle_seconds=timings.hooks_empty_settle_seconds)


def delivery_store(config: Config, timings: Timings = Timings()) -> DeliveryStore:
    """Opens the store (DeliveryStoreUnusable if it cannot be used)."""
    return embedded_delivery_store(str(config.state_dir / DELIVERY_FILE), config.delivery,
                                   timings)


def open_call_store(config: Config, timings: Timings = Timings()) -> OpenCallStore:
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
