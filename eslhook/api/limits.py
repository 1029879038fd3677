"""Per-client limits of the API listener: who a client is, and pure decisions.

- ``client_key``: the address a limit counts against (an IPv6 client by its
  /64, since one host is handed a whole /64).
- ``TokenBucket``: a value object, as urllib3's ``Retry``: each decision
  returns a new bucket, so the rule is tested without clocks or sockets.
- ``FailureThrottle``: failed authentications per client, in token buckets.
- ``ConnectionCounts``: open connections per client, against a cap.
- ``SummaryLog``: one log line per interval for a flood, never one per event.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable

import gevent

log = logging.getLogger(__name__)

# clients whose buckets are remembered; beyond, the least recently failing go
MAX_TRACKED_CLIENTS = 100_000
SUMMARY_CLIENTS = 10      # a summary names this many clients, then "and N more"


def client_key(address: str | None) -> str:
    """The key per-client limits count under: the IPv4 address (also when it
    comes as ::ffff:a.b.c.d), the /64 of an IPv6 address, else the text."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class TokenBucket:
    """``tokens`` left at time ``updated``; refills ``rate`` per second up to ``burst``."""
    tokens: float
    updated: float

    @classmethod
    def full(cls, burst: float, now: float) -> "TokenBucket":
        return cls(float(burst), now)

    def level(self, now: float, rate: float, burst: float) -> float:
        return min(float(burst), self.tokens + max(0.0, now - self.updated) * rate)

    def take(self, now: float, rate: float, burst: float) -> "TokenBucket":
        """The bucket after one event (never below zero)."""
        return TokenBucket(max(0.0, self.level(now, rate, burst) - 1.0), now)

    def empty(self, now: float, rate: float, burst: float) -> bool:
        return self.level(now, rate, burst) < 1.0

    def wait(self, now: float, rate: float, burst: float) -> float:
        """Seconds until one more event fits (0: it fits now)."""
        missing = 1.0 - self.level(now, rate, burst)
        return 0.0 if missing <= 0 else missing / rate


class SummaryLog:
    """Counts events per client and logs one line per ``interval`` that had any.

    The first event of a quiet period schedules the line ``interval`` later, so
    a flood of N events costs one log line, and nothing runs while all is quiet.
    """

    def __init__(self, what: str, interval: float, logger: logging.Logger = log,
                 level: int = logging.WARNING):
        self.what, self.interval, self.logger, self.level = what, interval, logger, level
        self._counts: Counter[str] = Counter()
        self._flusher: gevent.Greenlet | None = None

    def count(self, client: str, n: int = 1) -> None:
        self._counts[client] += n
        if self._flusher is None:
            self._flusher = gevent.spawn_later(self.interval, self.flush)

    def flush(self) -> None:
        counts, self._counts, self._flusher = self._counts, Counter(), None
        if counts:
            self.logger.log(self.level, "%s in the last %g s: %s", self.what, self.interval,
                            summary_text(counts))

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.flush()


def summary_text(counts: Counter) -> str:
    """"127.0.0.1: 980, 10.0.0.7: 3 (2 clients, 983 in all)": the busiest first."""
    top = counts.most_common(SUMMARY_CLIENTS)
    text = ", ".join("%s: %d" % item for item in top)
    more = len(counts) - len(top)
    if more:
        text += ", and %d more" % more
    return "%s (%d client%s, %d in all)" % (text, len(counts), "s" * (len(counts) != 1),
                                            sum(counts.values()))


class FailureThrottle:
    """Failed authentications per client, as token buckets.

    A client may fail ``burst`` times at once, then ``per_minute`` times a
    minute; while its bucket is empty ``retry_after`` says how long it waits.
    Decisions are O(1) and never sleep: other clients are not slowed.
    """

    def __init__(self, burst: int, per_minute: float, summary: SummaryLog | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.burst, self.rate = burst, per_minute / 60.0
        self.summary = summary
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """0 if the client may try a token now, else whole seconds to wait."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0
        now = self.clock()
        if not bucket.empty(now, self.rate, self.burst):
            return 0
        if self.summary is not None:
            self.summary.count(client)
        return max(1, math.ceil(bucket.wait(now, self.rate, self.burst)))

    def failed(self, client: str) -> None:
        now = self.clock()
        bucket = self._buckets.pop(client, None) or TokenBucket.full(self.burst, now)
        self._buckets[client] = bucket.take(now, self.rate, self.burst)   # newest last
        if self.summary is not None:
            self.summary.count(client)
        self._forget_refilled(now)

    def _forget_refilled(self, now: float) -> None:
        """Drop the least recently failing clients whose bucket is full again, and
        the oldest beyond MAX_TRACKED_CLIENTS (memory stays bounded)."""
        while self._buckets:
            client, bucket = next(iter(self._buckets.items()))
            if (len(self._buckets) <= MAX_TRACKED_CLIENTS
                    and bucket.level(now, self.rate, self.burst) < self.burst):
                return
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)


class ConnectionCounts:
    """Open connections per client; ``admit`` refuses one over ``per_client``."""

    def __init__(self, per_client: int):
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    def admit(self, client: str) -> bool:
        if self._open[client] >= self.per_client:   # a Counter's miss inserts nothing
            return False
        self._open[client] += 1
        return True

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    def open(self, client: str | None = None) -> int:
        """Connections open now: of one client, or of all."""
        if client is None:
            return sum(self._open.values())
        return self._open.get(client, 0)
