"""Retry policy and attempt outcomes (pure: no I/O, no clock).

An attempt never raises for an HTTP or network failure: it returns an
``Outcome``.  Whether to retry, and after how long, are pure functions of the
outcome and the policy, so they are tested apart from any timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eslhook.config import DeliveryConfig

BODY_EXCERPT_BYTES = 2048

# Outcome reasons
SUCCESS = "success"
TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection refused"
CONNECTION_ERROR = "connection error"
BAD_RESPONSE_CODE = "bad response code"
INVALID_REQUEST = "invalid request"     # the hook's URL/headers cannot be sent at all

# The receiver told us the request itself is wrong or the hook is gone:
# sending it again cannot help.
FINAL_STATUS_CODES = frozenset({400, 401, 403, 404, 410})
RETRY_AFTER_STATUS_CODES = frozenset({429, 503})


@dataclass(frozen=True)
class Outcome:
    status: int | None                  # HTTP status, None when no response arrived
    reason: str                         # one of the reasons above
    body_excerpt: bytes = b""           # first BODY_EXCERPT_BYTES of the response body
    duration_seconds: float = 0.0
    retry_after: float | None = None    # Retry-After (seconds form), when the response had one
    error: str | None = None            # network/client error text, for logs

    def __post_init__(self):
        if len(self.body_excerpt) > BODY_EXCERPT_BYTES:
            object.__setattr__(self, "body_excerpt", self.body_excerpt[:BODY_EXCERPT_BYTES])


@dataclass(frozen=True)
class RetryPolicy:
    backoff_seconds: tuple[float, ...] = DeliveryConfig.retry_backoff_seconds
    jitter: float = 0.1                 # delay varies by +-jitter of itself

    def __post_init__(self):
        object.__setattr__(self, "backoff_seconds", tuple(self.backoff_seconds))
        if not self.backoff_seconds:
            raise ValueError("RetryPolicy.backoff_seconds: must hold at least one delay")
        for index, delay in enumerate(self.backoff_seconds):
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                    or not math.isfinite(delay) or delay < 0:
                raise ValueError("RetryPolicy.backoff_seconds[%d]: must be a finite number "
                                 ">= 0, got %r" % (index, delay))
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) \
                or not 0 <= self.jitter < 1:
            raise ValueError("RetryPolicy.jitter: must be a number in [0, 1), got %r"
                             % (self.jitter,))

    @classmethod
    def from_config(cls, config: DeliveryConfig, jitter: float = 0.1) -> "RetryPolicy":
        return cls(backoff_seconds=config.retry_backoff_seconds, jitter=jitter)

    @property
    def max_delay(self) -> float:
        return max(self.backoff_seconds)


def is_success(outcome: Outcome) -> bool:
    return outcome.status is not None and 200 <= outcome.status < 300


def should_retry(outcome: Outcome) -> bool:
    """Network failures, timeouts and any non-2xx except the final codes are retried."""
    if is_success(outcome) or outcome.reason == INVALID_REQUEST:
        return False
    if outcome.status is None:
        return True
    return outcome.status not in FINAL_STATUS_CODES


def retry_delay(policy: RetryPolicy, attempt_number: int, outcome: Outcome,
                rand: float) -> float:
    """Seconds to wait before the next try after attempt ``attempt_number`` (1 = first try)
    failed.  ``rand`` in [0, 1) picks the jitter.  A Retry-After on 429/503 wins over the
    schedule, clamped to the schedule's longest delay."""
    if attempt_number < 1:
        raise ValueError("attempt_number: must be >= 1, got %r" % (attempt_number,))
    if outcome.status in RETRY_AFTER_STATUS_CODES and outcome.retry_after is not None:
        return min(max(outcome.retry_after, 0.0), policy.max_delay)
    schedule = policy.backoff_seconds
    base = schedule[min(attempt_number - 1, len(schedule) - 1)]
    return max(0.0, base * (1.0 + policy.jitter * (2.0 * rand - 1.0)))


def parse_retry_after(value: str | None) -> float | None:
    """The seconds form of Retry-After (``"120"``); None for absent or other forms."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        return None
    return float(text)
