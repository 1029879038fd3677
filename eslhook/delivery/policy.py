"""Delivery decisions as pure functions of plain data: no I/O, no clock.

An attempt never raises for an HTTP or network failure: it returns an
``Outcome``.  Whether to retry, after how long, whether a host's circuit is
open and whether a hook must be disabled are decided here from the outcome,
the policy and the time the caller passes in, so each is tested apart from
any timing (Svix's worker works the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from eslhook.config import DeliveryConfig
from eslhook.config.model import check, register_rules
from eslhook.hooks.model import Hook

BODY_EXCERPT_BYTES = 2048
RETRY_AFTER_CAP_SECONDS = 3600.0

# Outcome reasons
SUCCESS = "success"
TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection refused"
CONNECTION_ERROR = "connection error"
BAD_RESPONSE_CODE = "bad response code"
INVALID_REQUEST = "invalid request"     # the hook's URL/headers cannot be sent at all
INVALID_PAYLOAD = "invalid payload"     # the payload cannot be encoded
REFUSED = "refused by network policy"   # nothing sent: the host's address is off limits
INTERNAL_ERROR = "internal error"       # a bug in eslhook: the operator's log has the trace

# The receiver told us the request itself is wrong or the hook is gone:
# sending it again cannot help.
FINAL_STATUS_CODES = frozenset({400, 401, 403, 404, 405, 410, 413, 422})
GONE = 410                              # ... and this one disables the hook at once
RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

DISABLED_FOR_FAILURES = "too many failed attempts"
DISABLED_FOR_GONE = "gone (410)"


@dataclass(frozen=True)
class Outcome:
    status: int | None                  # HTTP status, None when no response arrived
    reason: str                         # one of the reasons above
    body_excerpt: bytes = b""           # first BODY_EXCERPT_BYTES of the response body
    duration_seconds: float = 0.0
    retry_after: float | None = None    # Retry-After in seconds, when the response had one
    error: str | None = None            # network/client error text, for logs

    def __post_init__(self) -> None:
        if len(self.body_excerpt) > BODY_EXCERPT_BYTES:
            object.__setattr__(self, "body_excerpt", self.body_excerpt[:BODY_EXCERPT_BYTES])


def _is_delay(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class RetryPolicy:
    schedule_seconds: tuple[float, ...] = DeliveryConfig.retry_schedule_seconds
    jitter: float = DeliveryConfig.jitter           # a delay varies by +-jitter of itself
    retry_after_cap: float = RETRY_AFTER_CAP_SECONDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule_seconds", tuple(self.schedule_seconds))
        # the delivery section's rules (config.schema.json), not a copy of them
        check(self)
        if not _is_delay(self.retry_after_cap):      # not a config key: its own rule
            raise ValueError("RetryPolicy.retry_after_cap: must be a finite number >= 0, "
                             "got %r" % (self.retry_after_cap,))

    @classmethod
    def from_config(cls, config: DeliveryConfig) -> "RetryPolicy":
        return cls(schedule_seconds=config.retry_schedule_seconds, jitter=config.jitter)


def is_success(outcome: Outcome) -> bool:
    return outcome.status is not None and 200 <= outcome.status < 300


_FINAL_REASONS = frozenset({INVALID_REQUEST, INVALID_PAYLOAD, REFUSED, INTERNAL_ERROR})


def should_retry(outcome: Outcome) -> bool:
    """Network failures, timeouts and any non-2xx except the final codes are retried."""
    if is_success(outcome) or outcome.reason in _FINAL_REASONS:
        return False
    if outcome.status is None:
        return True
    return outcome.status not in FINAL_STATUS_CODES


def retry_delay(policy: RetryPolicy, attempt_number: int, outcome: Outcome,
                rand: float) -> float:
    """Seconds to wait before the next try after attempt ``attempt_number`` (1 = first try)
    failed.  ``rand`` in [0, 1) picks the jitter.  A Retry-After on 429/503 wins over the
    schedule, clamped to ``retry_after_cap`` (1 h)."""
    if attempt_number < 1:
        raise ValueError("attempt_number: must be >= 1, got %r" % (attempt_number,))
    if outcome.status in RETRY_AFTER_STATUS_CODES and outcome.retry_after is not None:
        return min(max(outcome.retry_after, 0.0), policy.retry_after_cap)
    schedule = policy.schedule_seconds
    base = schedule[min(attempt_number - 1, len(schedule) - 1)]
    return max(0.0, base * (1.0 + policy.jitter * (2.0 * rand - 1.0)))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds: ``"120"`` or an HTTP date (relative to unix time ``now``);
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


# -- circuit breaking per host ---------------------------------------------------------

@dataclass(frozen=True)
class CircuitPolicy:
    failures_to_open: int = 5        # consecutive failed attempts to a host
    open_seconds: float = 30.0       # then first tries wait in the spool this long

    def __post_init__(self) -> None:
        check(self)         # the delivery section's rules, as for RetryPolicy


# The policies are checked by the delivery section of config.schema.json (plus
# the semantic layer's finiteness rule), under their own field names.
register_rules(RetryPolicy, "/properties/delivery",
               lambda p: {"retry_schedule_seconds": list(p.schedule_seconds), "jitter": p.jitter},
               {"retry_schedule_seconds": "schedule_seconds"})
register_rules(CircuitPolicy, "/properties/delivery",
               lambda p: {"circuit_failures": p.failures_to_open,
                          "circuit_open_seconds": p.open_seconds},
               {"circuit_failures": "failures_to_open", "circuit_open_seconds": "open_seconds"})


@dataclass(frozen=True)
class Circuit:
    """One host's circuit: closed (failures counting up), open until a time, or
    half-open (one probe attempt in flight)."""
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


CLOSED = Circuit()      # values are frozen: every closed circuit can be this one


def circuit_admits(circuit: Circuit, now: float) -> tuple[bool, Circuit]:
    """(may an attempt go now, the circuit after letting it go).  Once open time is
    over, exactly one attempt (the probe) goes; the others wait for its result."""
    if circuit.open_until is None:
        return True, circuit
    if circuit.probing or now < circuit.open_until:
        return False, circuit
    return True, replace(circuit, probing=True)


def circuit_after(circuit: Circuit, policy: CircuitPolicy, succeeded: bool,
                  now: float) -> Circuit:
    """The circuit after an attempt's result: a success closes it; a failure of the probe,
    or the ``failures_to_open``-th in a row, opens it for ``open_seconds``."""
    if succeeded:
        return CLOSED
    failures = circuit.failures + 1
    if circuit.probing or failures >= policy.failures_to_open:
        return Circuit(failures, now + policy.open_seconds, probing=False)
    return Circuit(failures, circuit.open_until, circuit.probing)


def host_failed(outcome: Outcome) -> bool:
    """Does this outcome say the host is in trouble (as opposed to this request)?  A
    refusal is about one hook's policy (and an internal error about eslhook): neither
    may open the circuit for other hooks."""
    if outcome.reason in (REFUSED, INTERNAL_ERROR):
        return False
    return outcome.status is None or outcome.status >= 500 or outcome.status == 429


# -- auto-disable ---------------------------------------------------------------------

@dataclass(frozen=True)
class DisablePolicy:
    after_seconds: float = DeliveryConfig.disable_after_seconds
    after_failures: int = DeliveryConfig.disable_after_failures   # 0: never

    @classmethod
    def from_config(cls, config: DeliveryConfig) -> "DisablePolicy":
        return cls(config.disable_after_seconds, config.disable_after_failures)


@dataclass(frozen=True)
class HookHealth:
    """A hook's failures since its last success: when the streak began and the times of
    the latest ``after_failures`` failures."""
    streak_start: float | None = None
    recent_failures: tuple[float, ...] = ()


HEALTHY = HookHealth()


def health_after(health: HookHealth, policy: DisablePolicy, succeeded: bool,
                 now: float) -> HookHealth:
    if succeeded:
        return HEALTHY
    keep = max(policy.after_failures, 1)
    return HookHealth(health.streak_start if health.streak_start is not None else now,
                      (health.recent_failures + (now,))[-keep:])


def disable_reason(health: HookHealth, policy: DisablePolicy, outcome: Outcome,
                   now: float) -> str | None:
    """Why the hook must be disabled after ``outcome`` (health already updated with it),
    or None.  410 disables at once; otherwise no success for ``after_seconds`` while at
    least ``after_failures`` attempts failed in that time (0 turns this off)."""
    if outcome.status == GONE:
        return DISABLED_FOR_GONE
    if policy.after_failures == 0 or health.streak_start is None:
        return None
    if now - health.streak_start < policy.after_seconds:
        return None
    window_start = now - policy.after_seconds
    failed_in_window = sum(1 for t in health.recent_failures if t >= window_start)
    return DISABLED_FOR_FAILURES if failed_in_window >= policy.after_failures else None


# -- the decision after one attempt ----------------------------------------------------

DELIVER, RETRY, GIVE_UP = "deliver", "retry", "give up"


@dataclass(frozen=True)
class Policies:
    """Everything ``decide`` weighs besides the attempt itself."""
    retry: RetryPolicy = RetryPolicy()
    disable: DisablePolicy = DisablePolicy()

    @classmethod
    def from_config(cls, config: DeliveryConfig,
                    retry: RetryPolicy | None = None) -> "Policies":
        return cls(retry or RetryPolicy.from_config(config), DisablePolicy.from_config(config))


class Attempt(NamedTuple):     # named tuples: built for every attempt, and cheap to build
    """One attempt just made: its number (1 = the first try) and the hook's health before."""
    number: int
    health: HookHealth = HEALTHY


class Decision(NamedTuple):
    action: str                         # DELIVER | RETRY | GIVE_UP
    health: HookHealth                  # the hook's health after this attempt
    retry_at: float | None = None       # unix time of the next try (RETRY only)
    delay: float | None = None          # seconds from now to retry_at (RETRY only)
    retries_left: int = 0               # tries still to come, the next one included
    disable: str | None = None          # why the hook must now be disabled, or None


_DELIVERED = Decision(DELIVER, HEALTHY)


def decide(outcome: Outcome, attempt: Attempt, hook: Hook, policies: Policies, now: float,
           rand: float) -> Decision:
    """What follows ``outcome`` of attempt ``attempt.number`` to ``hook`` (its ``retries``
    is the budget: 1 + retries tries in all).  ``rand`` in [0, 1) picks the jitter.
    An internal error is nobody's failure but eslhook's: it ends the delivery without
    counting against the hook's health."""
    if is_success(outcome):
        return _DELIVERED
    health = attempt.health if outcome.reason == INTERNAL_ERROR else \
        health_after(attempt.health, policies.disable, False, now)
    disable = disable_reason(health, policies.disable, outcome, now) \
        if outcome.reason != INTERNAL_ERROR else None
    if should_retry(outcome) and attempt.number <= hook.retries:
        delay = retry_delay(policies.retry, attempt.number, outcome, rand)
        return Decision(RETRY, health, now + delay, delay,
                        hook.retries - attempt.number + 1, disable)
    return Decision(GIVE_UP, health, disable=disable)
