"""Calls seen created and not yet destroyed, per switch, kept in ``state_dir``: the
open-call store (``calls_store.py``) of embedded mode.

Each payload of a call is stamped here with ``sequence`` (1, 2, 3...), so a
receiver can check order itself; the counter lives with the open call, so
it survives an eslhook restart and a synthesised destroy continues it.

FreeSWITCH does not replay events to a client that was away: a call that
ends while eslhook reconnects never gets its CHANNEL_HANGUP_COMPLETE.  This
table is what eslhook believes is open, so reconciliation (``reconcile.py``)
can compare it with the switch's own list after every (re)connect.

Reconciliation must not judge a call by a read of the switch's list that
was sent before eslhook heard of it (a busy switch writes its answer in the
same packet as newer events), nor by a list that may not show it yet.  So
each switch has an *epoch*, which ``mark()`` advances just before the first
read is sent; every call carries the epoch of its latest event and when it
was first seen.  Calls ended recently are remembered for a
while too, because the list still shows a channel for a moment after its
hangup.

The hot path only touches a dict.  The table is written to
``state_dir/open-calls.json`` at most once a second when it changed, in
gevent's threadpool, atomically (temp file, fsync, rename).  A crash loses
at most that last second of changes, which the next reconciliation repairs
from the switch's list.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gevent.event import Event
from gevent.pool import Group

from .calls_store import (IN_MEMORY_ONLY, KEPT_FIELDS, NOT_OPENING_EVENTS, OpenCall, kept_fields,
                          switch_sequence)
from .payload import ChannelPayload
from .statedir import private_dir
from .supervise import KILL_GRACE_SECONDS, RESTART, Deadline, Supervisor, deadline_of
from .threads import in_threadpool

log = logging.getLogger(__name__)

ERROR_REPORT_INTERVAL_SECONDS = 10.0    # a failing write (full disk): one line per interval
__all__ = ["OpenCalls", "OpenCall", "KEPT_FIELDS", "kept_fields"]

Snapshot = dict      # {"switches": {switch: [saved call, ...]}}


class SavedTable(Protocol):
    """Where the table is saved: open-calls.json here, a database table in fleet
    mode (``eslhook/pg/calls.py``).  ``errors``: what a failed read or write raises."""
    errors: tuple[type[Exception], ...]

    def read(self) -> Snapshot | None:
        """What was saved (None: nothing yet)."""
        ...

    def write(self, snapshot: Snapshot) -> None:
        ...


class JsonFile:
    """open-calls.json, written atomically in the threadpool."""
    errors: tuple[type[Exception], ...] = (OSError,)

    def __init__(self, path: Path):
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def read(self) -> Snapshot | None:
        if not self.path.exists():
            return None
        return json.loads(self.path.read_text())

    def write(self, snapshot: Snapshot) -> None:
        in_threadpool(_write_atomically, self.path, snapshot)


class OpenCalls:
    def __init__(self, path: Path | None = None, *, flush_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 remember_ended_seconds: float = 60.0,
                 error_report_seconds: float = ERROR_REPORT_INTERVAL_SECONDS,
                 table: SavedTable | None = None, sequence_from_switch: bool = False):
        self.path = path
        # fleet mode: nothing in a payload may depend on one instance's counters
        self.sequence_from_switch = sequence_from_switch
        self.table: SavedTable | None = table or (JsonFile(path) if path is not None else None)
        self.flush_seconds = flush_seconds
        self.error_report_seconds = error_report_seconds
        self.clock = clock
        # Far beyond how long FreeSWITCH lists a channel that is gone; memory is
        # this many seconds of hangups (60 s at 300 calls/s: ~3 MB).
        self.remember_ended_seconds = remember_ended_seconds
        self._calls: dict[str, dict[str, OpenCall]] = {}   # switch -> call_id -> call
        self._epochs: dict[str, int] = {}                   # switch -> current epoch
        self._ended: dict[str, dict[str, float]] = {}       # switch -> call_id -> clock
        self._ended_order: dict[str, deque[tuple[float, str]]] = {}   # oldest first
        self._dirty = False
        self._stopping = Event()
        self._group = Group()
        self.write_error: str | None = None    # why the last write failed; None: it worked
        self._last_error_report: float | None = None

    # -- the hot path: once per mapped payload -------------------------------

    def observe(self, payload: ChannelPayload, core_uuid: str | None) -> None:
        """Record the payload's call and stamp the payload's ``sequence``."""
        switch, call_id = payload.get("switch"), payload.get("call_id")
        if not switch or not call_id:
            return
        calls = self._calls.setdefault(switch, {})
        call = calls.get(call_id)
        if payload["hook_event"] == "channel_destroy":
            payload["sequence"] = self._next_sequence(payload, call)
            self._remember_ended(switch, call_id)
            if call is not None:
                del calls[call_id]
                self._dirty = True
            return
        if call is None:
            if payload["hook_event"] in NOT_OPENING_EVENTS:
                payload["sequence"] = self._next_sequence(payload, None)   # as a destroy
                return
            call = calls[call_id] = OpenCall(call_id, switch, core_uuid,
                                             first_seen=self.clock())
        call.epoch = self._epochs.get(switch, 0)
        call.sequence = payload["sequence"] = self._next_sequence(payload, call)
        call.fields = payload
        call.core_uuid = core_uuid or call.core_uuid
        if payload["hook_event"] == "channel_answer":
            call.answered = True
        self._dirty = True

    def _next_sequence(self, payload: ChannelPayload, call: OpenCall | None) -> int:
        last = call.sequence if call else 0
        if self.sequence_from_switch:
            return switch_sequence(payload) or last + 1
        return last + 1

    # -- reconciliation's view ------------------------------------------------

    def _remember_ended(self, switch: str, call_id: str) -> None:
        ended = self._ended.get(switch)
        if ended is None:
            ended = self._ended[switch] = {}
            self._ended_order[switch] = deque()
        order = self._ended_order[switch]
        now = ended[call_id] = self.clock()
        order.append((now, call_id))
        forget_before = now - self.remember_ended_seconds
        while order[0][0] < forget_before:
            when, old = order.popleft()
            if ended.get(old) == when:       # not ended again since
                del ended[old]

    def mark(self, switch: str) -> int:
        """Start a new epoch of ``switch`` (call it right before sending the first
        read).  Returns it: a call whose ``epoch`` is lower had its latest event
        before this moment."""
        epoch = self._epochs[switch] = self._epochs.get(switch, 0) + 1
        return epoch

    def ended_of(self, switch: str) -> dict[str, float]:
        """Calls of ``switch`` that ended in the last ``remember_ended_seconds`` (or
        a little longer: forgetting happens at the next hangup), as the live
        dict: call_id -> when."""
        return self._ended.get(switch, {})

    def remember_ended_for(self, seconds: float) -> None:
        self.remember_ended_seconds = max(self.remember_ended_seconds, seconds)

    def is_known(self, switch: str, call_id: str) -> bool:
        """Open, or ended recently."""
        return call_id in self._calls.get(switch, ()) or call_id in self._ended.get(switch, ())

    # -- reading ------------------------------------------------------------

    def of_switch(self, switch: str) -> dict[str, OpenCall]:
        """The open calls of one switch (the live dict: do not keep it across yields)."""
        return self._calls.get(switch, {})

    def is_open(self, switch: str, call_id: str) -> bool:
        return call_id in self._calls.get(switch, ())

    def __len__(self) -> int:
        return sum(map(len, self._calls.values()))

    # -- persistence --------------------------------------------------------

    def load(self) -> None:
        """Read the table a previous run left (missing or unreadable: start empty)."""
        if self.table is None:
            return
        unreadable = (ValueError, KeyError, TypeError) + self.table.errors
        try:
            data = self.table.read()
            if data is None:
                return
            # Loaded calls count as known long before any read of this process.
            self._calls = {switch: {c["call_id"]: OpenCall(**_loaded(c)) for c in calls}
                           for switch, calls in data["switches"].items()}
        except unreadable as exc:
            log.error("ignoring unreadable %s (%s): reconciliation will rebuild it "
                      "from the switch", self.table, exc)
            self._calls = {}
        log.info("open calls from the last run: %d", len(self))

    def start(self, supervisor: Supervisor | None = None) -> None:
        if self.table is not None:   # restarted: a table never written again is lost
            (supervisor or Supervisor()).spawn_supervised(
                "open calls writer", self._persist_loop, how=RESTART, group=self._group)

    def stop(self, deadline: Deadline | None = None) -> None:
        self._stopping.set()
        self._group.join(timeout=deadline_of(deadline, 5.0).left())
        self._group.kill(timeout=KILL_GRACE_SECONDS)
        self._try_flush()

    def flush(self) -> None:
        if self.table is None or not self._dirty:
            return
        self._dirty = False
        snapshot = {"switches": {switch: [_snapshot(c) for c in calls.values()]
                                 for switch, calls in self._calls.items()}}
        try:
            self.table.write(snapshot)
        except BaseException:
            self._dirty = True      # the table in memory is intact: written next time
            raise

    def _persist_loop(self) -> None:
        while not self._stopping.wait(self.flush_seconds):
            self._try_flush()

    def _try_flush(self) -> None:
        """Write if changed; a full disk is logged once per interval, and retried."""
        failures = (OSError,) + (self.table.errors if self.table else ())
        try:
            self.flush()
        except failures as exc:
            self.write_error = str(exc)
            now = time.monotonic()
            if self._last_error_report is None or \
                    now - self._last_error_report >= self.error_report_seconds:
                self._last_error_report = now
                log.error("cannot write %s: %s (kept in memory, retrying every %gs)",
                          self.table, exc, self.flush_seconds)
            return
        if self.write_error is not None:
            log.warning("%s written again", self.table)
            self.write_error, self._last_error_report = None, None


def _snapshot(call: OpenCall) -> dict:
    kept = {k: v for k, v in vars(call).items() if k not in IN_MEMORY_ONLY}
    return {**kept, "fields": kept_fields(call)}


def _loaded(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in IN_MEMORY_ONLY}


def _write_atomically(path: Path, data: dict) -> None:
    private_dir(path.parent)
    # mkstemp creates the file 0600, and os.replace keeps that mode for the table
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

