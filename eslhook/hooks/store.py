"""The hook store: hooks.yaml, its live reload, and the current HookIndex.

Hand edits are picked up by polling the file's (mtime_ns, size, inode) about
once a second.  Reading, parsing and validating run in gevent's threadpool so
the hub never waits on the disk or on a big file.  A bad edit is logged with
every problem and the last good hooks stay in force.

``update(change)`` is the REST API's locked read-modify-write: under the lock
it compares the file's bytes with what was last loaded or written (a digest,
not the signature: an in-place edit can keep size and mtime), reloads a hand
edit first, and writes only if the file is still what it read, so neither a
stale in-memory copy nor a concurrent request ever overwrites a change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from ..accounts import AccountDirectory
from ..config import (ConfigError, ConfigIssue, parse_hooks, validate_hooks,
                      write_hooks_file)
from ..threads import in_threadpool
from .index import HookIndex
from .model import Hook

log = logging.getLogger(__name__)

FileSignature = tuple[int, int, int]  # (mtime_ns, size, inode)
T = TypeVar("T")
# change(current hooks) -> (new hooks, or None to write nothing; result for the caller)
Change = Callable[[list[Hook]], "tuple[list[Hook] | None, T]"]
_UPDATE_ATTEMPTS = 5   # the file changed between our read and our rename: read again


class HooksFileChanged(Exception):
    """The file kept changing under an update (someone is saving it repeatedly)."""


@dataclass(frozen=True)
class _Snapshot:
    """What is in force: swapped as one reference, so readers never see a mix."""
    hooks: tuple[Hook, ...]
    index: HookIndex
    generation: int


@dataclass(frozen=True)
class _ReadResult:
    signature: FileSignature | None
    hooks: list[Hook] | None = None
    error: ConfigError | None = None
    digest: str | None = None       # sha256 of the bytes parsed


class HookStore:
    def __init__(self, path: str | os.PathLike, accounts: AccountDirectory):
        self.path = Path(path)
        self.accounts = accounts
        self._snapshot = _Snapshot((), HookIndex((), accounts), 0)
        self._signature: FileSignature | None = None   # of the file last read
        self._digest: str | None = None   # of the bytes last loaded or written
        self._lock = Semaphore()      # one reload or write at a time
        self._stopping = Event()
        self._group = Group()

    # -- what is in force ---------------------------------------------------
    @property
    def index(self) -> HookIndex:
        return self._snapshot.index

    @property
    def hooks(self) -> list[Hook]:
        return list(self._snapshot.hooks)

    @property
    def generation(self) -> int:
        """Increments on every successful load, reload or write."""
        return self._snapshot.generation

    # -- loading --------------------------------------------------------------
    def load(self) -> list[Hook]:
        """Read the file at startup (creating it empty if missing); ConfigError if bad."""
        with self._lock:
            result = in_threadpool(_read_hooks, self.path, self.accounts, True)
            if result.error is not None:
                raise result.error
            self._install(result.hooks, result.signature, result.digest)
        log.info("hooks loaded from %s: %d hooks (%d enabled)", self.path,
                 len(result.hooks), sum(h.enabled for h in result.hooks))
        return result.hooks

    def poll(self) -> bool:
        """Reload if the file changed since it was last read; True if reloaded."""
        with self._lock:
            if in_threadpool(_file_signature, self.path) == self._signature:
                return False
            result = in_threadpool(_read_hooks, self.path, self.accounts, False)
            if result.signature != in_threadpool(_file_signature, self.path):
                return False  # changed while we read it (an editor mid-save): next poll
            self._signature = result.signature  # a bad file is reported once, not every poll
            if result.error is not None:
                self._report_rejected(result.error)
                return False
            self._install(result.hooks, result.signature, result.digest)
        log.info("hooks reloaded: %d hooks (%d enabled) from %s", len(result.hooks),
                 sum(h.enabled for h in result.hooks), self.path)
        return True

    def write(self, hooks: Iterable[Hook]) -> None:
        """Validate, then replace the file atomically and put the hooks in force."""
        hooks = list(hooks)
        with self._lock:
            in_threadpool(validate_hooks, hooks, self.accounts, str(self.path))
            signature, digest = in_threadpool(_write_and_sign, self.path, hooks, None)
            self._install(hooks, signature, digest)
        log.info("hooks written: %d hooks to %s", len(hooks), self.path)

    def update(self, change: Change) -> T:
        """Locked read-modify-write of the file; returns change's result.

        ``change(hooks)`` runs on the hub without blocking and returns (new hooks
        or None, result); whatever it raises aborts the update with nothing
        written.  Raises ConfigError if the file on disk is invalid right now (a
        bad hand edit is never overwritten) or the new hooks are, and
        HooksFileChanged if the file kept changing under us.
        """
        for _ in range(_UPDATE_ATTEMPTS):
            with self._lock:
                current = self._fresh_hooks()
                new_hooks, result = change(list(current))
                if new_hooks is None:
                    return result
                new_hooks = list(new_hooks)
                in_threadpool(validate_hooks, new_hooks, self.accounts, str(self.path))
                written = in_threadpool(_write_and_sign, self.path, new_hooks, self._digest)
                if written is None:
                    continue  # a hand edit landed after our read: apply the change to it
                self._install(new_hooks, *written)
            log.info("hooks updated: %d hooks in %s", len(new_hooks), self.path)
            return result
        raise HooksFileChanged("%s kept changing during an update" % self.path)

    def _fresh_hooks(self) -> tuple[Hook, ...]:
        """The hooks in the file now (call with the lock held)."""
        if in_threadpool(_file_digest, self.path) == self._digest:
            return self._snapshot.hooks
        result = in_threadpool(_read_hooks, self.path, self.accounts, False)
        if result.error is not None:
            raise result.error
        self._install(result.hooks, result.signature, result.digest)
        log.info("hooks reloaded before an update: %d hooks from %s",
                 len(result.hooks), self.path)
        return self._snapshot.hooks

    def _install(self, hooks: list[Hook], signature: FileSignature | None,
                 digest: str | None) -> None:
        index = HookIndex(hooks, self.accounts)
        self._snapshot = _Snapshot(tuple(hooks), index, self._snapshot.generation + 1)
        self._signature = signature
        self._digest = digest

    def _report_rejected(self, error: ConfigError) -> None:
        in_force = len(self._snapshot.hooks)
        log.error("hooks file %s rejected (%d problem%s); keeping the %d hook%s in force",
                  self.path, len(error.issues), "s" * (len(error.issues) != 1),
                  in_force, "s" * (in_force != 1))
        for issue in error.issues:
            log.error("  %s", issue)

    # -- watching -------------------------------------------------------------
    def start_watching(self, interval: float = 1.0) -> None:
        if len(self._group):
            return
        self._stopping.clear()
        watcher = self._group.spawn(self._watch, interval)
        watcher.link_exception(_log_crash)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._group.join(timeout=timeout)
        self._group.kill(timeout=timeout)

    def _watch(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.poll()
            except Exception:  # keep watching: the next poll may well succeed
                log.exception("hooks file %s: poll failed", self.path)


def _file_signature(path: Path) -> FileSignature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except OSError:   # missing, a directory, unreadable: _read_hooks names the problem
        return None


def _read_hooks(path: Path, accounts: AccountDirectory, create_missing: bool) -> _ReadResult:
    """Runs in a worker thread: no gevent calls, no logging of results."""
    if create_missing and not path.exists():
        write_hooks_file(path, [])
    signature = _file_signature(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        why = "file not found" if isinstance(exc, FileNotFoundError) else (
            "cannot read: %s" % exc.strerror)
        return _ReadResult(signature, error=ConfigError([ConfigIssue(str(path), "", why)]))
    digest = _sha256(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        error = ConfigError([ConfigIssue(str(path), "", "not UTF-8 text", line)])
        return _ReadResult(signature, error=error, digest=digest)
    try:
        return _ReadResult(signature, hooks=parse_hooks(text, accounts, str(path)),
                           digest=digest)
    except ConfigError as error:
        return _ReadResult(signature, error=error, digest=digest)


def _write_and_sign(path: Path, hooks: list[Hook], expected_digest: str | None
                    ) -> tuple[FileSignature | None, str] | None:
    """Write unless the file's bytes are no longer ``expected_digest`` (None: always)."""
    if expected_digest is not None and _file_digest(path) != expected_digest:
        return None
    text = write_hooks_file(path, hooks)
    return _file_signature(path), _sha256(text.encode("utf-8"))


def _log_crash(greenlet) -> None:
    log.error("hooks file watcher stopped: %r", greenlet.exception)
