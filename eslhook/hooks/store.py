"""The hook store: hooks.yaml, its live reload, and the current HookIndex: the hook
repository (``repository.py``) of embedded mode.

Hand edits are picked up by polling the file's (mtime_ns, size, inode) about
once a second.  Reading, parsing and validating run in gevent's threadpool so
the hub never waits on the disk or on a big file.  A bad edit is logged with
every problem and the last good hooks stay in force.

A read is the truth only when it is stable: two reads ``settle_seconds`` apart
with the same size, mtime, inode and bytes (a hand edit that truncates the
file in place and writes it slowly is otherwise read half written).  A file
that would take the hooks in force to none must also stay so for
``empty_settle_seconds``: a truncated file is not "no hooks".

``update(change)`` is the REST API's locked read-modify-write.  If the file's
bytes are what eslhook last loaded or wrote, the change is spliced into the
text (``layout.py``: only the touched entry changes, comments and every other
hook stay byte for byte) and written atomically, only if the file still holds
what was read.  If the file changed since (a hand edit), or is being written,
nothing is written: ``HooksFileConflict`` (the API's 409), and a settled hand
edit is put in force, so a retry applies to it.  The hand edit always wins.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from ..accounts import AccountDirectory
from ..config import ConfigError, ConfigIssue
from ..supervise import Deadline, Supervisor
from ..threads import in_threadpool
from .files import (Displaced, FileSignature, FileState, file_signature, read_fd_state, read_state,
                    replace_if_unchanged, sha256)
from .index import HookIndex
from .layout import Layout
from .model import Hook
from .repository import Change, HooksConflict, InForceView, T
from .yaml_file import write_hooks_file
from .yaml_text import ParsedFile, changed_positions, new_text, parse_state

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0            # hand edits are looked for this often
SETTLE_SECONDS = 0.025        # between the two reads of a stable read
STABLE_ATTEMPTS = 8           # then the file counts as being written
EMPTY_SETTLE_SECONDS = 1.0    # a file with no hooks must stay so this long
RESTORE_ATTEMPTS = 200        # a displaced hand edit: wait up to ~5 s for its writer
INTERNAL_ATTEMPTS = 3         # eslhook's own writes try again after a conflict
DISPLACED_WATCH_SECONDS = 5.0  # how long a replaced inode is watched for late writes
DISPLACED_KEPT = 8            # at most this many watched at once (the newest)


class HooksFileConflict(HooksConflict):
    """The file changed since eslhook last read it, or is being written right
    now: nothing was written (the API answers 409)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(reason, "%s %s" % (path, "was edited since it was last read"
                                            if reason == "changed" else "is being written"))


@dataclass(frozen=True)
class _Snapshot:
    """What is in force: swapped as one reference, so readers never see a mix."""
    hooks: tuple[Hook, ...]
    index: HookIndex
    generation: int


@dataclass(frozen=True)
class _Known:
    """The file as last loaded or written: what a write may replace."""
    signature: FileSignature | None
    digest: str | None
    layout: Layout | None
    text: str          # kept only when there is no layout (rewrite_document needs it)


@dataclass(frozen=True)
class _Watched:
    """A replaced inode watched for a late hand edit."""
    fd: int
    held: FileState        # what it held when our rename replaced it
    until: float           # monotonic time to stop watching


class HookStore(InForceView):
    def __init__(self, path: str | os.PathLike, accounts: AccountDirectory, *,
                 settle_seconds: float = SETTLE_SECONDS,
                 empty_settle_seconds: float = EMPTY_SETTLE_SECONDS):
        self.path = Path(path)
        self.accounts = accounts
        self.settle_seconds = settle_seconds
        self.empty_settle_seconds = empty_settle_seconds
        self._in_force = _Snapshot((), HookIndex((), accounts), 0)
        self._known: _Known | None = None
        self._signature: FileSignature | None = None   # of the file last looked at
        self._empty_since: tuple[str | None, float] | None = None
        # inodes our writes replaced, watched for a hand edit written to them late
        self._displaced: list[_Watched] = []
        self._lock = Semaphore()      # one reload or write at a time
        self._stopping = Event()
        self._group = Group()

    # -- what is in force ---------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.path)

    # -- loading --------------------------------------------------------------
    def load(self) -> list[Hook]:
        """Read the file at startup (creating it empty if missing); ConfigError if bad."""
        with self._lock:
            if in_threadpool(file_signature, self.path) is None:
                in_threadpool(write_hooks_file, self.path, [])
            state = self._stable(lambda: in_threadpool(read_state, self.path))
            if state is None:
                raise ConfigError([ConfigIssue(str(self.path), "", "kept changing while "
                                               "read; is something writing it?")])
            parsed = in_threadpool(parse_state, state, self.accounts, self.path)
            if parsed.error is not None:
                raise parsed.error
            self._install(parsed.hooks, state, parsed)
        log.info("hooks loaded from %s: %d hooks (%d enabled)", self.path,
                 len(parsed.hooks), sum(h.enabled for h in parsed.hooks))
        return parsed.hooks

    def poll(self) -> bool:
        """Reload if the file changed since it was last read; True if reloaded."""
        with self._lock:
            self._check_displaced()
            if in_threadpool(file_signature, self.path) == self._signature:
                return False
            state = self._stable(lambda: in_threadpool(read_state, self.path))
            if state is None:
                return False      # being written (an editor mid-save): next poll
            if self._known is not None and state.digest == self._known.digest:
                self._signature = state.signature      # touched, not changed
                return False
            parsed = self._parsed_for_use(state)
            if parsed is None:
                return False
            self._install(parsed.hooks, state, parsed)
        log.info("hooks reloaded: %d hooks (%d enabled) from %s", len(parsed.hooks),
                 sum(h.enabled for h in parsed.hooks), self.path)
        return True

    def _parsed_for_use(self, state: FileState) -> ParsedFile | None:
        """The stable file's hooks, or None if they are not to be put in force
        (bad: reported once; no hooks that have not stayed so long enough)."""
        parsed = in_threadpool(parse_state, state, self.accounts, self.path)
        if parsed.error is not None:
            if state.signature != self._signature:   # a bad file is reported once
                self._report_rejected(parsed.error)
            self._signature = state.signature
            return None
        if self._must_wait_for_empty(parsed.hooks, state):
            return None
        return parsed

    def _must_wait_for_empty(self, hooks: list[Hook], state: FileState) -> bool:
        """True while a file with no hooks has not stayed so for empty_settle_seconds
        (a truncated file is not "no hooks"); the next poll looks again."""
        if hooks or not self._in_force.hooks:
            self._empty_since = None
            return False
        now = time.monotonic()
        if self._empty_since is None or self._empty_since[0] != state.digest:
            self._empty_since = (state.digest, now)
            log.warning("hooks file %s holds no hooks: the %d hooks in force stay until "
                        "it has stayed so %.1f s", self.path, len(self._in_force.hooks),
                        self.empty_settle_seconds)
        return now - self._empty_since[1] < self.empty_settle_seconds

    def _stable(self, read: Callable[[], FileState], attempts: int = STABLE_ATTEMPTS
                ) -> FileState | None:
        """A read equal to the one settle_seconds before it; None if the file
        kept changing."""
        first = read()
        for _ in range(attempts):
            gevent.sleep(self.settle_seconds)
            second = read()
            if second.same_as(first):
                return second
            first = second
        return None

    # -- writing ----------------------------------------------------------------
    def write(self, hooks: Iterable[Hook]) -> None:
        """Validate, then make the file hold exactly ``hooks`` and put them in force."""
        hooks = list(hooks)
        self.update(lambda current: (hooks, None))

    def update(self, change: Change[T], *, refuse_if_edited: bool = False) -> T:
        """Locked read-modify-write of the file; returns change's result.

        ``change(hooks)`` runs on the hub without blocking and returns (new hooks
        or None, result); whatever it raises aborts the update with nothing
        written.  Raises ConfigError if the file on disk is invalid right now (a
        bad hand edit is never overwritten) or the new hooks are, and
        HooksFileConflict if the file is being written, or changed under the
        write (a change returning None still gets the hooks).

        ``refuse_if_edited`` (the REST API, whose client can retry): a file
        edited since it was last read is a conflict too.  Otherwise (eslhook's
        own writes, e.g. auto-disable) the change applies to the edit once it
        is read whole and in force, and a conflict is tried again a few times.
        """
        attempts = 1 if refuse_if_edited else INTERNAL_ATTEMPTS
        for attempt in range(attempts):
            try:
                with self._lock:
                    return self._update_locked(change, refuse_if_edited)
            except HooksFileConflict:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def _update_locked(self, change: Change[T], refuse_if_edited: bool) -> T:
        current, conflict = self._current()
        new_hooks, result = change(list(current))
        if new_hooks is None:
            return result
        if conflict == "unstable" or (conflict == "changed" and refuse_if_edited):
            raise HooksFileConflict(self.path, conflict)
        self._write(list(new_hooks))
        return result

    def _current(self) -> tuple[tuple[Hook, ...], str | None]:
        """The hooks of the file now, and why a write must not go ahead (call
        with the lock held): None, "changed" or "unstable"."""
        now = in_threadpool(read_state, self.path)
        known = self._known
        if known is not None and now.digest is not None and now.digest == known.digest:
            if now.signature != known.signature:
                self._known = replace(known, signature=now.signature)
            return self._in_force.hooks, None
        state = self._stable(lambda: in_threadpool(read_state, self.path))
        if state is None:
            return self._in_force.hooks, "unstable"
        if known is not None and state.digest == known.digest:   # changed back meanwhile
            self._known = replace(known, signature=state.signature)
            return self._in_force.hooks, None
        parsed = in_threadpool(parse_state, state, self.accounts, self.path)
        if parsed.error is not None:
            raise parsed.error
        if self._must_wait_for_empty(parsed.hooks, state):
            return self._in_force.hooks, "unstable"
        self._install(parsed.hooks, state, parsed)
        log.info("hooks reloaded before an update: %d hooks from %s",
                 len(parsed.hooks), self.path)
        return self._in_force.hooks, "changed"

    def _write(self, new_hooks: list[Hook]) -> None:
        old = self._in_force.hooks
        changed = changed_positions(old, new_hooks)
        if not changed and len(old) == len(new_hooks):
            return                       # the same hooks: nothing to write
        known = self._known
        text, layout, fresh = in_threadpool(
            new_text, known.layout if known else None, known.text if known else "", old,
            new_hooks, changed, self.accounts, self.path)
        outcome = in_threadpool(replace_if_unchanged, self.path, text,
                                known.signature[2] if known and known.signature else None,
                                known.digest if known else None)
        if outcome.displaced is None:    # a hand edit landed after our read
            self._current()              # in force now, so a retry applies to it
            raise HooksFileConflict(self.path, "changed")
        digest = sha256(text.encode("utf-8"))
        if outcome.displaced.changed:    # ... or truncated the file as we renamed
            self._restore(outcome.displaced.fd, outcome.signature, digest)
            self._current()
            raise HooksFileConflict(self.path, "changed")
        self._watch_displaced(outcome.displaced)
        if fresh:
            log.warning("hooks file %s: %d edited hook(s) written afresh (their comments "
                        "could not be kept)", self.path, fresh)
        appended = len(changed) == len(new_hooks) - len(old) and new_hooks[:len(old)] == list(old)
        self._install(new_hooks, FileState(None, outcome.signature),
                      ParsedFile(layout=layout, text="" if layout else text), digest,
                      index=self.index.appended(new_hooks[len(old):], self.accounts)
                      if appended else None)
        log.info("hooks updated: %d hooks in %s", len(new_hooks), self.path)

    def _watch_displaced(self, displaced: Displaced) -> None:
        self._displaced.append(_Watched(displaced.fd, displaced.held, time.monotonic() +
                                        DISPLACED_WATCH_SECONDS))
        while len(self._displaced) > DISPLACED_KEPT:
            os.close(self._displaced.pop(0).fd)

    def _check_displaced(self) -> None:
        """An editor that opened the file before one of our renames writes its
        text to the inode we replaced: put that text back (lock held)."""
        now = time.monotonic()
        for item in list(self._displaced):
            if not in_threadpool(read_fd_state, item.fd).same_as(item.held):
                self._displaced.remove(item)
                known = self._known
                self._restore(item.fd, known.signature if known else None,
                              known.digest if known else None)
            elif now > item.until:
                self._displaced.remove(item)
                os.close(item.fd)

    def _restore(self, fd: int, ours: FileSignature | None, digest: str | None) -> None:
        """A hand edit went to an inode our write replaced: once its writer is
        done, put it back in place of ``ours`` (the hand edit wins); the next
        read puts it in force.  Closes ``fd``."""
        try:
            hand = self._stable(lambda: in_threadpool(read_fd_state, fd), RESTORE_ATTEMPTS)
            if hand is None:
                log.error("hooks file %s: a hand edit raced an API write and was still "
                          "being written after %d reads; its text may be lost",
                          self.path, RESTORE_ATTEMPTS)
                return
            put_back = in_threadpool(replace_if_unchanged, self.path, hand.raw,
                                     ours[2] if ours else None, digest)
            if put_back.displaced is not None:
                self._watch_displaced(put_back.displaced)
            log.warning("hooks file %s was edited by hand while eslhook wrote it: the "
                        "hand edit is %s", self.path,
                        "restored and wins" if put_back.displaced else "superseded by a "
                        "later edit")
        finally:
            os.close(fd)

    def _install(self, hooks: list[Hook], state: FileState, parsed: ParsedFile,
                 digest: str | None = None, index: HookIndex | None = None) -> None:
        index = index or HookIndex(hooks, self.accounts)
        self._in_force = _Snapshot(tuple(hooks), index, self._in_force.generation + 1)
        self._known = _Known(state.signature, digest or state.digest, parsed.layout,
                             parsed.text)
        self._signature = state.signature
        self._empty_since = None

    def _report_rejected(self, error: ConfigError) -> None:
        in_force = len(self._in_force.hooks)
        log.error("hooks file %s rejected (%d problem%s); keeping the %d hook%s in force",
                  self.path, len(error.issues), "s" * (len(error.issues) != 1),
                  in_force, "s" * (in_force != 1))
        for issue in error.issues:
            log.error("  %s", issue)

    # -- watching -------------------------------------------------------------
    def start_watching(self, interval: float = POLL_SECONDS,
                       supervisor: Supervisor | None = None) -> None:
        self._start_watcher(interval, supervisor)

    def stop(self, deadline: Deadline | None = None) -> None:
        self._stop_watcher(deadline)
        with self._lock:
            for item in self._displaced:
                os.close(item.fd)
            self._displaced.clear()

    def _watch(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.poll()
            except Exception:  # keep watching: the next poll may well succeed
                log.exception("hooks file %s: poll failed", self.path)


