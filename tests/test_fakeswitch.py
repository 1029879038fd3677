"""The fake FreeSWITCH, driven over real sockets like a client would.

Byte layouts are checked against the real captures in tests/captures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest
from helpers import free_port

from eslhook.fakeswitch import CaptureError, FakeSwitch, ReplayPolicy, load_capture, parse_capture
from eslhook.fakeswitch.events import convert, parse_json, render_plain
from eslhook.source.framing import Frame, FrameReader, split_frames
from eslhook.source.parsing import parse_event

CAPTURES = Path(__file__).resolve().parent / "captures"
PLAIN = CAPTURES / "plain-single-calls.esl"
JSON = CAPTURES / "json-single-calls.esl"
GOODBYE_NOTICE = (b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                  b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")
IO_TIMEOUT = 5.0


# -- helpers -----------------------------------------------------------------
class RawClient:
    """A bare ESL client: raw bytes in, frames out, everything with timeouts."""

    def __init__(self, address, timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.reader = FrameReader()
        self.raw = bytearray()
        self.pending: list[Frame] = []
        self.eof = False

    def close(self):
        self.sock.close()

    def send(self, command: str) -> None:
        self.sock.sendall(command.encode() + b"\n\n")

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
        self.raw += data
        self.reader.feed(data)
        self.pending.extend(self.reader.frames())

    def frame(self, timeout: float = IO_TIMEOUT) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.pending:
            assert not self.eof, "connection closed while waiting for a frame"
            self._read(max(0.01, deadline - time.monotonic()))
        return self.pending.pop(0)

    def command(self, command: str) -> Frame:
        self.send(command)
        return self.frame()

    def login(self, password: str = "ClueCon") -> None:
        assert self.frame().content_type == "auth/request"
        assert self.command("auth " + password).headers["Reply-Text"] == "+OK accepted"

    def events(self, count: int, timeout: float = IO_TIMEOUT) -> list[Frame]:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            frame = self.frame(max(0.01, deadline - time.monotonic()))
            if frame.content_type.startswith("text/event-"):
                got.append(frame)
        return got

    def read_until_eof(self, timeout: float = IO_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.eof:
            assert time.monotonic() < deadline, "no EOF in time"
            self._read(max(0.01, deadline - time.monotonic()))
        return bytes(self.raw)

    def read_bytes(self, total: int, timeout: float = IO_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.raw) < total and not self.eof:
            assert time.monotonic() < deadline, "only %d of %d bytes" % (len(self.raw), total)
            self._read(max(0.01, deadline - time.monotonic()))
        return bytes(self.raw)


def raw_frames(data: bytes) -> list[tuple[Frame, bytes]]:
    """(frame, its exact bytes) for every frame of a capture."""
    out, start = [], 0
    reader = FrameReader()
    reader.feed(data)
    for frame in reader.frames():
        end = data.index(b"\n\n", start) + 2 + len(frame.body)
        out.append((frame, data[start:end]))
        start = end
    return out


def event_frames(path: Path) -> list[tuple[Frame, bytes]]:
    return [(f, raw) for f, raw in raw_frames(path.read_bytes())
            if f.content_type.startswith("text/event-")]


def handshake(fmt: str) -> bytes:
    return (b"Content-Type: auth/request\n\n"
            b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled %s\n\n"
            % fmt.encode())


def capture_of(tmp_path: Path, name: str, frames: list[bytes], fmt: str = "plain") -> Path:
    path = tmp_path / name
    path.write_bytes(handshake(fmt) + b"".join(frames))
    return path




@pytest.fixture
def clients():
    opened = []

    def connect(switch: FakeSwitch) -> RawClient:
        client = RawClient(switch.address)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


# -- handshake and auth ------------------------------------------------------
def test_handshake_and_api_reply_bytes_equal_the_real_capture(switch_factory, clients):
    switch = switch_factory()
    client = clients(switch)
    client.send("auth ClueCon")
    client.send("api no_such_command")
    real = (CAPTURES / "api-unknown-command-reply.raw").read_bytes()
    assert client.read_bytes(len(real)) == real


def test_wrong_password_gets_err_invalid_then_the_goodbye_notice(switch_factory, clients):
    client = clients(switch_factory())
    client.send("auth NotThePassword")
    assert client.read_until_eof() == (
        b"Content-Type: auth/request\n\n"
        b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n" + GOODBYE_NOTICE)


def test_commands_before_auth_are_refused_and_auth_still_works(switch_factory, clients):
    switch = switch_factory(PLAIN)
    client = clients(switch)
    assert client.frame().content_type == "auth/request"
    for command in ("api status", "event plain ALL", "bgapi status"):
        assert client.command(command).headers["Reply-Text"] == "-ERR command not found"
    assert client.command("auth ClueCon").headers["Reply-Text"] == "+OK accepted"
    assert client.command("api uuid_exists x").body == b"false"


def test_telnet_line_endings_are_accepted(switch_factory, clients):
    client = clients(switch_factory())
    assert client.frame().content_type == "auth/request"
    client.sock.sendall(b"auth ClueCon\r\n\r\n")
    assert client.frame().headers["Reply-Text"] == "+OK accepted"


def test_exit_says_bye_then_the_67_byte_notice_and_closes(switch_factory, clients):
    client = clients(switch_factory())
    client.send("auth ClueCon")
    client.send("exit")
    assert client.read_until_eof() == (CAPTURES / "client-exit.raw").read_bytes()


# -- replay ------------------------------------------------------------------
@pytest.mark.parametrize("path,fmt", [(PLAIN, "plain"), (JSON, "json")])
def test_replay_in_the_recorded_format_is_byte_exact(switch_factory, clients, path, fmt):
    switch = switch_factory(path)
    client = clients(switch)
    client.send("auth ClueCon")
    client.send("event %s ALL" % fmt)
    recorded = path.read_bytes()  # same handshake, then every event as recorded
    assert client.read_bytes(len(recorded)) == recorded
    assert switch.replay_done.wait(IO_TIMEOUT)
    assert switch.events_sent == len(event_frames(path))


def test_json_replayed_as_plain_equals_the_plain_recorded_alongside(switch_factory, clients):
    # The two captures were recorded at once from one switch: FreeSWITCH's
    # own json -> plain serialisation must be reproduced byte for byte.
    switch = switch_factory(JSON)
    client = clients(switch)
    client.send("auth ClueCon")
    client.send("event plain ALL")
    recorded_plain = PLAIN.read_bytes()
    assert client.read_bytes(len(recorded_plain)) == recorded_plain


def _plain_mangles(value: str) -> bool:
    # switch_url_encode keeps an existing %XX, so decoding changes it.
    return re.search(r"%[0-9A-F]{2}", value) is not None


def test_plain_replayed_as_json_parses_like_the_json_recorded_alongside(switch_factory, clients):
    switch = switch_factory(PLAIN)
    client = clients(switch)
    client.login()
    assert client.command("event json ALL").headers["Reply-Text"] == (
        "+OK event listener enabled json")
    expected = [parse_event(f) for f, _ in event_frames(JSON)]
    got = [parse_event(f) for f in client.events(len(expected))]
    mangled = 0
    for want, have in zip(expected, got, strict=True):
        differing = {k for k in want if want[k] != have.get(k)}
        assert set(have) == set(want)
        assert all(_plain_mangles(want[k]) for k in differing), differing
        mangled += len(differing)
    assert mangled > 0  # the 1005 call's unicode_custom ("... %41 ...") is in there


def test_json_to_plain_and_back_keeps_every_value_but_literal_percent_codes():
    for frame, _ in event_frames(JSON):
        original = parse_event(frame)
        plain = convert(frame.body, "json", "plain")
        back = parse_event(Frame({"Content-Type": "text/event-plain"}, plain))
        assert set(back) == set(original)
        for key, value in original.items():
            assert back[key] == value or _plain_mangles(value), key


def test_inner_body_is_rendered_like_a_real_background_job():
    data = parse_json(b'{"Event-Name":"BACKGROUND_JOB","Job-Command":"originate",'
                      b'"Content-Length":"15","_body":"-ERR USER_BUSY\\n"}')
    assert render_plain(data) == (b"Event-Name: BACKGROUND_JOB\nJob-Command: originate\n"
                                  b"Content-Length: 15\n\n-ERR USER_BUSY\n")


def test_only_subscribed_events_are_sent(switch_factory, clients):
    switch = switch_factory(PLAIN)
    client = clients(switch)
    client.login()
    client.command("event plain CHANNEL_ANSWER")
    answers = [raw for f, raw in event_frames(PLAIN)
               if parse_event(f)["Event-Name"] == "CHANNEL_ANSWER"]
    assert switch.replay_done.wait(IO_TIMEOUT)
    got = client.events(len(answers))
    assert [g.body for g in got] == [raw.split(b"\n\n", 1)[1] for raw in answers]
    client.send("api uuid_exists nothing")  # a reply after the last event: nothing else came
    assert client.frame().content_type == "api/response"


def test_filter_passes_only_matching_events(switch_factory, clients):
    uuid = "0d2ca66c-0caf-4300-a774-4602bb2132dc"  # the 1005 call
    switch = switch_factory(JSON)
    client = clients(switch)
    client.login()
    reply = client.command("filter Unique-ID " + uuid)
    assert reply.headers["Reply-Text"] == "+OK filter added. [Unique-ID]=[%s]" % uuid
    client.command("event json ALL")
    wanted = [f for f, _ in event_frames(JSON) if parse_event(f).get("Unique-ID") == uuid]
    assert len(wanted) == 3
    assert switch.replay_done.wait(IO_TIMEOUT)
    assert [f.body for f in client.events(len(wanted))] == [f.body for f in wanted]
    assert client.command("api uuid_exists " + uuid).body == b"false"  # nothing else queued


def test_event_command_errors_and_noevents_nixevent_replies(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    assert client.command("event plain NOT_AN_EVENT").headers["Reply-Text"] == (
        "-ERR no keywords supplied")
    assert client.command("noevents").headers["Reply-Text"] == "-ERR not listening for events"
    assert client.command("event plain HEARTBEAT").headers["Reply-Text"] == (
        "+OK event listener enabled plain")
    assert client.command("nixevent HEARTBEAT").headers["Reply-Text"] == "+OK events nixed"
    assert client.command("noevents").headers["Reply-Text"] == (
        "+OK no longer listening for events")
    assert client.command("filter Unique-ID").headers["Reply-Text"] == "-ERR invalid syntax"
    assert client.command("no_such_command").headers["Reply-Text"] == "-ERR command not found"
    assert client.command("sendmsg").headers["Reply-Text"] == "-ERR invalid session id []"


# -- api / bgapi ---------------------------------------------------------------
def test_show_channels_idle_is_byte_exact(switch_factory, clients):
    client = clients(switch_factory(PLAIN))
    client.send("auth ClueCon")
    client.send("api show channels as json")
    real = (CAPTURES / "api-show-channels-as-json-idle.raw").read_bytes()
    assert client.read_bytes(len(real)) == real


def test_status_and_version_replies(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    status = client.command("api status")
    assert list(status.headers) == ["Content-Type", "Content-Length"]
    assert int(status.headers["Content-Length"]) == len(status.body)
    assert status.body.startswith(b"UP 0 years, 0 days, 0 hours, 0 minutes")
    assert b"is ready\n" in status.body
    real_version = split_frames((CAPTURES / "api-version.raw").read_bytes())[-1]
    assert client.command("api version") == real_version


def test_show_channels_lists_calls_created_and_not_yet_hung_up(switch_factory, clients,
                                                               tmp_path):
    frames = event_frames(PLAIN)[:12]  # a few calls, some hung up, some still up
    live, gone = [], []
    for frame, _ in frames:
        event = parse_event(frame)
        if event["Event-Name"] == "CHANNEL_CREATE":
            live.append(event["Unique-ID"])
        elif event["Event-Name"] == "CHANNEL_HANGUP_COMPLETE":
            live.remove(event["Unique-ID"])
            gone.append(event["Unique-ID"])
    assert live and gone
    switch = switch_factory(capture_of(tmp_path, "part.esl", [raw for _, raw in frames]))
    client = clients(switch)
    client.login()
    client.command("event plain HEARTBEAT")  # runs the timeline; sends none of these
    assert switch.replay_done.wait(IO_TIMEOUT)
    reply = client.command("api show channels as json")
    shown = json.loads(reply.body)
    real = json.loads(split_frames((CAPTURES / "api-show-channels-as-json.raw").read_bytes())[-1].body)
    assert shown["row_count"] == len(live)
    assert [row["uuid"] for row in shown["rows"]] == live
    assert all(list(row) == list(real["rows"][0]) for row in shown["rows"])
    assert client.command("api uuid_exists " + live[0]).body == b"true"
    assert client.command("api uuid_exists " + gone[0]).body == b"false"


def test_bgapi_replies_with_job_uuid_then_a_background_job_event(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    client.command("event json BACKGROUND_JOB")
    reply = client.command("bgapi uuid_exists 1234")
    job = reply.headers["Job-UUID"]
    real = split_frames((CAPTURES / "bgapi-reply.raw").read_bytes())[-1]
    assert list(reply.headers) == list(real.headers)
    assert reply.headers["Reply-Text"] == "+OK Job-UUID: " + job
    event = parse_event(client.events(1)[0])
    assert (event["Event-Name"], event["Job-UUID"], event["Job-Command"],
            event["Job-Command-Arg"], event["_body"]) == (
        "BACKGROUND_JOB", job, "uuid_exists", "1234", "false")


def test_bgapi_result_in_plain_carries_an_inner_body(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    client.command("event plain BACKGROUND_JOB")
    client.command("bgapi no_such_thing")
    frame = client.events(1)[0]
    result = b"-ERR no_such_thing Command not found!\n"
    assert frame.body.endswith(b"\nContent-Length: %d\n\n%s" % (len(result), result))
    assert parse_event(frame)["_body"] == result.decode()


# -- heartbeats and loops ------------------------------------------------------
def test_heartbeats_are_generated_with_the_switch_core_uuid(switch_factory, clients):
    switch = switch_factory(heartbeat_seconds=0.05)
    client = clients(switch)
    client.login()
    client.command("event json HEARTBEAT")
    beats = [parse_event(f) for f in client.events(2)]
    assert {b["Core-UUID"] for b in beats} == {switch.core_uuid}
    assert int(beats[1]["Event-Sequence"]) > int(beats[0]["Event-Sequence"])
    assert beats[0]["Event-Info"] == "System Ready"


ID_HEADERS = ("Unique-ID", "Channel-Call-UUID", "Other-Leg-Unique-ID", "variable_uuid",
              "variable_call_uuid")


def test_loop_gives_each_iteration_new_ids_and_later_sequence_and_time(switch_factory,
                                                                        clients, tmp_path):
    frames = event_frames(PLAIN)[:6]  # one bridged loopback call: 2 legs, 6 events
    switch = switch_factory(capture_of(tmp_path, "call.esl", [raw for _, raw in frames]),
                            loop=True)
    client = clients(switch)
    client.login()
    client.command("event plain ALL")
    got = [parse_event(f) for f in client.events(18)]  # three iterations
    first, second, third = got[:6], got[6:12], got[12:]
    for a, b in zip(first, second):
        assert a["Event-Name"] == b["Event-Name"]
        assert a["Core-UUID"] == b["Core-UUID"] == switch.core_uuid
        for name in ID_HEADERS:
            if name in a:
                assert a[name] != b[name], name
        assert int(b["Event-Date-Timestamp"]) > int(a["Event-Date-Timestamp"])
    sequences = [int(e["Event-Sequence"]) for e in got]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    # Within an iteration the two legs still point at each other.
    legs = {e["Unique-ID"] for e in second}
    assert len(legs) == 2 and {e["variable_other_loopback_leg_uuid"] for e in second
                               if "variable_other_loopback_leg_uuid" in e} <= legs
    assert not legs & {e["Unique-ID"] for e in first + third}


# -- fault injection -----------------------------------------------------------
def test_drop_mid_frame_cuts_the_next_event_then_the_timeline_goes_on(switch_factory, clients):
    switch = switch_factory(PLAIN)
    frames = event_frames(PLAIN)
    switch.drop_mid_frame()
    client = clients(switch)
    client.login()
    client.send("event plain ALL")
    received = client.read_until_eof()
    cut = received[len(handshake("plain")):]
    first_event = frames[0][1]
    assert 0 < len(cut) < len(first_event) and first_event.startswith(cut)
    assert len(cut) > first_event.index(b"\n\n") + 2  # the header got through, not the body
    again = clients(switch)
    again.login()
    again.command("event plain ALL")
    assert again.events(1)[0].body == frames[1][0].body  # the cut event is lost, like live


def test_send_garbage_reaches_every_connection(switch_factory, clients):
    switch = switch_factory()
    one, two = clients(switch), clients(switch)
    assert switch.wait_for_clients(2)
    one.frame(), two.frame()
    switch.send_garbage(b"\x00garbage\xff")
    for client in (one, two):
        assert client.read_bytes(len(b"Content-Type: auth/request\n\n") + 9)[-9:] == (
            b"\x00garbage\xff")


def test_stall_holds_every_write_until_it_ends(switch_factory, clients):
    switch = switch_factory()
    client = clients(switch)
    client.login()
    switch.stall(1.0)
    client.send("api uuid_exists x")
    with pytest.raises(socket.timeout):
        client.frame(timeout=0.3)
    assert client.frame(timeout=IO_TIMEOUT).body == b"false"


def test_disconnect_all_closes_without_a_notice(switch_factory, clients):
    switch = switch_factory()
    client = clients(switch)
    client.login()
    switch.disconnect_all()
    assert client.read_until_eof().endswith(b"Reply-Text: +OK accepted\n\n")
    assert _eventually(lambda: switch.connections == 0)


def test_restart_changes_core_uuid_and_the_events_continue(switch_factory, clients):
    # 49 s of calls in ~1.5 s: slow enough that most are still to come at restart.
    switch = switch_factory(JSON, speed=30.0)
    recorded = [parse_event(f) for f, _ in event_frames(JSON)]
    old_core = switch.core_uuid
    client = clients(switch)
    client.login()
    client.command("event json ALL")
    before = [parse_event(f) for f in client.events(3)]
    switch.restart()
    client.read_until_eof()
    assert switch.core_uuid != old_core
    again = clients(switch)
    again.login()
    again.command("event json ALL")
    assert switch.replay_done.wait(IO_TIMEOUT)
    again.send("api uuid_exists x")
    after = []
    for _ in range(len(recorded) + 1):  # bounded: at most every event, then the reply
        frame = again.frame()
        if frame.content_type == "api/response":
            break
        after.append(parse_event(frame))
    assert {e["Core-UUID"] for e in before} == {old_core}
    assert after and {e["Core-UUID"] for e in after} == {switch.core_uuid}
    sequences = [e["Event-Sequence"] for e in recorded]
    resumed_at = sequences.index(after[0]["Event-Sequence"])
    assert resumed_at >= 3
    assert [e["Event-Sequence"] for e in after] == sequences[resumed_at:]


def _two_events_half_a_second_apart(tmp_path) -> Path:
    frames = event_frames(PLAIN)
    gap_us = int(parse_event(frames[4][0])["Event-Date-Timestamp"]) - int(
        parse_event(frames[3][0])["Event-Date-Timestamp"])
    assert gap_us > 0
    return capture_of(tmp_path, "two.esl", [frames[3][1], frames[4][1]]), gap_us / 1e6 / 0.5


def test_timeline_pauses_while_nobody_listens(switch_factory, clients, tmp_path):
    path, factor = _two_events_half_a_second_apart(tmp_path)
    switch = switch_factory(path, speed=factor)
    client = clients(switch)
    client.login()
    client.command("event plain ALL")
    client.events(1)
    client.close()
    assert not switch.replay_done.wait(1.0)  # the second event waits for a listener
    again = clients(switch)
    again.login()
    again.command("event plain ALL")
    assert again.events(1)[0].body == event_frames(path)[1][0].body
    assert switch.replay_done.wait(IO_TIMEOUT)


def test_lose_events_while_disconnected_lets_the_timeline_run_on(switch_factory, clients,
                                                                  tmp_path):
    path, factor = _two_events_half_a_second_apart(tmp_path)
    switch = switch_factory(path, speed=factor)
    switch.lose_events_while_disconnected()
    client = clients(switch)
    client.login()
    client.command("event plain ALL")
    client.events(1)
    client.close()
    assert switch.replay_done.wait(IO_TIMEOUT)
    assert switch.events_sent == 1


def test_a_capture_ending_in_a_shutdown_notice_sends_it_and_closes(switch_factory, clients):
    path = CAPTURES / "shutdown-plain.esl"
    switch = switch_factory(path)
    client = clients(switch)
    client.send("auth ClueCon")
    client.send("event plain ALL")
    assert client.read_until_eof() == path.read_bytes()


def _eventually(condition, timeout: float = IO_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


# -- bad input -------------------------------------------------------------------
@pytest.mark.parametrize("data,message", [
    (b"", "no events"),
    (b"just some text without frames\n\n", "unexpected Content-Type"),
    (b"Content-Length: nope\n\n", "not an ESL capture"),
    (GOODBYE_NOTICE + b"Content-Type: auth/request\n\n", "after the disconnect notice"),
    (b"Content-Length: 5\nContent-Type: text/event-json\n\n[1,2]", "not an object"),
])
def test_bad_capture_is_refused_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bad.esl"
    path.write_bytes(data)
    with pytest.raises(CaptureError, match=message) as info:
        load_capture(path)
    assert str(path) in str(info.value)


def test_missing_capture_file_is_a_clear_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot read capture"):
        FakeSwitch([tmp_path / "nope.esl"])


def test_a_cut_last_frame_in_a_capture_is_ignored(tmp_path):
    data = PLAIN.read_bytes()
    capture = parse_capture(data[:-100], "cut.esl")
    assert len(capture.events) == len(event_frames(PLAIN)) - 1


@pytest.mark.parametrize("options,field", [
    ({"speed": "fast"}, "speed"), ({"speed": 0}, "speed"), ({"speed": "nan"}, "speed"),
    ({"heartbeat_seconds": -1}, "heartbeat_seconds"), ({"loop": "yes"}, "loop"),
])
def test_bad_replay_options_name_the_field(options, field):
    with pytest.raises(ValueError, match=field):
        ReplayPolicy(**options)


# -- the command line -----------------------------------------------------------
def _run_cli(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.Popen([sys.executable, "-m", "eslhook.fakeswitch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_cli_serves_until_sigterm(tmp_path):
    port = free_port()
    proc = _run_cli(str(PLAIN), "--listen", "127.0.0.1:%d" % port, "--password", "s3cret")
    try:
        line = proc.stdout.readline().decode()
        assert "listening on 127.0.0.1:%d" % port in line and "s3cret" not in line
        client = RawClient(("127.0.0.1", port))
        client.login("s3cret")
        client.command("event plain CHANNEL_CREATE")
        assert parse_event(client.events(1)[0])["Event-Name"] == "CHANNEL_CREATE"
        client.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert b"stopped" in out
    assert b"client 127.0.0.1:" in err  # connections are logged


def test_cli_with_a_bad_capture_exits_2_naming_it(tmp_path):
    proc = _run_cli(str(tmp_path / "missing.esl"), "--listen", "127.0.0.1:0")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert b"missing.esl" in err and b"cannot read capture" in err
