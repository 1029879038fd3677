"""The hook repository on PostgreSQL (fleet mode): every instance's API writes here.

Each hook is one row holding its JSON document (``Hook.to_dict``, secrets included,
as hooks.yaml holds it), so a new hook field needs no schema change.  A write is
one transaction: lock the ``hooks_revision`` row (``FOR UPDATE``: writers of all
instances queue there), compare its revision with the one this repository last
put in force (different: another instance wrote meanwhile, its hooks are loaded
first), apply the change, validate, write, bump the revision and
``NOTIFY eslhook_hooks``.  A watching repository LISTENs on its own connection and
also checks the revision every ``interval``, so a change reaches it within about
a second even if a notification is lost (a reconnect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group
from psycopg.types.json import Jsonb

from ..accounts import AccountDirectory
from ..config import ConfigError, validate_changed_hooks
from ..config.documents import Document
from ..hooks.index import HookIndex
from ..hooks.model import Hook
from ..hooks.repository import Change, HooksConflict, HooksUnavailable, InForceView, T
from ..hooks.yaml_file import hooks_from_document
from ..hooks.yaml_text import changed_positions
from ..logs import OncePerInterval
from ..supervise import Deadline, Supervisor
from ..threads import in_threadpool
from .database import Database, error_line

log = logging.getLogger(__name__)
WATCH_ERROR_REPORT_SECONDS = 10.0     # the database away: one line per interval

CHANNEL = "eslhook_hooks"


@dataclass(frozen=True)
class _InForce:
    """What is in force: swapped as one reference, so readers never see a mix."""
    hooks: tuple[Hook, ...]
    index: HookIndex
    generation: int
    revision: int | None        # hooks_revision of these hooks; None: not loaded yet


class PgHookRepository(InForceView):
    def __init__(self, database: Database, accounts: AccountDirectory):
        self.database = database
        self.accounts = accounts
        self._in_force = _InForce((), HookIndex((), accounts), 0, None)
        self._lock = Semaphore()      # one read-modify-write of this process at a time
        self._stopping = Event()
        self._group = Group()

    @property
    def location(self) -> str:
        return self.database.location

    # -- reading ------------------------------------------------------------------
    def load(self) -> list[Hook]:
        with self._lock, self.database.connection() as connection:
            revision = _revision(connection, lock=False)
            self._install(self._read(connection), revision)
        return self.hooks

    def refresh(self) -> bool:
        """Put the stored hooks in force if another writer changed them; True if so.
        Stored hooks that do not validate: logged, the last good ones stay."""
        with self._lock, self.database.connection() as connection:
            revision = _revision(connection, lock=False)
            if revision == self._in_force.revision:
                return False
            try:
                hooks = self._read(connection)
            except ConfigError as error:
                log.error("hooks in %s rejected: %s; keeping the %d in force",
                          self.location, "; ".join(map(str, error.issues)), len(self.hooks))
                return False
            self._install(hooks, revision)
        log.info("hooks reloaded: %d from %s", len(hooks), self.location)
        return True

    def _read(self, connection: psycopg.Connection) -> list[Hook]:
        rows = connection.execute("SELECT document FROM hooks ORDER BY position").fetchall()
        document = Document(self.location, {"webhooks": [row[0] for row in rows]}, {})
        return in_threadpool(hooks_from_document, document, self.accounts)

    def _install(self, hooks: list[Hook], revision: int) -> None:
        index = HookIndex(hooks, self.accounts)
        self._in_force = _InForce(tuple(hooks), index, self._in_force.generation + 1, revision)

    # -- writing ------------------------------------------------------------------
    def update(self, change: Change[T], *, refuse_if_edited: bool = False) -> T:
        try:
            return self._update(change, refuse_if_edited)
        except psycopg.Error as exc:      # the pool's timeout included
            raise HooksUnavailable("%s: %s" % (self.location, error_line(exc))) from None

    def _update(self, change: Change[T], refuse_if_edited: bool) -> T:
        with self._lock:
            with self.database.connection() as connection:
                revision = _revision(connection, lock=True)
                edited = revision != self._in_force.revision
                if edited:
                    self._install(self._read(connection), revision)
                new_hooks, result = change(list(self._in_force.hooks))
                if new_hooks is None:
                    return result
                if edited and refuse_if_edited:
                    raise HooksConflict("changed", "the hooks in %s were changed by another "
                                        "writer since they were last read" % self.location)
                new_hooks = list(new_hooks)
                old = self._in_force.hooks
                in_threadpool(validate_changed_hooks, new_hooks,
                              changed_positions(old, new_hooks), self.accounts, self.location)
                _write(connection, new_hooks, revision + 1)
            self._install(new_hooks, revision + 1)      # committed
            return result

    # -- watching -----------------------------------------------------------------
    def start_watching(self, interval: float = 1.0,
                       supervisor: Supervisor | None = None) -> None:
        self._start_watcher(interval, supervisor)

    def stop(self, deadline: Deadline | None = None) -> None:
        self._stop_watcher(deadline)

    def _watch(self, interval: float) -> None:
        report = OncePerInterval(WATCH_ERROR_REPORT_SECONDS)
        while not self._stopping.is_set():
            try:
                self._listen(interval, report)
            except (psycopg.Error, OSError) as exc:
                if report.due():
                    log.warning("hooks watcher: %s: %s (the last hooks stay in force; "
                                "retrying every %gs)", self.location, error_line(exc),
                                interval)
                self._stopping.wait(interval)

    def _listen(self, interval: float, report: OncePerInterval) -> None:
        with self.database.dedicated() as connection:
            connection.execute("LISTEN %s" % CHANNEL)
            self.refresh()              # what changed before LISTEN took effect
            report.clear()              # listening (again): the next problem is logged
            while not self._stopping.is_set():
                for _ in connection.notifies(timeout=interval, stop_after=1):
                    pass
                if not self._stopping.is_set():
                    self.refresh()


def _revision(connection: psycopg.Connection, *, lock: bool) -> int:
    row = connection.execute("SELECT revision FROM hooks_revision"
                             + (" FOR UPDATE" if lock else "")).fetchone()
    if row is None:
        raise psycopg.DataError("hooks_revision has no row")
    return int(row[0])


def _write(connection: psycopg.Connection, hooks: list[Hook], revision: int) -> None:
    """Make the table hold exactly ``hooks`` (in the caller's transaction)."""
    connection.execute("DELETE FROM hooks")
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO hooks (id, position, document) VALUES (%s, %s, %s)",
                           [(hook.id, n, Jsonb(hook.to_dict())) for n, hook in enumerate(hooks)])
    connection.execute("UPDATE hooks_revision SET revision = %s", (revision,))
    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(revision)))
