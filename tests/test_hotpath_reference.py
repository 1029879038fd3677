"""Each hot-path trick returns what its plain reference returns.

eslhook/source/picking.py, eslhook/source/parsing.py (``percent_decode_all``)
and eslhook/channelvars.py put a fast function
beside the obvious one it replaces.  Hypothesis generates header blocks
(names, values and line shapes FreeSWITCH sends, plus the odd ones it does
not), and every event of the bundled real captures is read both ways.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import assume, example, given, settings, strategies as st

from eslhook.channelvars import (
    channel_variable_prefixes, find_channel_variables, find_channel_variables_reference)
from eslhook.fakeswitch.capture import load_capture
from eslhook.source.parsing import percent_decode_all, percent_decode_all_reference
from eslhook.source.picking import (
    can_pick, find_blank_line, find_blank_line_reference, framed_block, framed_head,
    framed_head_reference, line_picker, parse_block_agreeing_with, parse_header_block,
    parse_header_block_reference, pick_lines_reference)

CAPTURES = Path(__file__).parent / "captures"
PLAIN_CAPTURES = ("plain-single-calls.esl", "shutdown-plain.esl")

# Names and values from a small alphabet, so generated blocks repeat names,
# share prefixes and hit separators often.
NAME_CHARS = "ABCab_-%: "
VALUE_CHARS = "ab%:\r \t"
names = st.text(alphabet=NAME_CHARS, min_size=0, max_size=6)
values = st.text(alphabet=VALUE_CHARS, min_size=0, max_size=8)


@st.composite
def header_lines(draw) -> str:
    kind = draw(st.sampled_from(["pair", "pair", "pair", "empty value", "bare", "blank"]))
    if kind == "pair":
        return "%s: %s" % (draw(names), draw(values))
    if kind == "empty value":
        return "%s:" % draw(names)
    if kind == "bare":
        return draw(names)
    return ""


blocks = st.lists(header_lines(), min_size=1, max_size=12).map("\n".join)


def fools_the_split(text: str) -> bool:
    """The documented exception of parse_header_block: a line with two ": "
    and a line with none in one block (FreeSWITCH sends neither)."""
    lines = text.split("\n")
    return (any(line.count(": ") > 1 for line in lines)
            and any(": " not in line for line in lines))


def plain_event_blocks() -> list[str]:
    out = []
    for name in PLAIN_CAPTURES:
        for event in load_capture(CAPTURES / name).events:
            assert event.fmt == "plain"
            out.append(event.body.decode("utf-8").rstrip("\n"))
    assert len(out) > 20
    return out


# -- 1. the header-block split ---------------------------------------------

def test_header_block_with_carriage_returns_reads_like_line_by_line():
    # A "\r\n" line end (a proxy, a hand-made capture) must not leave "\r"
    # in a value: the reference drops it, so the fast split must too.
    text = "Event-Name: CHANNEL_CREATE\r\nUnique-ID: abc\r\nCore-UUID: def"
    assert parse_header_block(text) == parse_header_block_reference(text) == {
        "Event-Name": "CHANNEL_CREATE", "Unique-ID": "abc", "Core-UUID": "def"}


@settings(max_examples=400, deadline=None)
@given(blocks)
@example("a: b: c\nd")          # the documented exception itself
@example("Name:\nOther: x")     # an empty value
def test_the_fast_split_reads_every_block_as_the_reference_does(text):
    if fools_the_split(text):
        # the one documented exception: it may differ, but never raises
        parse_header_block(text)
        return
    assert parse_header_block(text) == parse_header_block_reference(text)


def test_every_real_plain_event_splits_as_the_reference_does():
    for text in plain_event_blocks():
        assert parse_header_block(text) == parse_header_block_reference(text)


# -- 2. the line picker ----------------------------------------------------

pickable = st.text(alphabet="ABCab_-%", min_size=1, max_size=4).filter(can_pick)


@settings(max_examples=200, deadline=None)     # a regex compiled per example
@given(blocks, st.sets(pickable, max_size=4), st.sets(pickable, max_size=3))
def test_the_line_picker_picks_what_the_reference_keeps(text, wanted, prefixes):
    assume("\r" not in text)        # the picker's stated precondition
    picked = line_picker(wanted, prefixes)(*framed_block(text))
    assert picked == pick_lines_reference(text, wanted, prefixes)


def test_the_line_picker_on_real_events_picks_what_the_reference_keeps():
    wanted = {"Event-Name", "Unique-ID", "Caller-Caller-ID-Number", "variable_sip_call_id",
              "Hangup-Cause", "Nothing-Like-This"}
    prefixes = ("variable_sip_h_", "variable_ecallmgr_", "Caller-")
    picker = line_picker(wanted, prefixes)
    for text in plain_event_blocks():
        picked = picker(*framed_block(text))
        assert picked == pick_lines_reference(text, wanted, prefixes)
        assert picked.get("Event-Name")      # the picker really found lines


# -- 3. the whole parse that never contradicts the picked lines --------------

@settings(max_examples=200, deadline=None)     # a regex compiled per example
@given(blocks, st.sets(pickable, max_size=4), st.sets(pickable, max_size=3))
def test_the_agreeing_parse_never_contradicts_the_picked_lines(text, wanted, prefixes):
    assume("\r" not in text)
    prefixes = tuple(sorted(prefixes))
    picked = line_picker(wanted, prefixes)(*framed_block(text))
    whole = parse_block_agreeing_with(text, picked, wanted, prefixes)
    for name in wanted:
        assert whole.get(name) == picked.get(name)
    if prefixes:
        assert ({n: v for n, v in whole.items() if n.startswith(prefixes)}
                == {n: v for n, v in picked.items() if n.startswith(prefixes)})
    if not fools_the_split(text):
        assert whole == parse_header_block_reference(text)


# -- 4. the end of a plain event's block, and its framed head ----------------

# Bytes that make blank lines, lines, and UTF-8 both valid and broken
# (a 2-byte and a 3-byte sequence cut short or whole, a stray continuation).
body_pieces = st.sampled_from([b"\n", b"\n\n", b"a", b": ", b"%", b"\r", b"\xc3", b"\xa9",
                               b"\xe2\x82", b"\xac", b"\xff", b"Content-Length: 3"])
bodies = st.lists(body_pieces, max_size=24).map(b"".join)


def framed_region(framed: tuple[str, int]) -> str:
    text, end = framed
    return text[:end]


@settings(max_examples=600, deadline=None)
@given(bodies)
@example(b"a: b\n\n")                  # the usual shape: one block, its blank line
@example(b"\n\n")
@example(b"a: \xe2\x82\n\n")           # an incomplete sequence right before the end
@example(b"a: b\n\nc\n\n")              # an inner body ending like a block
@example(b"\na: b\n\n")
@example(b"\n")                         # no blank line, one byte short of one
def test_the_framed_head_is_the_reference_block(body):
    assert find_blank_line(body) == find_blank_line_reference(body)
    assert find_blank_line(bytearray(body)) == find_blank_line_reference(body)
    assert framed_region(framed_head(body)) == framed_head_reference(body)


@settings(max_examples=200, deadline=None)
@given(bodies, st.sets(pickable, max_size=4), st.sets(pickable, max_size=3))
def test_the_line_picker_over_a_framed_head_picks_what_the_reference_keeps(
        body, wanted, prefixes):
    text = body.partition(b"\n\n")[0].decode("utf-8", "replace")
    assume("\r" not in text)
    picked = line_picker(wanted, prefixes)(*framed_head(body))
    assert picked == pick_lines_reference(text, wanted, prefixes)


def test_every_real_plain_event_body_frames_as_the_reference_does():
    for name in PLAIN_CAPTURES:
        for event in load_capture(CAPTURES / name).events:
            assert framed_region(framed_head(event.body)) == framed_head_reference(event.body)
            assert find_blank_line(event.body) == len(event.body) - 2   # the usual shape


# -- 5. decoding all the picked values at once ------------------------------

# Escapes whole, cut short, not hex, of a newline, of broken UTF-8; a
# backslash (urllib's path); characters decoded from the wire already.
value_pieces = st.sampled_from(["a", "%", "%4", "%40", "%0A", "%0a", "%E2%82", "%AC", "%C3",
                                "%A9", "%zz", "\\", "\\x41", "\u00e9", "\ufffd", ":", " "])
plain_values = st.lists(st.lists(value_pieces, max_size=6).map("".join), max_size=8)


@settings(max_examples=600, deadline=None)
@given(plain_values)
@example(["%E2%82", "%AC"])        # an incomplete sequence, its rest in the next value
@example(["a%", "0A"])             # an escape cut by the join
@example(["%0A", "b"])             # a value that decodes to a newline
@example(["\\", "%40"])            # one backslash sends them all through urllib
def test_decoding_all_values_at_once_decodes_each_as_alone(values):
    assert percent_decode_all(values) == percent_decode_all_reference(values)


def test_every_real_plain_value_decodes_at_once_as_alone():
    for text in plain_event_blocks():
        values = list(parse_header_block_reference(text).values())
        assert percent_decode_all(values) == percent_decode_all_reference(values)


# -- 6. the channel-variable finder ----------------------------------------

glob_parts = st.sampled_from(["sip_", "h_", "X-", "ecallmgr_", "a", "b", "*", "?", "[ab]",
                              "[!a]", "_custom"])
globs = st.lists(st.lists(glob_parts, min_size=1, max_size=4).map("".join),
                 min_size=1, max_size=4).map(tuple)
variable_names = st.lists(
    st.one_of(st.lists(glob_parts.filter(lambda p: p not in "*?[ab][!a]"), min_size=1,
                       max_size=4).map(lambda parts: "variable_" + "".join(parts)),
              st.sampled_from(["Caller-Caller-ID-Name", "variable_", "variables_x",
                               "Event-Name", "variable_sip_h_X-Account"])),
    max_size=15)


@settings(max_examples=400, deadline=None)
@given(variable_names, globs)
def test_the_channel_variable_finder_finds_what_fnmatch_finds(names_in_event, patterns):
    found = find_channel_variables(names_in_event, patterns)
    assert found == find_channel_variables_reference(names_in_event, patterns)
    assert all(name.startswith(channel_variable_prefixes(patterns)) for name in found)


def test_the_channel_variable_finder_on_real_events_finds_what_fnmatch_finds():
    patterns = ("sip_*_uri", "ecallmgr_*", "*_custom", "[es]*")
    hits = 0
    for text in plain_event_blocks():
        event_names = list(parse_header_block_reference(text))
        found = find_channel_variables(event_names, patterns)
        assert found == find_channel_variables_reference(event_names, patterns)
        hits += len(found)
    assert hits > 100
