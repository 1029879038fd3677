"""Logging setup: one line per happening, as text for people or JSON for log shippers.

``setup_logging(level, fmt)`` configures the root logger once (``eslhook
--log-level info --log-format json``).  A JSON line holds ``ts`` (UTC, ISO
8601 with milliseconds), ``level``, ``logger``, ``message``, any ``extra=``
fields the call passed (``switch``, ``hook_id``, ``call_id``...), and
``exception`` when there is one.  Secrets are kept out where they are born
(configs print ``<hidden>``, reasons never quote a password), not filtered
here: a filter cannot know every secret's spelling.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Callable, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on an odd ``extra`` value."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _utc_iso(created: float) -> str:
    seconds = int(created)
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)),
                         int((created - seconds) * 1000))


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError("log format: must be one of %s, got %r" % (", ".join(FORMATS), fmt))


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's records at ``level`` and above to ``stream`` (stderr)."""
    if level.lower() not in LEVELS:
        raise ValueError("log level: must be one of %s, got %r" % (", ".join(LEVELS), level))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


class OncePerInterval:
    """Whether a repeating problem is to be logged now: at most once per
    ``seconds`` (a database away for minutes writes a line per interval, not per
    retry); ``clear()`` once it is over, so the next problem is logged at once."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True

    def clear(self) -> None:
        self._last = None
