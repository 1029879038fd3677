"""The two narrow ports through which the REST API, ``/healthz`` and ``/metrics``
reach the running bridge, instead of the whole ``Bridge``:

- ``StatusSnapshot``: a frozen copy of everything ``/healthz`` and ``/metrics``
  report, taken in one go by ``Bridge.status()`` (eslhook/service.py).
  ``health.health`` and ``metrics.metric_families`` are pure functions of it,
  so they are tested from hand-built snapshots, without a running bridge.
- ``DeliveryControl``: what the API asks of delivery (resume a hook enabled
  again, replay a window, page the attempt log).  ``DeliveryQueue`` satisfies
  it structurally, as it is: nothing registers, nothing adapts.

This module imports neither the service nor the API, so the API does not import
the service (which starts the API: that was a cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .delivery.rows import AttemptFilter
from .hooks.model import Hook
from .payload import Payload
from .supervise import SupervisionStatus

ATTEMPT_RESULTS = ("success", "failure")
# Seconds.  Loopback receivers answer in ~1 ms; a slow receiver hits the 10 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


@dataclass(frozen=True)
class SwitchStatus:
    """One switch's connection, as ``SwitchSource.state`` has it."""

    name: str
    connected: bool = False
    since: float = 0.0                 # unix time the current state began
    last_error: str | None = None      # why it is not connected (never a password)
    reconnects: int = 0
    auth_failures: int = 0
    malformed: int = 0                 # events skipped: unreadable or unmappable
    protocol_errors: int = 0           # connections dropped: frames not framable
    # events read, by FreeSWITCH event name (None: a frame without one)
    events_by_name: Mapping[str | None, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestStatus:
    """What became of the events read (``Bridge.stats``)."""

    mapped: int = 0        # events that became a payload
    unassigned: int = 0    # payloads no account claimed: delivered nowhere
    unmatched: int = 0     # payloads of an account with no hook for them
    dropped: int = 0       # (hook, payload) pairs delivery had no room for


@dataclass(frozen=True)
class LatencyCounts:
    """One attempt-latency histogram: counts per bucket (not cumulated; the last
    one is +Inf) and the sum of the observations, in seconds."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    total: float = 0.0

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError("LatencyCounts.counts: one per bound and one for +Inf")

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, int]]:
        """Prometheus' cumulative buckets: [(le, count up to it)...], +Inf last."""
        out, running = [], 0
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass(frozen=True)
class DeliveryStatus:
    """The delivery queue's counters (``DeliveryQueue.stats``) and attempt latency."""

    pending: int = 0          # accepted, not yet delivered or given up (memory or spool)
    resident: int = 0         # of them held in memory: the ingest buffer
    buffer_capacity: int = 0  # delivery.buffer_size: beyond it, deliveries are dropped
    in_flight: int = 0        # HTTP attempts running now
    delivered: int = 0
    retried: int = 0
    given_up: int = 0
    invalid: int = 0          # hook and payload could not make a request
    expired: int = 0          # pending older than max_age_seconds, dropped
    hooks_disabled: int = 0   # hooks delivery disabled
    not_durable: int = 0      # pending the spool could not commit: memory only
    unrecorded: int = 0       # finished deliveries / attempt rows never recorded
    spool_error: str | None = None    # why spool commits fail now; None while they work
    fleet: bool = False       # storage postgresql: the database decides who delivers
    duplicates: int = 0       # fleet: deliveries another instance enqueued first
    lanes_lost: int = 0       # fleet: lanes taken over from this live instance
    leases_held: int = 0      # fleet: lanes leased here at the last renewal
    # by attempt result ("success", "failure")
    latency: Mapping[str, LatencyCounts] = field(
        default_factory=lambda: {result: LatencyCounts() for result in ATTEMPT_RESULTS})


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything ``/healthz`` and ``/metrics`` report, read at one moment."""

    switches: tuple[SwitchStatus, ...] = ()
    ingest: IngestStatus = IngestStatus()
    delivery: DeliveryStatus = DeliveryStatus()
    hooks_enabled: int = 0
    hooks_disabled: int = 0
    open_calls_error: str | None = None   # why open-calls.json cannot be written
    supervision: SupervisionStatus = SupervisionStatus()   # dead critical greenlets...


StatusSource = Callable[[], StatusSnapshot]


class AttemptsPage(Protocol):
    """One page of the attempt log (``delivery.spool.AttemptPage``)."""

    @property
    def attempts(self) -> list[dict]: ...            # newest first

    @property
    def next_start_key(self) -> str | None: ...      # None: the last page


class DeliveryControl(Protocol):
    """What the API asks of the running delivery queue."""

    def resume_hook(self, hook_id: str) -> int:
        """The hook is enabled again: send what is held for it now.  Returns the
        number of calls (lanes) resumed."""
        ...

    def replay(self, hook: Hook, since: float, until: float) -> int:
        """Queue again the hook's finished deliveries accepted in [since, until)
        (unix seconds).  Returns how many were queued."""
        ...

    def attempts(self, account_id: str, hook_id: str | None = None, *, page_size: int = 50,
                 start_key: str | None = None,
                 only: AttemptFilter = AttemptFilter()) -> AttemptsPage:
        """The attempt log of an account (or one of its hooks), newest first, the
        records ``only`` lets through; ValueError for a bad page_size or start_key."""
        ...

    def resend(self, hook: Hook, attempt_id: int) -> str | None:
        """Queue again the delivery of the hook's attempt ``attempt_id``; its
        webhook-id, or None if that attempt is not (or no longer) in the log."""
        ...

    def test(self, hook: Hook, payload: Payload) -> bool:
        """Send ``payload`` to the hook once, as a test; False if refused (stopped,
        buffer full)."""
        ...
