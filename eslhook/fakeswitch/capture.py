"""Load capture files (``.esl``): the raw bytes a client socket received.

A capture starts with handshake frames (``auth/request``, command replies),
then event frames, and may end with a ``text/disconnect-notice``.  Reply
frames are skipped; events are kept byte for byte (their body, in the
format recorded); a disconnect notice is kept so the replay can send it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from eslhook.source.framing import Frame, FrameReader, ProtocolError

from eslhook.source.parsing import parse_event

log = logging.getLogger(__name__)

_EVENT_TYPES = {"text/event-plain": "plain", "text/event-json": "json"}
_SKIPPED_TYPES = {"auth/request", "command/reply", "api/response", "log/data"}


class CaptureError(Exception):
    """A capture file cannot be replayed; the message names the file."""


@dataclass(frozen=True)
class CapturedEvent:
    fmt: str            # "plain" or "json": the format the bytes are in
    body: bytes         # the event body exactly as recorded
    name: str           # Event-Name
    subclass: str       # Event-Subclass ("" when none)
    unique_id: str      # Unique-ID ("" when none)
    core_uuid: str      # Core-UUID ("" when none)
    timestamp_us: int | None  # Event-Date-Timestamp
    headers: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Capture:
    path: str
    events: tuple[CapturedEvent, ...]
    disconnect_notice: bytes | None  # whole frame, when the capture ends with one

    @property
    def core_uuid(self) -> str:
        return next((e.core_uuid for e in self.events if e.core_uuid), "")


def _captured_event(frame: Frame, fmt: str, where: str) -> CapturedEvent:
    try:
        headers = dict(parse_event(frame) or {})
    except ValueError as exc:
        raise CaptureError("%s: %s" % (where, exc)) from None
    stamp = headers.get("Event-Date-Timestamp", "")
    return CapturedEvent(
        fmt=fmt, body=frame.body, name=headers.get("Event-Name", ""),
        subclass=headers.get("Event-Subclass", ""),
        unique_id=headers.get("Unique-ID", ""),
        core_uuid=headers.get("Core-UUID", ""),
        timestamp_us=int(stamp) if stamp.isdigit() else None,
        headers=headers)


def _disconnect_frame(frame: Frame) -> bytes:
    return (b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n"
            % len(frame.body)) + frame.body


def parse_capture(data: bytes, path: str = "<bytes>") -> Capture:
    """Events (and a trailing disconnect notice) of capture bytes."""
    reader = FrameReader()
    reader.feed(data)
    events: list[CapturedEvent] = []
    notice: bytes | None = None
    try:
        for index, frame in enumerate(reader.frames()):
            ctype = frame.content_type
            where = "%s: frame %d" % (path, index + 1)
            if notice is not None:
                raise CaptureError("%s: %s after the disconnect notice" % (where, ctype))
            if ctype in _EVENT_TYPES:
                events.append(_captured_event(frame, _EVENT_TYPES[ctype], where))
            elif ctype == "text/disconnect-notice":
                notice = _disconnect_frame(frame)
            elif ctype not in _SKIPPED_TYPES:
                raise CaptureError("%s: unexpected Content-Type %r" % (where, ctype))
    except ProtocolError as exc:
        raise CaptureError("%s: not an ESL capture: %s" % (path, exc)) from None
    if reader.buffered:
        log.warning("%s: %d trailing bytes (a cut frame) ignored", path, reader.buffered)
    if not events and notice is None:
        raise CaptureError("%s: no events in capture" % path)
    return Capture(path=path, events=tuple(events), disconnect_notice=notice)


def load_capture(path: str | Path) -> Capture:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CaptureError("%s: cannot read capture: %s" % (path, exc.strerror)) from None
    return parse_capture(data, str(path))
