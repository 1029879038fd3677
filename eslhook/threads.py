"""Blocking work (disk, SQLite) off the hub, in gevent's threadpool."""

from __future__ import annotations

from typing import Callable, TypeVar

import gevent

T = TypeVar("T")


def in_threadpool(function: Callable[..., T], *args) -> T:
    """Run ``function(*args)`` in the threadpool and wait for it.

    When the waiting greenlet is killed (a stopping queue kills its pruner, a
    shutdown kills a writer), the thread goes on regardless: keep waiting for it
    before the exception goes up, so the caller's lock is not released while a
    thread still uses what it guards.  Closing the spool's SQLite connection
    under such a thread crashed the process (a segfault; tests/test_spool.py).

    An exception of ``function`` is raised here, in the caller, and nowhere else:
    gevent's hub would print every exception leaving a threadpool function with its
    traceback (a full disk failing each commit filled the log with them).
    """
    result = gevent.get_hub().threadpool.spawn(_capturing, function, args)
    try:
        outcome = result.get()
    except BaseException:
        result.wait()
        raise
    if isinstance(outcome, Exception):
        raise outcome
    assert outcome is not None      # a blocking get() without timeout has a value
    return outcome[0]


def _capturing(function: Callable[..., T], args: tuple) -> tuple[T] | Exception:
    """The result in a 1-tuple (it may itself be None or an exception), or what
    ``function`` raised."""
    try:
        return (function(*args),)
    except Exception as exc:    # handed to the caller, with its traceback
        return exc
