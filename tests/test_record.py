"""``eslhook record`` against a running FakeSwitch (real sockets, real files)."""

from __future__ import annotations

import argparse
import logging
import os
import signal

import gevent
import gevent.pool
import pytest
from gevent.server import StreamServer
from helpers import free_port

from eslhook import record
from eslhook.fakeswitch import FakeSwitch
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event
from test_fakeswitch import JSON, PLAIN, RawClient, event_frames, handshake

TIMEOUT = 10.0
log = logging.getLogger(__name__)


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="eslhook")
    record.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["record", *argv])


def run_record(*argv: str) -> int:
    args = parse_args(*argv)
    return args.run(args)




def close_when_replayed(switch: FakeSwitch, group: gevent.pool.Group) -> None:
    """End the recording with EOF once the whole capture went out."""
    def closer():
        if switch.replay_done.wait(TIMEOUT):
            switch.disconnect_all()
    group.spawn(closer).link_exception(lambda g: log.error("closer died: %r", g.exception))


def address(switch: FakeSwitch) -> str:
    return "%s:%d" % switch.address


def test_recording_a_replay_gives_back_the_capture_bytes(switch_factory, tmp_path, capsys):
    switch = switch_factory(PLAIN)
    out = tmp_path / "rec.esl"
    group = gevent.pool.Group()
    close_when_replayed(switch, group)
    assert run_record("--out", str(out), "--switch", address(switch)) == 0
    group.join(timeout=TIMEOUT)
    # The default events are exactly those the trimmed capture holds.
    assert out.read_bytes() == PLAIN.read_bytes()
    assert "recorded %d events" % len(event_frames(PLAIN)) in capsys.readouterr().out
    assert not (tmp_path / "rec.esl.part").exists()


def test_a_recording_replays_the_same_events(switch_factory, tmp_path):
    first = switch_factory(PLAIN)
    out = tmp_path / "rec-json.esl"
    group = gevent.pool.Group()
    close_when_replayed(first, group)
    assert run_record("--out", str(out), "--switch", address(first), "--format", "json",
                      "--events", "CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE") == 0
    group.join(timeout=TIMEOUT)
    recorded = out.read_bytes()
    assert recorded.startswith(handshake("json"))
    wanted = [parse_event(f) for f, _ in event_frames(JSON)
              if parse_event(f)["Event-Name"] in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE")]
    # Replay the recording: a client gets the recorded bytes, the same events.
    second = switch_factory(out)
    client = RawClient(second.address)
    try:
        client.send("auth ClueCon")
        client.send("event json ALL")
        assert client.read_bytes(len(recorded)) == recorded
    finally:
        client.close()
    replayed = [parse_event(f) for f in split_frames(recorded)
                if f.content_type == "text/event-json"]
    assert [e["Event-Sequence"] for e in replayed] == [e["Event-Sequence"] for e in wanted]
    assert [e["Unique-ID"] for e in replayed] == [e["Unique-ID"] for e in wanted]


def test_wrong_password_exits_2_and_keeps_an_existing_file(switch_factory, tmp_path, capsys):
    switch = switch_factory(PLAIN)
    out = tmp_path / "keep.esl"
    out.write_bytes(b"precious")
    assert run_record("--out", str(out), "--switch", address(switch), "--password", "no") == 2
    assert "authentication failed" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [out]


def test_connection_refused_is_a_clear_error(tmp_path, capsys):
    port = free_port()
    out = tmp_path / "none.esl"
    assert run_record("--out", str(out), "--switch", "127.0.0.1:%d" % port) == 1
    assert "cannot connect to 127.0.0.1:%d" % port in capsys.readouterr().err
    assert not out.exists()


def test_duration_ends_the_recording(switch_factory, tmp_path):
    switch = switch_factory(heartbeat_seconds=0.05)  # no capture: heartbeats only
    out = tmp_path / "beats.esl"
    assert run_record("--out", str(out), "--switch", address(switch), "--duration", "0.4") == 0
    frames = split_frames(out.read_bytes())
    assert [f.content_type for f in frames[:3]] == ["auth/request", "command/reply",
                                                     "command/reply"]
    beats = [parse_event(f) for f in frames[3:]]
    assert beats and {b["Event-Name"] for b in beats} == {"HEARTBEAT"}


def test_sigint_ends_the_recording_and_keeps_what_came(switch_factory, tmp_path):
    switch = switch_factory(heartbeat_seconds=0.05)
    out = tmp_path / "int.esl"
    group = gevent.pool.Group()

    def interrupt():
        if switch.wait_for_subscribers(1, TIMEOUT):
            gevent.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
    group.spawn(interrupt).link_exception(lambda g: log.error("interrupt died: %r", g.exception))
    assert run_record("--out", str(out), "--switch", address(switch), "--duration", "30") == 0
    group.join(timeout=TIMEOUT)
    assert out.read_bytes().startswith(handshake("plain"))


@pytest.mark.parametrize("greeting,message", [
    (b"HTTP/1.0 400 Bad Request\r\n\r\n", "not an event socket"),
    (b"Content-Type: text/plain\n\n", "did not ask for auth"),
])
def test_a_peer_that_is_not_an_event_socket_is_refused(tmp_path, capsys, greeting, message):
    def http_like(sock, _address):
        sock.sendall(greeting)
        gevent.sleep(0.5)
        sock.close()

    server = StreamServer(("127.0.0.1", 0), http_like)
    server.start()
    try:
        out = tmp_path / "x.esl"
        assert run_record("--out", str(out), "--switch", "127.0.0.1:%d" % server.address[1]) == 1
    finally:
        server.stop(timeout=1)
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ("--out", "x.esl", "--duration", "-1"),
    ("--out", "x.esl", "--duration", "soon"),
    ("--out", "x.esl", "--switch", "localhost"),
    ("--out", "x.esl", "--format", "xml"),
    (),
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(*argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
