"""Framing and event decoding on odd input (pure: no sockets).

What cannot be read is either one event (ValueError: skipped, the stream goes
on) or the framing itself (ProtocolError: the connection must go).
"""

import random
import tracemalloc

import orjson
import pytest

from eslhook.source.framing import (

    BIG_BODY_BYTES,

    MAX_BODY_BYTES,

    FrameReader,

    ProtocolError,

    byte_count,

    split_frames,

)

from eslhook.source.parsing import HeaderPicker, parse_json_event, parse_plain_event

RECV_BYTES = 256 * 1024      # what the ESL reader asks the socket for

JSON_EVENT = {"Event-Name": "CHANNEL_CREATE", "Core-UUID": "c0de", "Unique-ID": "u-1",
              "Channel-Name": "sofia/internal/1000@127.0.0.1",
              "Event-Date-Timestamp": "1795908306887812"}


def json_body(**values) -> bytes:
    return orjson.dumps({**JSON_EVENT, **values})


# -- Content-Length ----------------------------------------------------------

@pytest.mark.parametrize("length", ["\u00b2", "\u0663", "9" * 5000, " 12", "-1", "1_0", "",
                                    str(MAX_BODY_BYTES + 1)])
def test_a_content_length_not_of_ascii_digits_is_a_protocol_error(length):
    # "²".isdigit() is True and int("²") raised ValueError out of the reader;
    # 5000 digits made int() raise too.  Where the next frame starts is then
    # unknown: ProtocolError, the one exception that ends a connection.
    reader = FrameReader()
    reader.feed(("Content-Length: %s\nContent-Type: text/event-json\n\n{}" % length).encode())
    with pytest.raises(ProtocolError, match="bad Content-Length"):
        list(reader.frames())


def test_byte_count_takes_ascii_digits_only():
    assert [byte_count(v) for v in ("0", "007", "65536")] == [0, 7, 65536]
    assert [byte_count(v) for v in (None, "", "\u00b2", "+1", "1e3", "1.0")] == [None] * 6


@pytest.mark.parametrize("picked", [False, True])
def test_an_inner_content_length_of_a_unicode_digit_is_not_a_body(picked):
    # The inner Content-Length of a plain event was checked with isdigit()
    # and int() raised, lazily for a picked event: inside the mapping.
    body = b"Event-Name: BACKGROUND_JOB\nContent-Length: \xc2\xb2\n\n+OK"
    picker = HeaderPicker() if picked else None
    if picker:
        picker.learn("Event-Name")
    event = parse_plain_event(body, picker)
    assert event["Event-Name"] == "BACKGROUND_JOB"
    assert event.get("_body") is None and event["Content-Length"] == "\u00b2"


# -- json values -------------------------------------------------------------

@pytest.mark.parametrize("name,value", [
    ("Event-Name", ["CHANNEL_CREATE", 1]),
    ("Channel-Name", 12),
    ("Event-Date-Timestamp", 1795908306887812),
    ("Unique-ID", {"a": "b"}),
    ("Unique-ID", None),
    ("Caller-Caller-ID-Name", True),
    ("variable_x", 1.5),
])
def test_a_json_value_that_is_not_a_string_makes_the_event_malformed(name, value):
    with pytest.raises(ValueError, match="value of %r is" % name):
        parse_json_event(json_body(**{name: value}))


def test_a_json_array_of_strings_reads_as_plain_sends_it():
    # FreeSWITCH's array headers: a json array, "ARRAY::a|:b" in plain.
    event = parse_json_event(json_body(variable_list=["a", "b c"], variable_one=["x"]))
    assert event["variable_list"] == "ARRAY::a|:b c"
    assert event["variable_one"] == "ARRAY::x"
    assert event["Unique-ID"] == "u-1"


@pytest.mark.parametrize("body", [
    b'{"a":' * 100_000 + b'"x"' + b"}" * 100_000,     # the stdlib recursed out
    b"[" * 100_000 + b"]" * 100_000,
    b'{"Event-Name":"CHANNEL_CREATE","variable_x":"\\ud800"}',   # a lone surrogate
    b'{"Event-Name":"CHANNEL_CREATE","variable_x":NaN}',
])
def test_json_nested_deep_or_not_text_is_a_malformed_event(body):
    # 100,000 levels raised RecursionError (not ValueError) from the stdlib
    # fallback; a lone surrogate became a str nothing can encode later.
    with pytest.raises(ValueError):
        parse_json_event(body)


def test_a_json_body_with_invalid_utf8_is_still_read():
    event = parse_json_event(json_body(variable_name="caf\u00e9").replace(
        "caf\u00e9".encode(), b"caf\xff"))
    assert event["variable_name"] == "caf\ufffd"


# -- big frames --------------------------------------------------------------

def frame_of(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body


def test_a_big_body_split_anywhere_reads_the_same_as_whole():
    big = json_body(variable_blob="x" * (3 * BIG_BODY_BYTES))
    small = json_body()
    data = frame_of(small) + frame_of(big) + frame_of(small) + frame_of(big)
    whole = split_frames(data)
    for seed in range(5):
        rnd, reader, got, at = random.Random(seed), FrameReader(), [], 0
        while at < len(data):
            size = rnd.choice((1, 7, 4096, RECV_BYTES, 3 * RECV_BYTES))
            reader.feed(data[at:at + size])
            at += size
            got.extend(reader.frames())
        assert got == whole and reader.buffered == 0
    assert [len(f.body) for f in whole] == [len(small), len(big)] * 2


def test_one_big_frame_costs_about_its_size_in_memory():
    # A 50 MB frame cost ~150 MB: the buffer, a bytearray slice of it and
    # the bytes made from that slice.  Read as the socket hands it over.
    body = json_body(variable_blob="x" * (20 * 1024 * 1024))
    data = frame_of(body)
    chunks = [data[at:at + RECV_BYTES] for at in range(0, len(data), RECV_BYTES)]
    reader, sizes = FrameReader(), []
    tracemalloc.start()
    try:
        for chunk in chunks:
            reader.feed(chunk)
            sizes.extend(len(frame.body) for frame in reader.frames())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sizes == [len(body)]
    assert peak < 1.5 * len(data), "peak %.2fx the frame" % (peak / len(data))
