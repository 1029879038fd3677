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
    """
    result = gevent.get_hub().threadpool.spawn(function, *args)
    try:
        return result.get()
    except BaseException:
        result.wait()
        raise
