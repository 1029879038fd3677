"""Plain events read through a HeaderPicker read like whole blocks, and the
header-block split (pure, no sockets; the socket side is tests/test_esl.py)."""

import pytest
from helpers import channel_event, plain_frame

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig
from eslhook.mapping import channel_payload
from eslhook.mapping_keys import header_getter
from eslhook.source.framing import parse_header_block, split_frames
from eslhook.source.parsing import HeaderPicker, PlainEvent, parse_plain_event


# -- picked plain events ---------------------------------------------------

def plain_bodies(path) -> list[bytes]:
    return [f.body for f in split_frames(path.read_bytes())
            if f.content_type == "text/event-plain"]


MAPPING = {"switch": "fs1", "accounts": AccountDirectory(
    [AccountConfig(id="4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5", realms=("127.0.0.1",))])}


def test_picked_plain_events_map_and_read_like_whole_ones(captures):
    bodies = plain_bodies(captures / "plain-single-calls.esl")
    picker = HeaderPicker()
    for body in bodies:                  # the mapping teaches the picker what it reads
        channel_payload(parse_plain_event(body, picker), **MAPPING)
    wholes = picker.wholes
    for body in bodies:
        picked, whole = parse_plain_event(body, picker), parse_plain_event(body)
        assert channel_payload(picked, **MAPPING) == channel_payload(whole, **MAPPING)
        assert {n: picked.get(n) for n in picker.names} == {n: whole.get(n) for n in picker.names}
        lookup = picked.lookup()         # the mapping's reader: the same values, in C
        assert {n: lookup(n) for n in picker.names} == {n: whole.get(n) for n in picker.names}
    assert picker.wholes == wholes       # learned: no whole block was needed any more
    assert {"Event-Name", "Unique-ID", "variable_sip_req_uri"} <= picker.names
    for body in bodies:
        picked, whole = parse_plain_event(body, picker), parse_plain_event(body)
        assert dict(picked) == dict(whole) and len(picked) == len(whole)
        assert picked.get("_body") == whole.get("_body")


@pytest.mark.parametrize("globs", [("ecallmgr_*", "sip_h_*"), ("*",), ("some_custom",)])
def test_picked_plain_events_give_the_same_custom_channel_vars(captures, globs):
    bodies = plain_bodies(captures / "plain-single-calls.esl")
    picker = HeaderPicker()
    for body in bodies:                  # teaching, then taught
        channel_payload(parse_plain_event(body, picker), channel_variables=globs, **MAPPING)
    wholes = picker.wholes
    for body in bodies:
        picked, whole = parse_plain_event(body, picker), parse_plain_event(body)
        assert (channel_payload(picked, channel_variables=globs, **MAPPING)
                == channel_payload(whole, channel_variables=globs, **MAPPING))
    assert picker.wholes == wholes and picker.enabled


@pytest.mark.parametrize("block", [
    b"A: 1\nB:\nA: 3\nC: x: y\nnoise\n\n",       # repeats, "Name:", two ": ", noise
    b"A: 1\r\nnoise\r\nB: 2\r\n\n",              # "\r", stripped by the exact parse
    b"A: 1\nContent-Length: 9\n\nB: 2\nC: 3",     # an inner body
    b"A: 1%0AB%3A%202\nB: %41\n\n",               # encoded newline and ": "
    b"\nA: 1\nB: 2\n\n",
    b"A: 1",
])
def test_picked_and_whole_plain_events_agree_on_odd_blocks(block):
    picker = HeaderPicker()
    for name in ("A", "B", "C", "Content-Length", "_body"):
        picker.learn(name)
    whole = parse_plain_event(block)
    for read in (lambda e: {n: e.get(n) for n in ("A", "B", "C", "Content-Length", "_body")},
                 lambda e: {n: header_getter(e)(n) for n in ("A", "B", "C", "D", "_body")},
                 lambda e: {n: n in e for n in ("A", "B", "C", "_body")}, dict):
        assert read(parse_plain_event(block, picker)) == read(whole)


@pytest.mark.parametrize("block", [
    b"v1: a\nB: 1\nv2:\nv1: b\nv3: x: y\nv4:x\nvv\nv5:z:\n\n",   # repeats, "Name:", two ": "...
    b"v1: 1\nContent-Length: 9\n\nv2: 2\nC: 3",                        # an inner body
    b"B: 1%0Av9%3A%202\nv1: %41\n\n",                                   # encoded separators
])
def test_picked_prefixes_read_like_whole_blocks(block):
    picker = HeaderPicker()
    picker.learn("B")
    picker.learn_prefixes(("v",))
    whole = dict(parse_plain_event(block))
    names = [n for n in whole if n.startswith("v")]
    assert names                                        # the block has some
    event = parse_plain_event(block, picker)
    assert [n for n in event.names_with(("v",)) if n.startswith("v")] == names
    asked = [*names, "v9", "B"]
    assert {n: event.get(n) for n in asked} == {n: whole.get(n) for n in asked}
    lookup = event.lookup()
    assert {n: lookup(n) for n in asked} == {n: whole.get(n) for n in asked}
    assert [n in event for n in asked] == [n in whole for n in asked]
    assert picker.wholes == 0                           # all of it from the picked lines
    assert dict(event) == whole


def test_a_picked_event_agrees_with_itself_where_the_fast_split_is_fooled():
    # One line with two ": " and one with none (FreeSWITCH never sends that)
    # fool parse_header_block's fast split; a picked event still reads the
    # same as its whole block, the exact line-by-line parse.
    block = b"A: x: y\nnoise\nB: 2\n\n"
    for learn in (lambda p: p.learn("A"), lambda p: p.learn_prefixes(("A",))):
        picker = HeaderPicker()
        learn(picker)
        event = parse_plain_event(block, picker)
        assert event["A"] == "x: y"
        assert dict(event) == {"A": "x: y", "B": "2"}


@pytest.mark.parametrize("iterates", [True, False])
def test_picking_stops_only_when_the_reader_needs_whole_blocks(iterates):
    body = plain_frame(channel_event("CHANNEL_CREATE", "u-1", 1)).partition(b"\n\n")[2]
    picker = HeaderPicker()
    for _ in range(HeaderPicker.WINDOW):
        event = parse_plain_event(body, picker)
        event.get("Unique-ID")
        if iterates:
            dict(event)
    assert picker.enabled is not iterates
    assert (type(parse_plain_event(body, picker)) is PlainEvent) is iterates
    assert parse_plain_event(body, picker)["Unique-ID"] == "u-1"


# -- the header-block split ---------------------------------------------------

@pytest.mark.parametrize("block,headers", [
    ("A: 1\nB: 2", {"A": "1", "B": "2"}),
    ("A: 1\nB: 2\nA: 3", {"A": "3", "B": "2"}),                # the last one wins
    ("A: 1\nB:\nC: 3", {"A": "1", "B": "", "C": "3"}),         # "Name:" is an empty value
    ("A: x: y\nB: 2", {"A": "x: y", "B": "2"}),                 # only the first ": " splits
    ("noise\nA: 1", {"A": "1"}),                                # no separator: skipped
    ("", {}),
])
def test_header_block_lines(block, headers):
    assert parse_header_block(block) == headers
