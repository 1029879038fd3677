"""Supervision and lifecycle: one way to run a greenlet, one deadline to stop by.

Every greenlet eslhook runs is spawned by ``Supervisor.spawn_supervised``,
which says what its death means (``Supervision``):

- ``CRITICAL``: the process is broken without it (the spool flusher: nothing
  would be durable any more).  Its death is logged once with its traceback,
  named in ``/healthz`` (503) and ``/metrics``, and sets ``Supervisor.failed``:
  ``Bridge.run_until_signalled`` wakes up, shuts down, and ``eslhook run``
  exits with EXIT_CRITICAL (4), so systemd restarts it.
- ``RESTART``: a loop worth running again (an ESL source, the delivery workers,
  the hooks watcher...).  Restarted after a bounded backoff and counted; after
  ``max_quick_crashes`` crashes in a row, each within ``healthy_seconds`` of its
  start, it is given up and then counts as a dead critical one: a loop that
  only crashes is a bug that restarting hides.
- ``TASK``: a one-off greenlet (a lane read back from the spool, an API
  request): its crash is logged with its traceback and counted, nothing more.

A greenlet that returns, or is killed (``GreenletExit``), has ended, not died.
What follows a crash is the pure ``after_crash``; timing lives in the shell.

``Deadline`` is one absolute ``time.monotonic()`` instant shared by a whole
shutdown: each component's ``stop(deadline)`` spends what is left of it, so
per-component waits no longer add up.  The shape follows gunicorn's gevent
worker and locust's runners: signal handlers only set a flag; shutdown stops
intake, drains until the one deadline, then kills.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group

log = logging.getLogger(__name__)

CRITICAL_KIND, RESTART_KIND, TASK_KIND = "critical", "restart", "task"
RESTART_ACTION, DEAD_ACTION, LOGGED_ACTION = "restart", "dead", "logged"
# Beyond the deadline only killing is left: greenlets that ignore GreenletExit this long
# are abandoned (never seen: they all die at their next switch).
KILL_GRACE_SECONDS = 0.5


@dataclass(frozen=True)
class Deadline:
    """One absolute instant (``time.monotonic()``) a whole shutdown shares."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        if seconds < 0:
            raise ValueError("Deadline.after: seconds must be >= 0")
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds until the deadline, 0 once it passed."""
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at


def deadline_of(deadline: Deadline | None, seconds: float) -> Deadline:
    """``deadline``, or one ``seconds`` from now for a component stopped on its own."""
    return deadline if deadline is not None else Deadline.after(seconds)


@dataclass(frozen=True)
class Supervision:
    """What a greenlet's death means, and for RESTART the backoff."""

    kind: str
    first_delay: float = 0.1       # seconds before the first restart; doubled per crash
    max_delay: float = 10.0
    healthy_seconds: float = 30.0  # a crash after running this long starts a new count
    max_quick_crashes: int = 10

    def __post_init__(self) -> None:
        if self.kind not in (CRITICAL_KIND, RESTART_KIND, TASK_KIND):
            raise ValueError("Supervision.kind: one of critical, restart, task")
        if not 0 <= self.first_delay <= self.max_delay:
            raise ValueError("Supervision.first_delay: must be in [0, max_delay]")
        if self.healthy_seconds <= 0 or self.max_quick_crashes < 1:
            raise ValueError("Supervision: healthy_seconds > 0 and max_quick_crashes >= 1")


CRITICAL = Supervision(CRITICAL_KIND)
RESTART = Supervision(RESTART_KIND)
TASK = Supervision(TASK_KIND)


@dataclass(frozen=True)
class AfterCrash:
    """The decision: ``action`` (restart, dead, logged), the delay, the crash streak."""

    action: str
    delay: float = 0.0
    streak: int = 0


def after_crash(how: Supervision, streak: int, ran_seconds: float) -> AfterCrash:
    """What follows a crash after ``ran_seconds`` of running, ``streak`` quick crashes
    in a row having come before it."""
    if how.kind == TASK_KIND:
        return AfterCrash(LOGGED_ACTION)
    if how.kind == CRITICAL_KIND:
        return AfterCrash(DEAD_ACTION)
    streak = streak + 1 if ran_seconds < how.healthy_seconds else 1
    if streak > how.max_quick_crashes:
        return AfterCrash(DEAD_ACTION, streak=streak)
    return AfterCrash(RESTART_ACTION, min(how.max_delay, how.first_delay * 2 ** (streak - 1)),
                      streak)


class CriticalGreenletDied(RuntimeError):
    """Raised once stopped by ``Bridge.run_until_signalled``: ``eslhook run`` exits 4."""

    def __init__(self, dead: tuple[tuple[str, str], ...]):
        super().__init__("critical greenlet died: " + "; ".join(
            "%s (%s)" % pair for pair in dead))
        self.dead = dead


@dataclass(frozen=True)
class SupervisionStatus:
    """For /healthz and /metrics: deaths, restarts and crashes, by greenlet name."""

    dead: tuple[tuple[str, str], ...] = ()        # (name, why): critical, or given up
    restarts: tuple[tuple[str, int], ...] = ()
    crashes: tuple[tuple[str, int], ...] = ()


class Supervised:
    """One supervised greenlet, across its restarts."""

    def __init__(self, supervisor: Supervisor, name: str, how: Supervision,
                 run: Callable[[], Any], group: Group | None):
        self.supervisor, self.name, self.how = supervisor, name, how
        self._run, self._group = run, group
        self._streak = 0
        self._started = 0.0
        self.greenlet: gevent.Greenlet = self._spawn(0.0)

    def _spawn(self, delay: float) -> gevent.Greenlet:
        greenlet = gevent.Greenlet(self._timed_run)
        greenlet.link_exception(self._crashed)
        if self._group is not None:
            self._group.add(greenlet)
        if delay > 0:
            greenlet.start_later(delay)
        else:
            greenlet.start()
        return greenlet

    def _timed_run(self) -> Any:
        self._started = time.monotonic()
        return self._run()

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        # runs in the hub: must not block (spawning does not)
        decision = after_crash(self.how, self._streak, time.monotonic() - self._started)
        self._streak = decision.streak
        self.supervisor._crashed(self, greenlet, decision)
        if decision.action == RESTART_ACTION and not self.supervisor.closed:
            self.greenlet = self._spawn(decision.delay)

    def kill(self, deadline: Deadline | None = None) -> None:
        self.greenlet.kill(block=True, timeout=(deadline.left() if deadline else 0)
                           + KILL_GRACE_SECONDS)


class Supervisor:
    """Spawns and watches greenlets; one per Bridge (a component started alone makes
    its own).  ``failed`` is set at the first death of a critical greenlet."""

    def __init__(self) -> None:
        self.failed = Event()
        self.closed = False
        self._dead: dict[str, str] = {}
        self._restarts: Counter[str] = Counter()
        self._crashes: Counter[str] = Counter()

    def spawn_supervised(self, name: str, function: Callable[..., Any], *args: Any,
                         how: Supervision, group: Group | None = None,
                         **kwargs: Any) -> Supervised:
        """Run ``function(*args, **kwargs)`` in a greenlet named ``name`` (a /metrics
        label: a fixed word, or a switch name), supervised as ``how`` says; every
        incarnation joins ``group`` (so the owner's group join/kill covers restarts)."""
        return Supervised(self, name, how, lambda: function(*args, **kwargs), group)

    def close(self) -> None:
        """Shutting down: no more restarts (deaths are still recorded)."""
        self.closed = True

    def _crashed(self, supervised: Supervised, greenlet: gevent.Greenlet,
                 decision: AfterCrash) -> None:
        name = supervised.name
        self._crashes[name] += 1
        if decision.action == RESTART_ACTION:
            self._restarts[name] += 1
            log.error("greenlet %r crashed (%d in a row), restarting in %.2fs: %r", name,
                      decision.streak, decision.delay, greenlet.exception,
                      exc_info=greenlet.exc_info)
        elif decision.action == LOGGED_ACTION:
            log.error("%s failed: %r", name, greenlet.exception, exc_info=greenlet.exc_info)
        else:
            why = repr(greenlet.exception)[:200]
            if decision.streak:
                why = "gave up after %d quick crashes: %s" % (decision.streak - 1, why)
            self._dead.setdefault(name, why)
            log.critical("critical greenlet %r died, eslhook cannot go on: %s", name, why,
                         exc_info=greenlet.exc_info)
            self.failed.set()

    def status(self) -> SupervisionStatus:
        return SupervisionStatus(tuple(self._dead.items()), tuple(sorted(self._restarts.items())),
                                 tuple(sorted(self._crashes.items())))
