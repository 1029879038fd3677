"""The hook repository: where the hooks live, behind one interface.

The bridge (matching and delivery's view of the hooks) and the REST API hold a
``HookRepository``, never a file: the embedded backend is ``hooks.store.HookStore``
(hooks.yaml, its live reload and byte-preserving writes), chosen in
``eslhook/stores.py``; the fleet mode's PostgreSQL backend (issue 14) is one more
class there.  Every backend passes ``tests/contract/test_hook_repository.py``.

What every backend promises (the contract suite checks each):

- ``hooks`` and ``index`` are the hooks in force, swapped as one: a reader never
  sees a mix of two versions.  ``generation`` grows whenever they change.
- ``update(change)`` is a locked read-modify-write: changes made at the same
  time, from greenlets of one process or from several writers of one storage,
  are never lost; the hooks keep their order (new ones at the end); what was
  written is there when the repository is opened again.
- A change that another writer made since this one last read (a hand edit of
  hooks.yaml, another instance's API call) is never overwritten blindly: with
  ``refuse_if_edited`` the update raises ``HooksConflict`` and writes nothing,
  and that other change is then in force, so a retry applies to it; without it
  (eslhook's own writes) the change applies to the newer hooks.
- Hooks that do not validate raise ``ConfigError`` (its issues name each
  problem) and nothing is written.
- Changes made elsewhere come into force by themselves once ``start_watching``
  runs (hooks.yaml: polled every ``interval``).

A ``typing.Protocol``, not an ABC: backends satisfy it as they are and mypy checks
the fit where the factory returns one (as for ``eslhook/ports.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar

from eslhook.supervise import KILL_GRACE_SECONDS, RESTART, Deadline, Supervisor, deadline_of

from .index import HookIndex
from .model import Hook

T = TypeVar("T")
# change(current hooks) -> (new hooks, or None to write nothing; result for the caller)
Change = Callable[[list[Hook]], tuple[list[Hook] | None, T]]
CONFLICT_REASONS = ("changed", "unstable")


class HooksUnavailable(Exception):
    """Nothing was written: where the hooks live cannot be reached now (fleet mode:
    the database away).  The hooks in force stay; the API answers 503."""


class HooksConflict(Exception):
    """Nothing was written: the hooks were changed by another writer since they were
    last read (``reason`` "changed"), or are being changed right now ("unstable").
    The API answers 409; the client retries."""

    def __init__(self, reason: str, message: str | None = None):
        if reason not in CONFLICT_REASONS:
            raise ValueError("HooksConflict.reason: one of %s, not %r"
                             % (", ".join(CONFLICT_REASONS), reason))
        self.reason = reason
        super().__init__(message or "the hooks %s" % (
            "were changed since they were last read" if reason == "changed"
            else "are being changed"))


class HookRepository(Protocol):
    """The hooks: in force now, changed by locked updates (module docstring)."""

    @property
    def location(self) -> str:
        """Where the hooks are, for log lines (a file, a database without password)."""
        ...

    @property
    def hooks(self) -> list[Hook]:
        """The hooks in force, in order (a copy)."""
        ...

    @property
    def index(self) -> HookIndex:
        """The matching index of the hooks in force."""
        ...

    @property
    def generation(self) -> int:
        """Grows on every load, reload or write that put hooks in force."""
        ...

    def load(self) -> list[Hook]:
        """Read the hooks at start (none stored yet: an empty set, created);
        ConfigError if what is stored does not validate."""
        ...

    def update(self, change: Change[T], *, refuse_if_edited: bool = False) -> T:
        """Locked read-modify-write; returns ``change``'s result.  ``change(hooks)``
        runs without blocking; what it raises aborts with nothing written.
        ConfigError if the stored hooks or the new ones do not validate;
        HooksConflict as the module docstring says."""
        ...

    def start_watching(self, interval: float = 1.0,
                       supervisor: Supervisor | None = None) -> None:
        """Follow changes made elsewhere (in the background) until ``stop``."""
        ...

    def stop(self, deadline: Deadline | None = None) -> None:
        """Stop watching and release what the repository holds."""
        ...


class InForceView:
    """The reads both backends answer from what is in force: one frozen value
    (``_in_force``: hooks, index, generation) swapped as one reference, so a
    reader never sees hooks of one generation with the index of another."""

    _in_force: Any

    @property
    def hooks(self) -> list[Hook]:
        return list(self._in_force.hooks)

    @property
    def index(self) -> HookIndex:
        return self._in_force.index

    @property
    def generation(self) -> int:
        """Increments on every successful load, reload or write."""
        return int(self._in_force.generation)

    # -- the watcher greenlet both backends run -----------------------------------
    _group: Any
    _stopping: Any

    def _watch(self, interval: float) -> None:
        raise NotImplementedError

    def _start_watcher(self, interval: float, supervisor: Supervisor | None) -> None:
        if len(self._group):
            return
        self._stopping.clear()
        # restarted: without it changes made elsewhere would silently stop arriving
        (supervisor or Supervisor()).spawn_supervised(
            "hooks watcher", self._watch, interval, how=RESTART, group=self._group)

    def _stop_watcher(self, deadline: Deadline | None) -> None:
        self._stopping.set()
        self._group.join(timeout=deadline_of(deadline, 5.0).left())
        self._group.kill(timeout=KILL_GRACE_SECONDS)
