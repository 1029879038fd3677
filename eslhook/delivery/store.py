"""The delivery store: what the delivery queue keeps durable, behind one interface.

Every delivery accepted, its state changes (attempts, next attempt time, finished
as delivered, failed, expired or dropped) and the attempt log go through a
``DeliveryStore``.  The queue (``delivery/queue.py``) and attempt history
(``delivery/history.py``) hold this interface, never a file: the embedded backend
is the SQLite spool (``delivery/spool.py``), chosen in ``eslhook/stores.py``, and
the fleet mode's PostgreSQL backend (issue 14) is one more class there.  Every
backend passes ``tests/contract/test_delivery_store.py``.

What every backend promises (the contract suite checks each):

- Recording (``added``, ``changed``, ``attempted``) runs on the hub and never
  blocks: it hands the change over; the store commits it in the background,
  soon (the SQLite spool: within a few ms), in the order handed over.
- Reads (``lane``, ``attempts_page``, ``window``) see everything handed over
  before them, committed or not.
- A lane's pending deliveries come back in submission order (their ids).
- What was handed over before ``close()`` is there when the store is opened
  again (``contents()`` then tells the lanes to resume).
- While commits fail, nothing pending is lost: deliveries not committed stay in
  memory, ``not_durable`` counts them, ``failure`` says why, lane reads still
  serve them in order, and commits resume by themselves once they can.
- Reads and maintenance that fail raise ``DeliveryStoreError`` (never a
  driver's own exception); a store that cannot be opened at all raises
  ``DeliveryStoreUnusable``, whose ``str()`` tells the operator what to do.

A ``typing.Protocol``, not an ABC: the spool satisfies it as it is (nothing
registers or inherits), and mypy checks the fit where the factory returns one, as
for the API's ports (``eslhook/ports.py``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Protocol, TypeVar, runtime_checkable

import gevent

from eslhook.supervise import KILL_GRACE_SECONDS, Deadline, Supervisor, deadline_of

from eslhook.delivery.rows import (
    AttemptFilter, AttemptPage, AttemptRecord, Delivery, DeliveryRow, FinishedDelivery, SpoolContents,
    StoredDelivery)

__all__ = ["DeliveryStore", "DeliveryStoreError", "DeliveryStoreUnusable", "ClaimsLanes"]


class DeliveryStoreError(Exception):
    """A read or maintenance call of the store failed (a full disk, a database
    away); ``str()`` says why.  The store stays usable: a later call may work."""


class DeliveryStoreUnusable(DeliveryStoreError):
    """The store cannot be opened (e.g. a corrupt file); ``str()`` says what to do.
    eslhook refuses to start (exit 3)."""


class DeliveryStore(Protocol):
    """The durable side of the delivery queue (see the module docstring)."""

    @property
    def location(self) -> str:
        """Where the store is, for log lines (a file, a database without password)."""
        ...

    def contents(self) -> SpoolContents:
        """What a previous run left: the next free delivery id, the number pending,
        and each pending lane's head's next attempt time."""
        ...

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start committing in the background (its greenlets under ``supervisor``)."""
        ...

    def close(self, deadline: Deadline | None = None) -> None:
        """Commit what is left (as far as it can by ``deadline``), stop, release the
        storage."""
        ...

    # -- health (read on every submit and status snapshot: cheap) ---------------------
    @property
    def backlog(self) -> int:
        """Deliveries handed over and not committed yet."""
        ...

    @property
    def not_durable(self) -> int:
        """Pending deliveries a commit failed for, held in memory only (0 while
        commits work)."""
        ...

    @property
    def unrecorded(self) -> int:
        """Finished deliveries and attempt records given up, to bound memory while
        commits failed (a running total)."""
        ...

    @property
    def failure(self) -> str | None:
        """Why commits fail now; None while they succeed."""
        ...

    # -- recording: on the hub, never blocks ---------------------------------------------
    def added(self, delivery: Delivery) -> None:
        """A new pending delivery (its id is the next from ``contents().next_id`` on)."""
        ...

    def changed(self, delivery: Delivery) -> None:
        """The delivery's attempts, next attempt, state or finished time changed."""
        ...

    def attempted(self, record: AttemptRecord) -> None:
        """One attempt for the attempt log."""
        ...

    # -- reads and maintenance: may wait for the storage -----------------------------
    def lane(self, hook_id: str, call_id: str | None, limit: int) -> list[StoredDelivery]:
        """The first pending deliveries of the lane (hook, call), in id order, those
        not committed included.  May return more than ``limit``; fewer means there
        are no more."""
        ...

    def end_lane(self, hook_id: str, call_id: str | None, state: str) -> int:
        """Finish every pending delivery of the lane as ``state``; how many there were
        (if the storage refuses, they are counted and the next open ends them)."""
        ...

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None,
                      only: AttemptFilter = AttemptFilter()) -> AttemptPage:
        """The account's (or one hook's) attempt log, newest first, from the record
        ``start_key`` (None: the newest) on, the records ``only`` lets through.  Each
        record a dict: ``id`` (a string that names the record as a start_key) and
        ``rows.ATTEMPT_FIELDS``."""
        ...

    def attempted_delivery(self, account_id: str, hook_id: str,
                           attempt_id: int) -> FinishedDelivery | None:
        """The delivery that the hook's attempt ``attempt_id`` was made for (its
        payload, webhook-id...), or None if either is no longer kept."""
        ...

    def window(self, hook_id: str, since: float, until: float,
               limit: int) -> list[FinishedDelivery]:
        """The hook's finished deliveries accepted in [since, until), oldest first."""
        ...

    def insert_copies(self, rows: Iterable[DeliveryRow]) -> None:
        """Add pending deliveries at once, durably (a replay's copies)."""
        ...

    def prune(self, before: float) -> tuple[int, int]:
        """Drop attempt records and finished deliveries older than ``before`` (unix
        time): (attempts dropped, deliveries dropped)."""
        ...


@runtime_checkable
class ClaimsLanes(Protocol):
    """A store shared by several instances (fleet mode: PostgreSQL) that decides which
    instance delivers each lane.  The queue then delivers nothing from memory: it hands
    each delivery to the store and attempts a lane only once the store says this
    instance holds it.  The SQLite spool has no ``claim_lanes``: the queue owns every
    lane, as it always did."""

    def claim_lanes(self, on_owned: Callable[[list[tuple[str, str | None]]], None],
                    on_renewed: Callable[[list[tuple[str, str | None]]], None] | None = None
                    ) -> None:
        """From now on claim the lanes of what is added; call ``on_owned`` (on the hub,
        never blocking) with lanes this instance holds that have deliveries in the
        store after each commit that claimed or kept some; after each renewal, call
        ``on_renewed`` (else ``on_owned``) with EVERY lane it holds (taken over lanes
        included): a lane in memory not among them was taken over by another."""
        ...

    duplicates: int      # deliveries another instance enqueued first (a running total)
    leases_held: int     # lanes leased to this instance at the last renewal


T = TypeVar("T")


class StatementReads:
    """The reads both backends answer alike: each is the backend's statement of
    the same name in ``_statements`` (``SpoolDb``'s methods, ``pg.deliveries_sql``'s
    functions), run by the backend's ``_call`` (which commits what is pending
    first, then runs it in the threadpool or on a pooled connection)."""

    _statements: Any

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def attempts_page(self, account_id: str, hook_id: str | None, page_size: int,
                      start_key: int | None,
                      only: AttemptFilter = AttemptFilter()) -> AttemptPage:
        return self._call(self._statements.attempts_page, account_id, hook_id, page_size,
                          start_key, only)

    def attempted_delivery(self, account_id: str, hook_id: str,
                           attempt_id: int) -> FinishedDelivery | None:
        return self._call(self._statements.attempted_delivery, account_id, hook_id,
                          attempt_id)

    def window(self, hook_id: str, since: float, until: float,
               limit: int) -> list[FinishedDelivery]:
        return self._call(self._statements.window, hook_id, since, until, limit)

    def prune(self, before: float) -> tuple[int, int]:
        return self._call(self._statements.prune, before)


class BackgroundCommits:
    """The hub side both batched backends share: what the queue hands over waits
    in ``_new`` (and ``_committing`` while a batch is on its way) until the
    flusher greenlet commits it; ``failure`` says why commits fail now."""

    _new: dict
    _committing: int
    _lock: Any
    _closed: bool
    _closing: Any
    _dirty: Any
    _group: Any

    @property
    def failure(self) -> str | None:
        raise NotImplementedError

    _flush_interval: float

    def _flush_locked(self, force: bool = False) -> None:
        raise NotImplementedError

    def _next_retry(self) -> float | None:
        """When failing commits are tried again (monotonic); None while they work."""
        raise NotImplementedError

    def _flush_loop(self) -> None:
        while not self._closed:
            retry_at = self._next_retry()
            if retry_at is None:
                self._dirty.wait()
                gevent.sleep(self._flush_interval)   # gather a batch
            else:
                self._closing.wait(max(0.0, retry_at - time.monotonic()))
            self._dirty.clear()
            self.flush()

    @property
    def backlog(self) -> int:
        """Deliveries accepted but not yet committed."""
        return len(self._new) + self._committing

    @property
    def not_durable(self) -> int:
        """Pending deliveries a commit failed for: in memory only (0 while commits work)."""
        return self.backlog if self.failure is not None else 0

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _stop_flusher(self, deadline: Deadline | None) -> None:
        """No more commits in the background: the flusher ends (its commit waited for
        until ``deadline``), then the caller commits the rest under ``_lock``."""
        self._closed = True
        self._closing.set()
        self._dirty.set()
        self._group.join(timeout=deadline_of(deadline, 5.0).left())
        self._group.kill(timeout=KILL_GRACE_SECONDS)
