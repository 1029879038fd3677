"""Reading header blocks fast: each trick beside the plain code it replaces.

A plain event is ~160 ``Name: value`` lines, and reading them is most of
what an event costs eslhook (docs/performance.md, "Hot-path tricks and what
they bought").  Four tricks make it cheap; each one here is a function with
its *reference* right after it: the obvious code, slower, that says what
the trick must return.  tests/test_hotpath_reference.py checks that both
agree (generated blocks and the real captures); only the tests and the
fast functions' fallbacks call a reference.

1. ``parse_header_block``: split a whole block in C, not line by line
   (reference: ``parse_header_block_reference``).
2. ``line_picker``: one regex finds the lines of the names (and name
   prefixes) a reader asks for, without splitting the rest (reference:
   ``pick_lines_reference``).
3. ``parse_block_agreeing_with``: the whole block of an event read through
   a line picker: the fast split of 1., unless it disagrees with the picked
   lines (reference: ``parse_header_block_reference``).
4. ``find_blank_line`` and ``framed_head``: where a plain event's block
   ends, and the block ready for a line picker, found and decoded with as
   few scans and copies as can be (references: ``find_blank_line_reference``,
   ``framed_head_reference``).

Pure, no I/O.  Lines end at "\\n"; a "\\r" ending a value is dropped by
the splits, kept by the picker (framing picks only blocks without one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection


def parse_header_block(text: str) -> dict[str, str]:
    """``Name: value`` lines as a dict (the last repeat wins); the result
    of ``parse_header_block_reference`` unless a block has both a line with
    two ": " and a line with none (FreeSWITCH never sends one)."""
    # When there are as many ": " as lines (every percent-encoded plain
    # event, nearly every frame header), names and values alternate in one
    # split.  Each "\n" became one character longer: the length difference
    # counts the lines without another pass over the text.  A "\r" (a
    # "\r\n" line end) goes the reference's way, which drops it.
    joined = text.replace("\n", ": ")
    parts = joined.split(": ")
    if len(parts) == 2 * (len(joined) - len(text) + 1) and "\r" not in text:
        it = iter(parts)
        return dict(zip(it, it))
    return parse_header_block_reference(text)


def parse_header_block_reference(text: str) -> dict[str, str]:
    """Reference (and fallback) of ``parse_header_block``, line by line:
    the first ": " splits, "Name:" is an empty value, other lines without
    a separator are skipped, a "\\r" ending a value is dropped."""
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                headers[line[:-1]] = ""
            continue
        headers[name] = value.rstrip("\r")
    return headers


def can_pick(name: object) -> bool:
    """Can be (the start of) a header line's name: "_body" is not a line."""
    return (isinstance(name, str) and name != "" and name != "_body"
            and not any(c in name for c in "\n\r:"))


def line_picker(names: Collection[str],
                prefixes: Collection[str]) -> Callable[[str, int], dict[str, str]]:
    """A function ``(framed, end)`` -> the lines of ``names`` and of the names
    starting with one of ``prefixes`` in the block ``framed[1:end - 1]``, as
    ``pick_lines_reference`` gives them; ``framed[:end]`` must be "\\n" +
    the block + "\\n" (``framed_head`` makes one, ``framed_block`` too).

    All of ``names`` and ``prefixes`` must pass ``can_pick``, and blocks
    must hold no "\\r".  One regex over the block, in C: the rest of its
    lines are skipped, never split.
    """
    # After a prefix, the shortest rest that ": " (or the line's end) follows:
    # the first ": " splits, as in the reference.
    entries = sorted([(name, "") for name in names]
                     + [(prefix, "[^\n]*?") for prefix in prefixes])
    if not entries:
        return lambda framed, end: {}
    findall = re.compile("\n(%s)(?:: ([^\n]*)|:(?=\n))" % _alternation(entries)).findall

    def pick(framed: str, end: int) -> dict[str, str]:
        # ``end`` as findall's endpos: the regex sees framed[:end], no copy made
        return dict(findall(framed, 0, end))
    return pick


def framed_block(text: str) -> tuple[str, int]:
    """A block as ``line_picker``'s functions take it: ("\\n" + it + "\\n", end)."""
    framed = "\n%s\n" % text
    return framed, len(framed)


def pick_lines_reference(text: str, names: Collection[str],
                         prefixes: Collection[str]) -> dict[str, str]:
    """Reference of ``line_picker``: split every line, keep the asked ones."""
    wanted = tuple(prefixes)
    return {name: value for name, value in parse_header_block_reference(text).items()
            if name in names or name.startswith(wanted)}


def _alternation(entries: list[tuple[str, str]]) -> str:
    """A regex for (literal, then regex) entries, as a trie of the literals:
    sre tries alternatives one by one, so shared starts are matched once."""
    groups: dict[str, list[tuple[str, str]]] = {}
    ends = []
    for literal, then in entries:
        if literal:
            groups.setdefault(literal[0], []).append((literal[1:], then))
        else:
            ends.append(then)
    alternatives = [re.escape(first) + _alternation(rest) for first, rest in groups.items()]
    alternatives += ends
    return alternatives[0] if len(alternatives) == 1 else "(?:%s)" % "|".join(alternatives)


def parse_block_agreeing_with(text: str, picked: dict[str, str], names: Collection[str],
                              prefixes: tuple[str, ...]) -> dict[str, str]:
    """The whole block of an event whose lines ``picked`` were picked from
    ``text`` (by ``line_picker(names, prefixes)``): never contradicting them.

    The fast split, unless it was fooled on a picked line; then the exact
    parse (``parse_header_block_reference``), which the picked lines always
    agree with.  So one event reads the same through either.
    """
    raw = parse_header_block(text)
    return raw if agrees_with_picked(raw, picked, names, prefixes) \
        else parse_header_block_reference(text)


def agrees_with_picked(raw: dict[str, str], picked: dict[str, str],
                       names: Collection[str], prefixes: tuple[str, ...]) -> bool:
    """Do the parsed ``raw`` and the ``picked`` lines agree on every picked
    name and on which names start with the prefixes, with what values?"""
    if any(raw.get(name) != picked.get(name) for name in names):
        return False
    return not prefixes or (
        {n: v for n, v in raw.items() if n.startswith(prefixes)}
        == {n: v for n, v in picked.items() if n.startswith(prefixes)})


_BLANK_LINE = re.compile(b"\n\n").search


def find_blank_line(data: bytes) -> int:
    """Where the first blank line starts: ``find_blank_line_reference``.

    sre scans for the two bytes in a tight loop; ``bytes.find`` with a
    two-byte needle steps through its skip table, about twice as slow on
    a plain event's ~7 kB block."""
    found = _BLANK_LINE(data)
    return -1 if found is None else found.start()


def find_blank_line_reference(data: bytes) -> int:
    """Reference of ``find_blank_line``."""
    return data.find(b"\n\n")


def framed_head(body: bytes) -> tuple[str, int]:
    """The head of a plain event's body (the block before its first blank
    line), framed for a ``line_picker`` function: ``(framed, end)`` with
    ``framed[:end] == framed_head_reference(body)``.

    A body is nearly always one block then its blank line: then all of it
    is decoded at once and the two closing newlines serve as the frame, so
    the block is neither cut out nor copied into a frame (each would copy
    its ~7 kB).  Decoding it together with what follows changes nothing:
    a "\\n" ends any incomplete UTF-8 sequence before it as the end of the
    block would.
    """
    cut = find_blank_line(body)
    if cut >= 0 and cut == len(body) - 2:      # (not found in b"\n" is -1 too)
        framed = "\n" + body.decode("utf-8", "replace")
        return framed, len(framed) - 1
    return framed_block((body if cut < 0 else body[:cut]).decode("utf-8", "replace"))


def framed_head_reference(body: bytes) -> str:
    """Reference of ``framed_head``: "\\n" + the block before the first blank line + "\\n"."""
    return "\n%s\n" % body.partition(b"\n\n")[0].decode("utf-8", "replace")
