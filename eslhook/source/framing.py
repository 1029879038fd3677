"""Byte-exact ESL framing and event parsing (pure, no I/O).

An ESL frame is a block of ``Name: value`` lines ended by a blank line,
followed by exactly ``Content-Length`` *bytes* of body when that header is
present.  Events arrive as the body of a ``text/event-plain`` or
``text/event-json`` frame; both are parsed here into one flat
``dict[str, str]`` of event headers so the rest of eslhook never cares which
format the switch spoke.

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

import codecs
from collections.abc import Callable, Mapping
from typing import NamedTuple, cast
from urllib.parse import unquote

import orjson

from .picking import (
    can_pick,
    line_picker,
    parse_block_agreeing_with,
    parse_header_block,
)

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


def _decode(raw: bytes | bytearray) -> str:
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
                headers = parse_header_block(_decode(buf[pos:cut]))
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


def percent_decode(value: str) -> str:
    """urllib's ``unquote`` (UTF-8, errors replaced), ~5x faster.

    ``%XX`` becomes ``\\xXX`` for the C escape decoder.  That is exact because
    FreeSWITCH percent-encodes every backslash in plain values; a value that
    has one anyway, or a malformed escape, takes urllib's general path.
    """
    if "\\" not in value:
        try:
            return codecs.escape_decode(value.replace("%", "\\x"))[0].decode("utf-8", "replace")
        except ValueError:
            pass
    return unquote(value, errors="replace")


class PlainEvent(Mapping):
    """Headers of a ``text/event-plain`` body, percent-decoded on access.

    Decoding all ~160 values would cost more than splitting the lines, and
    the mapping reads a few dozen of them.  So values stay encoded until
    read.  Each value is decoded on its own, after the lines were split.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, str]):
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        value = self._raw[name]
        return percent_decode(value) if "%" in value else value

    def get(self, name, default=None):
        value = self._raw.get(name)
        if value is None:
            return default
        return percent_decode(value) if "%" in value else value

    def __contains__(self, name) -> bool:
        return name in self._raw

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return "PlainEvent(%r)" % dict(self.items())


class PickedPlainEvent(PlainEvent):
    """A plain event read through a ``HeaderPicker``.

    The lines of the picker's names, and of every name starting with one of
    its prefixes, were found in the block without parsing it
    (``picking.line_picker``); reading any other header, iterating or
    counting parses the whole block once, never contradicting the picked
    lines (``picking.parse_block_agreeing_with``).
    """

    __slots__ = ("_body", "_names", "_parsed", "_picked", "_picker", "_prefixes")

    # PlainEvent's ``_raw`` stays unset: every method reading it is overridden.
    def __init__(self, picked: dict[str, str], picker: HeaderPicker, body: bytes):
        self._parsed: dict[str, str] | None = None   # the whole block, once needed
        self._picked = picked
        self._names = picker.names
        self._prefixes = picker.prefixes
        self._picker = picker
        self._body = body

    def _whole(self) -> dict[str, str]:
        if self._parsed is None:
            self._picker.wholes += 1
            picked, names, prefixes = self._picked, self._names, self._prefixes
            self._parsed = _plain_raw(self._body, lambda text: parse_block_agreeing_with(
                text, picked, names, prefixes))
        return self._parsed

    def get(self, name, default=None):
        if name in self._names:
            value = self._picked.get(name)
        else:
            value = self._unpicked(name)
        if value is None:
            return default
        return percent_decode(value) if "%" in value else value

    def _unpicked(self, name) -> str | None:
        if self._prefixes and isinstance(name, str) and name.startswith(self._prefixes):
            return self._picked.get(name)
        self._picker.learn(name)
        return self._whole().get(name)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:
        if name in self._names:
            return name in self._picked
        return self._unpicked(name) is not None

    def __iter__(self):
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._whole())

    def names_with(self, prefixes: tuple[str, ...]) -> list[str]:
        """Header names in event order: at least all starting with one of
        ``prefixes``, from the picked lines when the picker has them."""
        if self._prefixes and all(p.startswith(self._prefixes) for p in prefixes):
            return list(self._picked)
        self._picker.learn_prefixes(prefixes)
        return list(self._whole())


class HeaderPicker:
    """The headers a reader asks plain events for, learned as it asks.

    Splitting all ~160 lines of a plain event is most of what an event
    costs eslhook, yet the mapping asks for the same ~50 names every time
    (and, for channel-variable globs, for the names with a few prefixes).
    Events parsed with a picker find just the lines of the names and
    prefixes learned so far (``picking.line_picker``); a name not
    learned yet is read from the whole block (and learned).  When most
    events need the whole block anyway (a reader that iterates), picking
    would only add work, so it stops.
    """

    WINDOW = 256      # events between two looks at how often the whole block was needed
    MAX_NAMES = 256   # a reader of ever new names must not grow the regex forever

    def __init__(self) -> None:
        self.enabled = True
        self.names: frozenset[str] = frozenset()
        self.prefixes: tuple[str, ...] = ()
        self._learned: set[str] = set()
        self._learned_prefixes: set[str] = set()
        self._pick = line_picker((), ())
        self.events = self.wholes = 0

    def learn(self, name) -> None:
        if can_pick(name) and len(self._learned) < self.MAX_NAMES:
            self._learned.add(name)

    def learn_prefixes(self, prefixes) -> None:
        for prefix in prefixes:
            if can_pick(prefix) and len(self._learned_prefixes) < self.MAX_NAMES:
                self._learned_prefixes.add(prefix)

    def event(self, text: str, body: bytes) -> PickedPlainEvent:
        """The event of ``body``, whose head decodes to ``text`` (no "\\r" in it)."""
        if (len(self._learned) != len(self.names)
                or len(self._learned_prefixes) != len(self.prefixes)):
            self._compile()
        self.events += 1
        if self.events == self.WINDOW:
            self.enabled = self.wholes * 2 < self.events
            self.events = self.wholes = 0
        return PickedPlainEvent(self._pick(text), self, body)

    def _compile(self) -> None:
        self.names = frozenset(self._learned)
        self.prefixes = tuple(sorted(self._learned_prefixes))
        self._pick = line_picker(self.names, self.prefixes)


def _plain_raw(body: bytes, split: Callable[[str], dict[str, str]] = parse_header_block,
               ) -> dict[str, str]:
    head, sep, rest = body.partition(b"\n\n")
    text = _decode(head).rstrip("\n")
    raw = split(text)
    inner = byte_count(raw.get("Content-Length"))
    if sep and inner is not None:
        # The inner body is raw text, not percent-encoded: keep it apart.
        raw["_body"] = _decode(rest[:inner]).replace("%", "%25")
    return raw


def parse_plain_event(body: bytes, picker: HeaderPicker | None = None) -> PlainEvent:
    """Headers of a ``text/event-plain`` body (``_body`` holds an inner body)."""
    if picker is not None and picker.enabled:
        text = _decode(body.partition(b"\n\n")[0])
        if "\r" not in text:    # the exact parse strips it, picking does not
            return picker.event(text, body)
    return PlainEvent(_plain_raw(body))


def parse_json_event(body: bytes) -> dict[str, str]:
    """Headers of a ``text/event-json`` body (``_body`` holds any inner body).

    Only strings come out: an array of strings becomes plain's
    ``ARRAY::a|:b``; any other value (number, object, null...) makes the
    event malformed (ValueError), as FreeSWITCH never sends one and a value
    guessed from it could route a call to the wrong hook.
    """
    try:
        event = orjson.loads(body)   # ~4x faster than json.loads on real events
    except orjson.JSONDecodeError as exc:
        # orjson also bounds nesting (1024 deep) where the stdlib recursed.
        event = _lenient_json(body, exc)
    if type(event) is not dict:
        raise ValueError("event json is not an object")
    for value in event.values():     # a loop: twice as fast as all() here
        if type(value) is not str:
            _strings_only(event)
            break
    return event


def _lenient_json(body: bytes, error: ValueError) -> object:
    """Invalid UTF-8 is replaced, as in plain events; other errors stand."""
    try:
        str(body, "utf-8")
    except UnicodeDecodeError:
        try:
            return orjson.loads(_decode(body))
        except orjson.JSONDecodeError as exc:
            error = exc
    raise ValueError("invalid event json: %s" % error) from None


def _strings_only(event: dict) -> None:
    """Arrays of strings joined as plain joins them; other values refused."""
    for name, value in event.items():
        if type(value) is str:
            continue
        if type(value) is list and all(type(item) is str for item in value):
            event[name] = "ARRAY::" + "|:".join(value)
            continue
        raise ValueError("event json value of %r is %s, not a string"
                         % (name[:80], type(value).__name__))


def parse_event(frame: Frame, picker: HeaderPicker | None = None) -> Mapping[str, str] | None:
    """Event headers of an event frame, or None when it is not an event."""
    ctype = frame.content_type
    if ctype == "text/event-plain":
        return parse_plain_event(frame.body, picker)
    if ctype == "text/event-json":
        return parse_json_event(frame.body)
    return None


def split_frames(data: bytes) -> list[Frame]:
    """All complete frames of a byte string (captures, tests)."""
    reader = FrameReader()
    reader.feed(data)
    return list(reader.frames())
