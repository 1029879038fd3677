"""Event parsing: the body of a ``text/event-plain`` or ``text/event-json``
frame (``framing.Frame``) as one flat mapping of event headers (pure, no I/O).

Plain values are percent-decoded one at a time, after the lines were split,
and only when read (``PlainEvent``); a ``HeaderPicker`` learns which headers
a reader asks for, so most lines of a plain event are never split
(``PickedPlainEvent``, the tricks in ``picking.py``); a reader of many
headers reads the picked values through ``PickedPlainEvent.lookup``, all
decoded in one pass that decodes each as alone (``percent_decode_all``,
beside its reference).  Json values must be strings (or FreeSWITCH's arrays
of strings); an event that cannot be read raises ``ValueError`` (skipped,
the stream goes on), never ``ProtocolError``.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Collection, Mapping
from urllib.parse import unquote

import orjson

from .framing import Frame, decode_text, byte_count
from .picking import (
    can_pick,
    find_blank_line,
    framed_head,
    line_picker,
    parse_block_agreeing_with,
    parse_header_block,
)


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


def percent_decode_all(values: Collection[str]) -> list[str]:
    """``percent_decode_all_reference``: the values (none holding a "\\n"),
    each decoded, in one ``percent_decode`` of them all joined.

    A "\\n" joining two values is not hex, so no escape reaches across
    it, and it ends any UTF-8 sequence left incomplete before it; what
    splits apart again is each value decoded alone, unless a value decoded
    to a "\\n" of its own (``%0A``): then the parts do not count out.
    """
    joined = "\n".join(values)
    if "%" not in joined:
        return list(values)
    decoded = percent_decode(joined).split("\n")
    return decoded if len(decoded) == len(values) else percent_decode_all_reference(values)


def percent_decode_all_reference(values: Collection[str]) -> list[str]:
    """Reference of ``percent_decode_all``: what ``PlainEvent.get`` returns for each."""
    return [percent_decode(value) if "%" in value else value for value in values]


class _DecodedLines(dict[str, "str | None"]):
    """A picked plain event's lines by name, decoded; None for a name the
    picker looks for that is not in the event; any other name is read
    through the event (``__missing__``)."""

    __slots__ = ("event",)
    event: PickedPlainEvent

    def __missing__(self, name):
        return self.event.get(name)


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
        # A line picked is one asked for (or of a prefix): read it at once.
        value = self._picked.get(name)
        if value is None:
            if name in self._names:
                return default
            value = self._unpicked(name)
            if value is None:
                return default
        return percent_decode(value) if "%" in value else value

    def lookup(self) -> Callable[[str], str | None]:
        """``get`` with one argument, for a reader of many headers: each read
        a dict lookup in C, not a call of ``get``; all the picked values are
        decoded at once (``percent_decode_all``).  A new one per call (the
        event does not keep it: it refers to the event, a cycle would leave
        every event to the garbage collector)."""
        picked = self._picked
        decoded = _DecodedLines(self._picker.absent)
        decoded.update(zip(picked, percent_decode_all(picked.values())))
        decoded.event = self
        return decoded.__getitem__

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
        if self._picker.covers(self._prefixes, prefixes):
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
        self.absent: dict[str, None] = {}   # each name -> None: what no line of them reads
        self.prefixes: tuple[str, ...] = ()
        self._learned: set[str] = set()
        self._learned_prefixes: set[str] = set()
        self._covered: dict[tuple[tuple[str, ...], tuple[str, ...]], bool] = {}
        self._pick = line_picker((), ())
        self.events = self.wholes = 0

    def covers(self, picked_with: tuple[str, ...], prefixes: tuple[str, ...]) -> bool:
        """Does every name starting with one of ``prefixes`` start with one of
        ``picked_with`` (an event's prefixes)?  Asked for every event, by the
        same few tuples: answered once each."""
        key = (picked_with, prefixes)
        covered = self._covered.get(key)
        if covered is None:
            if len(self._covered) >= self.MAX_NAMES:
                self._covered.clear()
            covered = self._covered[key] = bool(picked_with) and all(
                p.startswith(picked_with) for p in prefixes)
        return covered

    def learn(self, name) -> None:
        if can_pick(name) and len(self._learned) < self.MAX_NAMES:
            self._learned.add(name)

    def learn_prefixes(self, prefixes) -> None:
        for prefix in prefixes:
            if can_pick(prefix) and len(self._learned_prefixes) < self.MAX_NAMES:
                self._learned_prefixes.add(prefix)

    def event(self, framed: str, end: int, body: bytes) -> PickedPlainEvent:
        """The event of ``body``, whose head is framed in ``framed[:end]``
        (``picking.framed_head``; no "\\r" in it)."""
        if (len(self._learned) != len(self.names)
                or len(self._learned_prefixes) != len(self.prefixes)):
            self._compile()
        self.events += 1
        if self.events == self.WINDOW:
            self.enabled = self.wholes * 2 < self.events
            self.events = self.wholes = 0
        return PickedPlainEvent(self._pick(framed, end), self, body)

    def _compile(self) -> None:
        self.names = frozenset(self._learned)
        self.absent = dict.fromkeys(self.names)
        self.prefixes = tuple(sorted(self._learned_prefixes))
        self._pick = line_picker(self.names, self.prefixes)


def _plain_raw(body: bytes, split: Callable[[str], dict[str, str]] = parse_header_block,
               ) -> dict[str, str]:
    cut = find_blank_line(body)
    text = decode_text(body if cut < 0 else body[:cut]).rstrip("\n")
    raw = split(text)
    inner = byte_count(raw.get("Content-Length"))
    if cut >= 0 and inner is not None:
        # The inner body is raw text, not percent-encoded: keep it apart.
        raw["_body"] = decode_text(body[cut + 2:cut + 2 + inner]).replace("%", "%25")
    return raw


def parse_plain_event(body: bytes, picker: HeaderPicker | None = None) -> PlainEvent:
    """Headers of a ``text/event-plain`` body (``_body`` holds an inner body)."""
    if picker is not None and picker.enabled:
        framed, end = framed_head(body)
        if "\r" not in framed:    # the exact parse strips it, picking does not
            return picker.event(framed, end, body)
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
            return orjson.loads(decode_text(body))
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
