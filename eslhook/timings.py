"""The internal intervals eslhook waits on, as one value the Bridge hands to its parts.

None of these is a configuration setting: production always runs with the
defaults (each one's reason is beside the constant it comes from).  They are
gathered here so a test can build a Bridge that polls, retries and notices in
milliseconds instead of seconds, by injection rather than by patching module
constants.  Intervals that operators tune (the delivery retry schedule,
reconciliation, the liveness timeout) stay in the configuration file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .calls import ERROR_REPORT_INTERVAL_SECONDS as CALLS_ERROR_REPORT_SECONDS
from .delivery.spool import COMMIT_RETRY_SECONDS, ERROR_REPORT_INTERVAL_SECONDS
from .hooks.store import EMPTY_SETTLE_SECONDS, POLL_SECONDS, SETTLE_SECONDS
from .source.switch import ReconnectPolicy


@dataclass(frozen=True)
class Timings:
    reconnect: ReconnectPolicy = ReconnectPolicy()   # between connection attempts
    liveness_check_seconds: float = 1.0      # a source looks at its connection this often
    malformed_log_seconds: float = 10.0      # skipped events: one log line per interval
    hooks_poll_seconds: float = POLL_SECONDS                  # hooks.yaml looked at this often
    hooks_settle_seconds: float = SETTLE_SECONDS              # between the reads of a stable read
    hooks_empty_settle_seconds: float = EMPTY_SETTLE_SECONDS  # "no hooks" must last this long
    open_calls_flush_seconds: float = 1.0    # open-calls.json written at most this often
    open_calls_error_report_seconds: float = CALLS_ERROR_REPORT_SECONDS
    spool_commit_retry_seconds: float = COMMIT_RETRY_SECONDS  # failing commits tried again
    spool_error_report_seconds: float = ERROR_REPORT_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "reconnect" and not (isinstance(value, (int, float))
                                              and math.isfinite(value) and value > 0):
                raise ValueError("Timings.%s: must be a positive number of seconds (got %r)"
                                 % (f.name, value))
        if not isinstance(self.reconnect, ReconnectPolicy):
            raise ValueError("Timings.reconnect: must be a ReconnectPolicy (got %r)"
                             % (self.reconnect,))
