"""Byte-exact ESL framing (pure, no I/O).

An ESL frame is a block of ``Name: value`` lines ended by a blank line,
followed by exactly ``Content-Length`` *bytes* of body when that header is
present.  Events arrive as the body of a ``text/event-plain`` or
``text/event-json`` frame; ``parsing.py`` reads both into one flat mapping
of event headers so the rest of eslhook never cares which format the switch
spoke.

What real FreeSWITCH 1.10 taught us (see tests/captures/README.md):
- header order varies, ``Content-Length`` counts bytes;
- a plain event may carry a body of its own (inner ``Content-Length``), which
  we keep apart from the headers under ``_body`` (the json format's name);
- headers repeat (``Hangup-Cause`` twice); repeated values were always equal,
  the last one wins in both formats;
- plain values are percent-encoded and must be decoded one value at a time,
  *after* splitting lines, or an encoded newline fabricates headers;
- bytes are not always valid UTF-8: decode leniently, never die;
- json values are strings, or arrays of strings for FreeSWITCH's array
  headers (``switch_event_serialize_json``), which plain sends as
  ``ARRAY::a|:b``.

What cannot be read is one of two things.  An *event* that cannot be read
(bad json, a value of another type) raises ``ValueError``: it is skipped and
the stream goes on.  *Framing* that cannot be resynced (a ``Content-Length``
that is not ASCII digits, no end of a frame header within
``MAX_FRAME_HEADER_BYTES``) or a frame over the cap (``MAX_BODY_BYTES``)
raises ``ProtocolError``, and the connection must go.
"""

from __future__ import annotations

from typing import NamedTuple, cast

from .picking import parse_header_block

MAX_FRAME_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024   # the frame cap (README, "How it is built")
# A body bigger than this that is not all buffered yet is filled in a buffer
# of its own and handed out as is (a bytearray): one copy of it in memory,
# not three.  (Making it bytes would cost a second copy for an instant, and
# orjson reads a bytearray as it reads bytes.)
BIG_BODY_BYTES = 1024 * 1024


class ProtocolError(Exception):
    """The byte stream cannot be framed any more; the connection must go."""


class Frame(NamedTuple):
    headers: dict[str, str]
    body: bytes     # a bytearray when over BIG_BODY_BYTES, read in pieces

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def decode_text(raw: bytes | bytearray) -> str:
    return raw.decode("utf-8", "replace")


def byte_count(value: str | None) -> int | None:
    """A ``Content-Length`` value as an int, None unless ASCII digits only.

    ``str.isdigit()`` also takes "²" (which ``int()`` refuses) and ``int()``
    takes " 1", "-1", "1_0" and refuses more than 4300 digits.
    """
    if value and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


class FrameReader:
    """Incremental splitter: ``feed()`` bytes, iterate ``frames()``.

    Keeps partial frames across reads, so a frame split anywhere (even inside
    a multi-byte character) is reassembled exactly.  Memory: a frame costs
    about its size once (a big body is filled in place, see BIG_BODY_BYTES);
    a frame header is refused past MAX_FRAME_HEADER_BYTES and a body past
    MAX_BODY_BYTES, so ``buffered`` stays below their sum plus one read.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: dict[str, str] | None = None  # headers awaiting body
        self._need = 0
        self._body: bytearray | None = None          # a big body being filled
        self._filled = 0

    @property
    def buffered(self) -> int:
        return len(self._buf) + self._filled

    def feed(self, data: bytes) -> None:
        body = self._body
        if body is None or self._filled == self._need:
            self._buf += data
            return
        take = min(len(data), self._need - self._filled)
        view = memoryview(data)
        body[self._filled:self._filled + take] = view[:take]
        self._filled += take
        self._buf += view[take:]

    def frames(self):
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._pending is not None:
                    body, pos = self._take_body(buf, pos)
                    if body is None:
                        return
                    headers, self._pending = self._pending, None
                    self._body, self._filled = None, 0
                    yield Frame(headers, body)
                    continue
                # FreeSWITCH never sends stray blank lines, but be lenient.
                while buf.startswith(b"\n", pos):
                    pos += 1
                cut = buf.find(b"\n\n", pos)
                if cut < 0:
                    if len(buf) - pos > MAX_FRAME_HEADER_BYTES:
                        raise ProtocolError(
                            "no end of frame header within %d bytes: %r..."
                            % (MAX_FRAME_HEADER_BYTES, bytes(buf[pos:pos + 80])))
                    return
                headers = parse_header_block(decode_text(buf[pos:cut]))
                pos = cut + 2
                length = headers.get("Content-Length")
                if length is None:
                    yield Frame(headers, b"")
                    continue
                need = byte_count(length)
                if need is None or need > MAX_BODY_BYTES:
                    raise ProtocolError(
                        "bad Content-Length %r (ASCII digits, at most %d) in frame %r"
                        % (length[:40], MAX_BODY_BYTES, _shown(headers)))
                end = pos + need
                if len(buf) >= end:          # the usual case: the body came with it
                    body = bytes(buf[pos:end])   # at ~7 kB cheaper than a memoryview
                    pos = end
                    yield Frame(headers, body)
                    continue
                self._pending, self._need = headers, need
        finally:
            del buf[:pos]

    def _take_body(self, buf: bytearray, pos: int) -> tuple[bytes | None, int]:
        """(the pending body or None if incomplete, where ``buf`` is read to)."""
        if self._body is not None:     # filling: ``buf`` holds what follows it
            if self._filled < self._need:
                return None, pos
            # A bytearray: every reader of Frame.body takes it as it takes bytes.
            return cast(bytes, self._body), pos
        end = pos + self._need
        if len(buf) >= end:    # up to BIG_BODY_BYTES: one copy, not a slice and a copy
            with memoryview(buf) as view:
                return bytes(view[pos:end]), end
        if self._need > BIG_BODY_BYTES:      # fill it in place from now on
            self._body = bytearray(self._need)
            self._filled = len(buf) - pos
            with memoryview(buf) as view:
                self._body[:self._filled] = view[pos:]
            return None, len(buf)
        return None, pos


def _shown(headers: dict[str, str]) -> dict[str, str]:
    """Headers fit for a log line: at most 10, each value cut at 80 characters."""
    return {name[:80]: value[:80] for name, value in list(headers.items())[:10]}


def split_frames(data: bytes) -> list[Frame]:
    """All complete frames of a byte string (captures, tests)."""
    reader = FrameReader()
    reader.feed(data)
    return list(reader.frames())
