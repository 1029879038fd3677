"""Rewrite replayed event bodies so looped calls look new (pure).

Iteration 0 of a replay is sent as recorded.  Iteration k > 0 rewrites, in
the body bytes of either format (these values are never percent-encoded,
except the two dates which are re-encoded):
- every lower-case UUID except the capture's Core-UUID -> uuid5(orig, k),
  so Unique-ID, Channel-Call-UUID, Other-Leg-Unique-ID, variable_uuid,
  variable_call_uuid, Job-UUID, bridge/loopback partner ids... all stay
  consistent with each other inside an iteration and differ across them;
- Event-Sequence += k * sequence span of the capture;
- Event-Date-Timestamp, nonzero Caller-*-Time and variable_*_uepoch (us),
  variable_*_epoch (s), Event-Date-Local / Event-Date-GMT += k * time span.
The Core-UUID is replaced separately (``replace_core_uuid``) when the fake
switch's Core-UUID differs from the recorded one (option or restart()).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

from eslhook.fakeswitch.events import url_encode

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LOOP_NAMESPACE = uuid.UUID("5d0c4f8e-3f7b-4a55-9d0e-6c1b2a3f4e5d")
_NUMERIC_NAMES = (rb"Event-Sequence|Event-Date-Timestamp|Caller-[A-Za-z-]+-Time"
                  rb"|variable_[A-Za-z0-9_]+_u?epoch")
_NUMERIC = {
    "plain": re.compile(rb"^(" + _NUMERIC_NAMES + rb"): (\d+)$", re.M),
    "json": re.compile(rb'"(' + _NUMERIC_NAMES + rb')":"(\d+)"'),
}
_DATES = {
    "plain": re.compile(rb"^(Event-Date-Local|Event-Date-GMT): ([^\n]*)$", re.M),
    "json": re.compile(rb'"(Event-Date-Local|Event-Date-GMT)":"([^"]*)"'),
}
_DATE_FORMATS = {b"Event-Date-Local": "%Y-%m-%d %H:%M:%S",
                 b"Event-Date-GMT": "%a, %d %b %Y %H:%M:%S GMT"}


@dataclass(frozen=True)
class LoopShift:
    """How far one loop iteration moves sequence numbers and clocks."""
    sequence_span: int
    time_span_us: int

    def __post_init__(self):
        if self.sequence_span < 0:
            raise ValueError("sequence_span must be >= 0")
        if self.time_span_us < 0:
            raise ValueError("time_span_us must be >= 0")


def loop_shift(sequences: list[int], timestamps_us: list[int]) -> LoopShift:
    seq_span = (max(sequences) - min(sequences) + 1) if sequences else 0
    # One second of quiet between iterations, as if the next calls came later.
    time_span = (max(timestamps_us) - min(timestamps_us) + 1_000_000) if timestamps_us else 0
    return LoopShift(seq_span, time_span)


def loop_uuid(original: str, iteration: int) -> str:
    return str(uuid.uuid5(_LOOP_NAMESPACE, "%s#%d" % (original, iteration)))


def _shift_date(name: bytes, value: bytes, fmt: str, delta_us: int) -> bytes:
    text = unquote(value.decode("ascii", "replace")) if fmt == "plain" else value.decode()
    pattern = _DATE_FORMATS[name]
    try:
        moved = datetime.strptime(text, pattern) + timedelta(microseconds=delta_us)
    except ValueError:
        return value  # not the date layout we know: leave it
    out = moved.strftime(pattern)
    return (url_encode(out) if fmt == "plain" else out).encode("ascii")


def rewrite_for_iteration(body: bytes, fmt: str, iteration: int, shift: LoopShift,
                          core_uuid: str) -> bytes:
    """The body as iteration ``iteration`` of a loop sends it."""
    if iteration == 0:
        return body
    core = core_uuid.encode("ascii")

    def new_uuid(match: re.Match) -> bytes:
        old = match.group(0)
        return old if old == core else loop_uuid(old.decode(), iteration).encode()

    def new_number(match: re.Match) -> bytes:
        name, value = match.group(1), int(match.group(2))
        if name == b"Event-Sequence":
            value += iteration * shift.sequence_span
        elif value and name.endswith(b"_epoch"):
            value += iteration * shift.time_span_us // 1_000_000
        elif value:
            value += iteration * shift.time_span_us
        return match.group(0)[:match.start(2) - match.start(0)] + b"%d" % value + (
            match.group(0)[match.end(2) - match.start(0):])

    def new_date(match: re.Match) -> bytes:
        moved = _shift_date(match.group(1), match.group(2), fmt, iteration * shift.time_span_us)
        whole = match.group(0)
        return whole[:match.start(2) - match.start(0)] + moved + whole[match.end(2) - match.start(0):]

    body = _UUID.sub(new_uuid, body)
    body = _NUMERIC[fmt].sub(new_number, body)
    return _DATES[fmt].sub(new_date, body)


def replace_core_uuid(body: bytes, recorded: str, current: str) -> bytes:
    if not recorded or recorded == current:
        return body
    return body.replace(recorded.encode("ascii"), current.encode("ascii"))
