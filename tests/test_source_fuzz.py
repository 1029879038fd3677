"""Property tests: mutated real frames through framing, decoding and mapping.

The frames are the real FreeSWITCH events of tests/captures/examples, plain
and json.  Mutations: byte flips, truncation, inserted junk, header values
swapped, json values of another type.  What must hold, for every stream:

- no exception leaves the reader: an event that cannot be read or mapped is
  reported (``on_malformed``) and skipped; only ``ProtocolError`` (framing
  that cannot be resynced) may end a connection;
- the reader keeps going: a good event after the bad ones still arrives;
- buffers stay bounded.

Bounded for CI: a few dozen examples each, a few seconds in all.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import gevent
import orjson
from helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_esl import RawEslServer

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig, SwitchConfig
from eslhook.mapping import channel_payload
from eslhook.source.esl import EslConnection
from eslhook.source.framing import (
    MAX_BODY_BYTES,
    MAX_FRAME_HEADER_BYTES,
    Frame,
    FrameReader,
    ProtocolError,
    split_frames,
)
from eslhook.source.parsing import HeaderPicker
from eslhook.source.switch import ReconnectPolicy, SwitchSource

# not from conftest: tests/compat has a conftest of its own, and which one a
# bare `import conftest` finds depends on what pytest collected first
CAPTURES = Path(__file__).resolve().parent / "captures"

EXAMPLES = sorted((CAPTURES / "examples").glob("*.raw"))
FRAMES = [split_frames(path.read_bytes())[0] for path in EXAMPLES]
ACCOUNTS = AccountDirectory([AccountConfig(id="4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5",
                                           realms=("127.0.0.1",))])
SENTINEL = "5e471ne1-0000-4000-8000-000000000000"
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def frame_bytes(content_type: str, body: bytes) -> bytes:
    return (b"Content-Length: %d\nContent-Type: %s\n\n" % (len(body), content_type.encode())
            + body)


def sentinel_frame() -> bytes:
    """The json CHANNEL_CREATE example, with its own Unique-ID."""
    frame = next(f for f in FRAMES if f.content_type == "text/event-json"
                 and b'"CHANNEL_CREATE"' in f.body)
    event = orjson.loads(frame.body)
    event["Unique-ID"] = SENTINEL
    return frame_bytes("text/event-json", orjson.dumps(event))


def map_like_the_bridge(event) -> None:
    """What Bridge.handle_event does with an event, short of delivery."""
    payload = channel_payload(event, switch="fs1", accounts=ACCOUNTS,
                              channel_variables=("*", "sip_h_X-*"))
    if payload is not None:
        orjson.dumps(payload)       # the spool and the request encode it


# -- mutations ---------------------------------------------------------------

MAPPED_NAMES = ("Event-Name", "Core-UUID", "Unique-ID", "Channel-Name", "Event-Sequence",
                "Event-Date-Timestamp", "Call-Direction", "variable_domain_name",
                "variable_sip_req_host", "variable_duration", "variable_is_loopback",
                "variable_sip_term_status", "Hangup-Cause", "variable_answer_epoch")
ODD_JSON_VALUES = st.one_of(
    st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False), st.none(), st.booleans(),
    st.lists(st.one_of(st.text(max_size=8), st.integers(0, 9)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.text(max_size=40), st.just("9" * 5000), st.just("\u00b2"))


@st.composite
def mutated_body(draw, frame) -> bytes:
    """The body of ``frame``, mutated one to three times."""
    body = bytes(frame.body)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("flip", "truncate", "junk", "swap", "retype", "retype")))
        at = draw(st.integers(0, max(0, len(body) - 1)))
        if kind == "flip" and body:
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
        elif kind == "truncate":
            body = body[:at]
        elif kind == "junk":
            junk = draw(st.one_of(st.binary(max_size=32), st.sampled_from(
                (b"\n\n", b": ", b"%", b"%0A", b"Content-Length: 99\n\n", b"\xff", b"{", b"]"))))
            body = body[:at] + junk + body[at:]
        elif kind in ("swap", "retype"):
            body = _edit_values(draw, body, frame.content_type, kind)
    return body


def _edit_values(draw, body: bytes, content_type: str, kind: str) -> bytes:
    if content_type == "text/event-json":
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(event, dict) or not event:
            return body
        names = sorted(event)
        # Mostly a header the mapping reads (or the source counts by).
        pick = st.one_of(st.sampled_from(MAPPED_NAMES), st.sampled_from(MAPPED_NAMES),
                         st.sampled_from(names))
        a, b = draw(pick), draw(pick)
        if kind == "swap":
            event[a], event[b] = event.get(b, ""), event.get(a, "")
        else:
            event[a] = draw(ODD_JSON_VALUES)
        return orjson.dumps(event)
    lines = body.split(b"\n")
    a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    name_a, sep_a, value_a = lines[a].partition(b": ")
    name_b, sep_b, value_b = lines[b].partition(b": ")
    if kind == "swap" and sep_a and sep_b:
        lines[a], lines[b] = name_a + b": " + value_b, name_b + b": " + value_a
    elif kind == "retype" and sep_a:
        value = draw(ODD_JSON_VALUES)
        lines[a] = name_a + b": " + (value if isinstance(value, str) else
                                     orjson.dumps(value).decode()).encode("utf-8", "replace")
    return b"\n".join(lines)


@st.composite
def bad_frames(draw) -> list[bytes]:
    """Real event frames, each body mutated, each framed with its true length."""
    frames = draw(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=4))
    return [frame_bytes(f.content_type, draw(mutated_body(f))) for f in frames]


NON_STRINGS = st.one_of(
    st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False), st.none(), st.booleans(),
    st.lists(st.one_of(st.text(max_size=8), st.integers(0, 9)), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
JSON_FRAMES = [f for f in FRAMES if f.content_type == "text/event-json"]


@st.composite
def retyped_frames(draw) -> list[bytes]:
    """Real json events, one header the mapping reads given another type each."""
    out = []
    for frame in draw(st.lists(st.sampled_from(JSON_FRAMES), min_size=1, max_size=4)):
        event = orjson.loads(frame.body)
        event[draw(st.sampled_from(MAPPED_NAMES))] = draw(NON_STRINGS)
        out.append(frame_bytes(frame.content_type, orjson.dumps(event)))
    return out


def chunked(data: bytes, seed: int) -> list[bytes]:
    rnd, chunks, at = random.Random(seed), [], 0
    while at < len(data):
        size = rnd.choice((1, 3, 64, 1000, 8192, 65536))
        chunks.append(data[at:at + size])
        at += size
    return chunks


# -- in process: framing + decoding + mapping ----------------------------------

def read_stream(chunks: list[bytes]) -> tuple[list, list[str], FrameReader, EslConnection]:
    """Feed chunks through FrameReader into an EslConnection's frame handling."""
    events, reasons = [], []

    def on_event(event):
        map_like_the_bridge(event)
        events.append(event)

    conn = EslConnection("127.0.0.1", 1, "ClueCon", on_event=on_event,
                         on_malformed=reasons.append)
    # the greeting a switch sends first: anything else first is "not an event socket"
    conn.handle_frame(Frame({"Content-Type": "auth/request"}, b""))
    reader = FrameReader()
    for chunk in chunks:
        reader.feed(chunk)
        for frame in reader.frames():
            conn.handle_frame(frame)
    return events, reasons, reader, conn


@FUZZ
@given(bad=st.one_of(bad_frames(), retyped_frames()), seed=st.integers(0, 2**16))
def test_mutated_events_are_skipped_and_a_good_one_after_them_arrives(bad, seed):
    data = b"".join(bad) + sentinel_frame()
    events, reasons, reader, conn = read_stream(chunked(data, seed))
    assert events and events[-1].get("Unique-ID") == SENTINEL
    assert len(events) + len(reasons) == len(bad) + 1   # each frame: an event or a report
    assert all(len(reason) < 1000 for reason in reasons)   # log lines stay short
    assert reader.buffered == 0
    assert len(conn.picker.names) <= HeaderPicker.MAX_NAMES


ODD_LENGTHS = ("\u00b2".encode(), "\u0663".encode(), b"9" * 5000, b"-1", b" 12", b"",
               b"%d" % (MAX_BODY_BYTES + 1), b"0", b"1", b"99999")


@st.composite
def mutated_stream(draw) -> bytes:
    """Whole frames, framing headers included, mutated at the byte level."""
    frames = draw(st.lists(st.sampled_from(EXAMPLES), min_size=1, max_size=3))
    data = bytearray(b"".join(path.read_bytes() for path in frames))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "junk", "cut", "length")))
        if kind == "length":       # an odd Content-Length in one frame header
            lengths = [m.span(1) for m in re.finditer(rb"Content-Length: ([^\n]*)", data)]
            if lengths:
                start, end = draw(st.sampled_from(lengths))
                data[start:end] = draw(st.sampled_from(ODD_LENGTHS))
        elif kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "junk":
            data[at:at] = draw(st.sampled_from(
                (b"\n\n", b"\n", b"7", b"0000", b"\xc2\xb2", b"Content-Length: ", b"x" * 70000)))
        else:
            del data[at:]
            break
    return bytes(data)


@FUZZ
@given(data=mutated_stream(), seed=st.integers(0, 2**16))
def test_mutated_framing_raises_nothing_but_protocol_error_and_stays_bounded(data, seed):
    events, reasons = [], []
    conn = EslConnection("127.0.0.1", 1, "ClueCon",
                         on_event=lambda e: (map_like_the_bridge(e), events.append(e)),
                         on_malformed=reasons.append)
    reader, biggest = FrameReader(), 0
    try:
        for chunk in chunked(data, seed):
            reader.feed(chunk)
            biggest = max(biggest, reader.buffered)
            for frame in reader.frames():
                conn.handle_frame(frame)     # never raises: asserted by reaching the end
    except ProtocolError as exc:
        assert "bad Content-Length" in str(exc) or "no end of frame header" in str(exc)
    # a pending body is refused past the cap; a header past its own
    assert biggest <= MAX_BODY_BYTES + MAX_FRAME_HEADER_BYTES + 65536


# -- through a real socket into a running SwitchSource ------------------------

@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.one_of(bad_frames(), retyped_frames()))
def test_mutated_events_over_a_socket_keep_the_switch_connected(bad):
    data = b"".join(bad) + sentinel_frame()
    expected_events, expected_reasons, _, _ = read_stream([data])
    got = []
    server = RawEslServer(chunked(data, len(data)), close_after=False).start()
    host, port = server.address
    source = SwitchSource(
        SwitchConfig(name="fs1", host=host, port=port, format="json"),
        lambda event, switch: (map_like_the_bridge(event), got.append(event)),
        policy=ReconnectPolicy(first_seconds=0.05, cap_seconds=0.2),
        liveness_check_seconds=0.05)
    runner = gevent.spawn(source.run)
    try:
        assert wait_until(lambda: any(e.get("Unique-ID") == SENTINEL for e in got), timeout=5)
        assert source.state.connected and source.state.connects == 1
        assert source.state.malformed == len(expected_reasons)
        heartbeats = sum(e.get("Event-Name") == "HEARTBEAT" for e in expected_events)
        assert len(got) == len(expected_events) - heartbeats
    finally:
        source.stop()
        runner.join(timeout=3)
        server.stop()
