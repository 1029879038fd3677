"""The ESL source against the fake switch over real TCP.

One test (at least) per greenswitch 0.0.19 defect that eslhook fixes, plus
reconnection, wrong password, liveness and Core-UUID changes.
"""

import logging
import time

import gevent
import greenswitch.esl
import orjson
import pytest
from helpers import channel_event, plain_frame, wait_until
from raw_esl import RawEslServer

from eslhook.config import SwitchConfig
from eslhook.source.esl import CommandTimeout, EslConnection, NotConnectedError
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event
from eslhook.source.switch import (
    MAX_EVENT_NAME_LENGTH,
    MAX_EVENT_NAMES,
    ReconnectPolicy,
    SwitchSource,
)

FAST = ReconnectPolicy(first_seconds=0.05, cap_seconds=0.2)


@pytest.fixture
def source_factory():
    sources, group = [], gevent.pool.Group()

    def make(fake, fmt="json", password="ClueCon", **config):
        host, port = fake.address
        events = []
        cfg = SwitchConfig(name="fs1", host=host, port=port, password=password,
                           format=fmt, **config)
        source = SwitchSource(cfg, lambda event, switch: events.append(event),
                              policy=FAST, liveness_check_seconds=0.05)
        source.events = events
        sources.append(source)
        group.spawn(source.run)
        return source

    yield make
    for source in sources:
        source.stop()
    group.join(timeout=5)
    group.kill()


def capture_events(path, names=("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")):
    events = [parse_event(f) for f in split_frames(path.read_bytes())]
    return [e for e in events if e is not None and e.get("Event-Name") in names]


# -- formats ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_every_subscribed_event_arrives_in_either_format(switch_factory, source_factory,
                                                         captures, fmt):
    # greenswitch defect 2: `event json` killed its reader while `connected`
    # stayed True.  Here json (and plain) events all arrive, in order.
    capture = captures / "json-single-calls.esl"
    expected = capture_events(capture)
    fake = switch_factory(capture)
    source = source_factory(fake, fmt=fmt)
    assert wait_until(lambda: len(source.events) == len(expected))
    got = [(e["Event-Name"], e["Unique-ID"], e["Event-Sequence"]) for e in source.events]
    assert got == [(e["Event-Name"], e["Unique-ID"], e["Event-Sequence"]) for e in expected]
    assert source.state.connected and source.state.connects == 1
    # HEARTBEATs are consumed by the source (liveness, Core-UUID), not passed on.
    assert all(e["Event-Name"] != "HEARTBEAT" for e in source.events)


def test_plain_capture_converted_to_json_gives_the_same_headers(switch_factory,
                                                                source_factory, captures):
    capture = captures / "plain-single-calls.esl"
    expected = capture_events(captures / "json-single-calls.esl")
    fake = switch_factory(capture)
    source = source_factory(fake, fmt="json")
    assert wait_until(lambda: len(source.events) == len(expected))
    differing = [k for a, b in zip(source.events, expected) for k in b if a.get(k) != b[k]]
    # Only the values the plain format itself mangles differ (a literal %41).
    assert set(differing) <= {"variable_unicode_custom", "variable_current_application_data",
                              "Application-Data"}


# -- framing defects -------------------------------------------------------

def test_encoded_newline_does_not_fabricate_headers(switch_factory, source_factory, tmp_path):
    # greenswitch defect 4: it URL-decoded the whole block before splitting
    # lines, so this value became a header "Evil-Header: yes".
    evil = "a%0AEvil-Header%3A%20yes%0D%0Ab"
    capture = tmp_path / "evil.esl"
    capture.write_bytes(plain_frame(channel_event(
        "CHANNEL_CREATE", "u-1", 1, [("variable_note", evil)])))
    upstream = greenswitch.esl.ESLEvent(
        "Event-Name: CHANNEL_CREATE\nvariable_note: %s\n" % evil)
    assert upstream.headers["Evil-Header"].startswith("yes")  # the defect, upstream

    fake = switch_factory(capture)
    source = source_factory(fake, fmt="plain")
    assert wait_until(lambda: len(source.events) == 1)
    event = source.events[0]
    assert event["variable_note"] == "a\nEvil-Header: yes\r\nb"
    assert "Evil-Header" not in event


def test_inner_body_is_kept_apart_from_headers(switch_factory, tmp_path):
    # greenswitch defect 5: an event's own body was glued into its last header.
    capture = tmp_path / "job.esl"
    job = [("Event-Name", "BACKGROUND_JOB"), ("Core-UUID", "c0de"),
           ("Job-UUID", "af4da630-b997-40c3-a7cb-16edfc2b773e"), ("Job-Command", "status")]
    capture.write_bytes(plain_frame(job, b"+OK line one\nKey: not a header\n"))
    fake = switch_factory(capture)
    events = []
    conn = EslConnection(*fake.address, "ClueCon", on_event=events.append)
    conn.connect()
    try:
        assert conn.send("event plain BACKGROUND_JOB").ok
        assert wait_until(lambda: events)
    finally:
        conn.stop()
    event = events[0]
    assert event["Job-Command"] == "status"
    assert event["_body"] == "+OK line one\nKey: not a header\n"
    assert "Key" not in event


def test_invalid_utf8_does_not_kill_the_reader(switch_factory, source_factory, tmp_path):
    # greenswitch defect 6: one undecodable byte ended the reader greenlet.
    bad = plain_frame(channel_event("CHANNEL_CREATE", "u-1", 1,
                                    [("variable_name", "caf\xe9")]))
    bad = bad.replace("caf\xe9".encode(), b"caf\xff\xfe")  # same length, invalid UTF-8
    good = plain_frame(channel_event("CHANNEL_ANSWER", "u-1", 2))
    capture = tmp_path / "utf8.esl"
    capture.write_bytes(bad + good)
    fake = switch_factory(capture)
    source = source_factory(fake, fmt="plain")
    assert wait_until(lambda: len(source.events) == 2)
    assert source.events[0]["variable_name"] == "caf\ufffd\ufffd"
    assert source.events[1]["Event-Name"] == "CHANNEL_ANSWER"
    assert source.state.connects == 1


def first_event_frame(path, containing: bytes) -> bytes:
    """The raw bytes of the first event frame of a capture holding ``containing``."""
    data, start = path.read_bytes(), 0
    for frame in split_frames(data):
        end = data.index(b"\n\n", start) + 2 + len(frame.body)
        if containing in frame.body:
            return data[start:end]
        start = end
    raise LookupError(containing)


def test_invalid_utf8_in_a_json_event_is_replaced_not_fatal(switch_factory, source_factory,
                                                            captures, tmp_path):
    # The 1005 call's variable "café ..." with the é made invalid UTF-8 (same
    # length).  orjson refuses such a body; the event must still arrive, as
    # the stdlib decoder reads it (replacement characters).
    good = first_event_frame(captures / "json-single-calls.esl", "café".encode())
    bad = good.replace("café".encode(), b"caf\xff\xfe")
    with pytest.raises(orjson.JSONDecodeError):   # the fallback path is the one tested
        orjson.loads(split_frames(bad)[0].body)
    capture = tmp_path / "utf8.esl"
    capture.write_bytes(bad)
    fake = switch_factory(capture)
    source = source_factory(fake, fmt="json")
    assert wait_until(lambda: len(source.events) == 1)
    event, expected = source.events[0], dict(parse_event(split_frames(good)[0]))
    assert event["variable_unicode_custom"] == "caf\ufffd\ufffd €5 %41 \"q\" 'a' <b>"
    expected["variable_unicode_custom"] = event["variable_unicode_custom"]
    assert event == expected
    assert source.state.malformed == 0


@pytest.mark.parametrize("body,message", [
    (b'{"Event-Name":"CHANNEL_CREATE","Core-UUID":"c0de', "invalid event json: "),
    (b'["Event-Name","CHANNEL_CREATE"]', "event json is not an object"),
    (b'{"Event-Name":"CHANNEL_\xff', "invalid event json: "),
])
def test_a_broken_json_event_is_reported_clearly_and_skipped(switch_factory, captures,
                                                             body, message):
    fake = switch_factory(captures / "json-single-calls.esl", speed=20.0)
    events, reasons = [], []
    conn = EslConnection(*fake.address, "ClueCon", on_event=events.append,
                         on_malformed=reasons.append)
    conn.connect()
    try:
        assert conn.send("event json CHANNEL_CREATE").ok
        assert wait_until(lambda: events)
        fake.send_garbage(b"Content-Length: %d\nContent-Type: text/event-json\n\n%s"
                          % (len(body), body))
        assert wait_until(lambda: reasons)
        seen = len(events)
        assert wait_until(lambda: len(events) > seen)   # framing intact, reading goes on
    finally:
        conn.stop()
    assert len(reasons) == 1 and reasons[0].startswith("text/event-json: " + message)


def test_eof_in_the_middle_of_a_body_reconnects_and_the_hub_keeps_running(
        switch_factory, source_factory, captures):
    # greenswitch defect 1: EOF inside a body made _read_socket spin forever
    # without yielding, freezing every greenlet of the process.
    fake = switch_factory(captures / "json-single-calls.esl", speed=20.0)
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.01)
                                   for _ in range(1000)])
    try:
        source = source_factory(fake)
        assert wait_until(lambda: len(source.events) >= 3)
        fake.drop_mid_frame()
        assert wait_until(lambda: source.state.connects >= 2, timeout=5)
        before = len(ticks)
        gevent.sleep(0.2)
        assert len(ticks) > before  # the hub still schedules other greenlets
        assert "middle of a frame" in (source.state.last_error or "")
    finally:
        ticker.kill()


def test_garbage_is_a_protocol_error_then_a_clean_reconnect(switch_factory, source_factory,
                                                            captures, caplog):
    fake = switch_factory(captures / "json-single-calls.esl", speed=20.0)
    source = source_factory(fake)
    assert wait_until(lambda: source.state.connected)
    with caplog.at_level(logging.WARNING):
        fake.send_garbage(b"Content-Length: banana\n\n")
        assert wait_until(lambda: source.state.connects >= 2)
    assert source.state.protocol_errors >= 1 and source.state.malformed == 0
    assert "cannot be resynced: bad Content-Length 'banana'" in caplog.text


# -- connection lifecycle --------------------------------------------------

def test_a_dropped_connection_can_connect_again(switch_factory):
    # greenswitch defect 3: a dropped InboundESL could not connect() again.
    fake = switch_factory()
    conn = EslConnection(*fake.address, "ClueCon", timeout=2)
    conn.connect()
    assert conn.api("status").data.startswith("UP ")
    fake.disconnect_all()
    assert conn.closed.wait(timeout=5)
    assert not conn.connected
    conn.connect()
    try:
        assert conn.connected
        assert conn.api("status").data.startswith("UP ")
    finally:
        conn.stop()


def test_a_command_in_flight_fails_when_the_socket_drops(switch_factory):
    # greenswitch defect 7: a send() in flight when the socket dropped never
    # returned.
    fake = switch_factory()
    conn = EslConnection(*fake.address, "ClueCon", timeout=2, command_timeout=30)
    conn.connect()
    fake.stall(10)
    waiter = gevent.spawn(conn.api, "status")
    gevent.sleep(0.2)
    fake.disconnect_all()
    waiter.join(timeout=5)
    assert waiter.ready()
    assert isinstance(waiter.exception, NotConnectedError)
    with pytest.raises(NotConnectedError):
        conn.api("status")  # and the connection says so from now on


def test_every_command_has_a_timeout(switch_factory):
    fake = switch_factory()
    conn = EslConnection(*fake.address, "ClueCon", timeout=2, command_timeout=0.3)
    conn.connect()
    fake.stall(5)
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        conn.api("status")
    assert time.monotonic() - started < 3
    assert not conn.connected  # a missed reply would desynchronise later ones


def test_wrong_password_is_reported_as_such_and_retried(switch_factory, source_factory,
                                                        caplog):
    fake = switch_factory(password="secret-pw")
    with caplog.at_level(logging.ERROR):
        source = source_factory(fake, password="wrong-pw")
        assert wait_until(lambda: source.state.auth_failures >= 2)
    assert not source.state.connected
    assert "authentication failed" in caplog.text
    assert "wrong-pw" not in caplog.text and "secret-pw" not in caplog.text


def test_switch_restart_reconnects_and_logs_the_new_core_uuid(switch_factory, source_factory,
                                                              captures, caplog):
    fake = switch_factory(captures / "json-single-calls.esl", heartbeat_seconds=0.1)
    source = source_factory(fake)
    assert wait_until(lambda: source.state.core_uuid is not None)
    first_uuid = source.state.core_uuid
    with caplog.at_level(logging.WARNING):
        fake.restart(new_core_uuid=True)
        assert wait_until(lambda: source.state.connects >= 2
                          and source.state.core_uuid != first_uuid)
    assert source.state.core_uuid == fake.core_uuid
    assert "restarted" in caplog.text and fake.core_uuid in caplog.text


def test_silence_longer_than_the_liveness_timeout_reconnects(switch_factory, source_factory,
                                                             caplog):
    fake = switch_factory(heartbeat_seconds=60)
    source = source_factory(fake, liveness_timeout_seconds=0.5)
    assert wait_until(lambda: source.state.connected)
    with caplog.at_level(logging.WARNING):
        fake.stall(1.5)   # three times the liveness timeout
        assert wait_until(lambda: "nothing received for" in caplog.text, timeout=5)
    assert wait_until(lambda: source.state.connects >= 2, timeout=10)


def test_nothing_listening_is_retried_with_backoff():
    events = []
    cfg = SwitchConfig(name="fs1", host="127.0.0.1", port=1, connect_timeout_seconds=0.5)
    source = SwitchSource(cfg, lambda e, s: events.append(e), policy=FAST)
    runner = gevent.spawn(source.run)
    try:
        assert wait_until(lambda: source.state.reconnects >= 3)
        assert not source.state.connected
        assert "cannot connect" in source.state.last_error
    finally:
        source.stop()
        runner.join(timeout=3)
    assert runner.dead


# -- the backoff policy (pure) ---------------------------------------------

def test_reconnect_delay_is_capped_exponential_with_jitter():
    policy = ReconnectPolicy()
    assert policy.delay(1, 0.5) <= 1.0  # first retry within a second
    assert [round(policy.delay(n, 0.5), 3) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 10]
    assert policy.delay(50, 0.999) <= 10.0  # never above the cap, jitter included
    low, high = policy.delay(3, 0.0), policy.delay(3, 0.999)
    assert low == pytest.approx(1.6) and high == pytest.approx(2.4, rel=1e-2)


def test_reconnect_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="first_seconds"):
        ReconnectPolicy(first_seconds=0)
    with pytest.raises(ValueError, match="jitter"):
        ReconnectPolicy(jitter=1.5)


def test_switch_shutdown_notice_is_reported_and_retried(switch_factory, source_factory,
                                                        captures, caplog):
    # A real `fsctl shutdown`: the call's hangup, then a disconnect notice and EOF.
    fake = switch_factory(captures / "shutdown-plain.esl")
    with caplog.at_level(logging.WARNING):
        source = source_factory(fake, fmt="plain")
        assert wait_until(lambda: source.state.reconnects >= 1 and source.events)
    assert [e["Event-Name"] for e in source.events][-1] == "CHANNEL_HANGUP_COMPLETE"
    assert source.events[-1]["Hangup-Cause"] == "SYSTEM_SHUTDOWN"
    assert "The system is being shut down." in caplog.text


# -- odd events: skipped and counted, the connection stays --------------------

def json_event_frame(event: dict | bytes) -> bytes:
    body = event if isinstance(event, bytes) else orjson.dumps(event)
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body


def odd_channel_events(realm: str, core_uuid: str) -> tuple[list[bytes], int]:
    """CHANNEL_CREATE frames with one odd value each, and how many are malformed."""
    base = {"Event-Name": "CHANNEL_CREATE", "Core-UUID": core_uuid,
            "Event-Sequence": "1", "Unique-ID": "u-odd", "Call-Direction": "inbound",
            "Channel-Name": "sofia/internal/1000@x", "variable_domain_name": realm,
            "Event-Date-Timestamp": "1795908306887812"}
    malformed = [{**base, "Event-Name": ["CHANNEL_CREATE", 1]},
                 {**base, "Channel-Name": 12},
                 {**base, "Event-Date-Timestamp": 1795908306887812},
                 {**base, "Unique-ID": {"a": "b"}},
                 {**base, "Unique-ID": None},
                 b'{"Event-Name":' * 100_000 + b'"x"' + b"}" * 100_000,
                 orjson.dumps(base)[:-1] + b',"variable_x":"\\ud800"}']
    readable = [{**base, "Event-Name": ["CHANNEL_CREATE"]},            # ARRAY::, not mapped
                {**base, "Event-Date-Timestamp": "1" * 5000}]           # int() refused it
    return [json_event_frame(e) for e in malformed + readable], len(malformed)


def test_an_odd_json_event_is_skipped_and_counted_and_the_connection_stays(ops_world, caplog):
    # Each of these dropped the connection (and whatever was buffered behind
    # it): a TypeError or RecursionError from the decoder or the mapping
    # escaped the reader.  Now: counted per switch in /metrics, one log line.
    from world import ACME_REALM
    from test_metrics import scrape, value
    w = ops_world()
    w.write_hooks([w.hook("/all")])
    w.start()
    frames, malformed = odd_channel_events(ACME_REALM, w.fakes["fs1"].core_uuid)
    with caplog.at_level(logging.WARNING):
        for frame in frames:
            w.fakes["fs1"].send_garbage(frame)
        call_id = w.call(events=["CHANNEL_CREATE", "CHANNEL_ANSWER"])
        delivered = lambda cid: sum(r.json.get("call_id") == cid  # noqa: E731
                                    for r in w.receiver.requests)
        assert wait_until(lambda: delivered(call_id) == 2 and delivered("u-odd") == 1)
    source = w.bridge.sources[0]
    assert source.state.connects == 1 and source.state.malformed == malformed
    m = scrape(w)
    assert value(m, "eslhook_events_malformed_total", switch="fs1") == malformed
    assert value(m, "eslhook_switch_connected", switch="fs1") == 1
    # the 5000-digit timestamp is left out, the rest of that event delivered
    odd = [r.json for r in w.receiver.requests if r.json.get("call_id") == "u-odd"]
    assert len(odd) == 1 and "timestamp" not in odd[0]
    lines = [r for r in caplog.records if "malformed event" in r.getMessage()]
    assert len(lines) == 1                                  # rate-limited
    assert "Traceback" not in caplog.text and "reader failed" not in caplog.text


def test_malformed_events_are_logged_once_per_interval(source_factory, caplog):
    bad = json_event_frame(b'{"Event-Name": ')
    good = json_event_frame({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u-1"})
    server = RawEslServer([bad] * 50 + [good]).start()
    try:
        with caplog.at_level(logging.WARNING):
            source = source_factory(server)
            assert wait_until(lambda: source.events)
    finally:
        server.stop()
    assert source.state.malformed == 50 and source.state.connects == 1
    lines = [r.getMessage() for r in caplog.records if "malformed event" in r.getMessage()]
    assert len(lines) == 1 and "invalid event json" in lines[0]


def test_a_content_length_of_a_unicode_digit_drops_the_connection_with_a_clear_line(
        source_factory, caplog):
    # int("²") raised ValueError: the reader died with a traceback.  A length
    # that is not ASCII digits cannot be resynced: one clear line, a reconnect.
    server = RawEslServer(b"Content-Length: \xc2\xb2\nContent-Type: text/event-json\n\n{}",
                          close_after=False).start()
    try:
        with caplog.at_level(logging.WARNING):
            source = source_factory(server)
            assert wait_until(lambda: source.state.protocol_errors >= 1)
    finally:
        server.stop()
    assert "cannot be resynced: bad Content-Length '\u00b2'" in caplog.text
    assert "reader failed" not in caplog.text and "Traceback" not in caplog.text
    assert source.state.malformed == 0


def test_a_disconnect_notice_not_followed_by_a_close_ends_the_connection(source_factory):
    # The switch says goodbye but keeps the socket open: the switch stayed
    # "connected" (in /healthz too) until the liveness timeout, or forever
    # with a peer that keeps the socket busy.
    notice = b"Disconnected, goodbye.\n"
    server = RawEslServer(
        [json_event_frame({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u-1"}),
         b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n%s"
         % (len(notice), notice)], close_after=False).start()
    try:
        source = source_factory(server, liveness_timeout_seconds=60)
        assert wait_until(lambda: source.state.connects >= 2, timeout=3)
    finally:
        server.stop()
    assert source.events[0]["Unique-ID"] == "u-1"
    assert ("the switch sent a disconnect notice (Disconnected, goodbye.)"
            in source.state.last_error)


def test_event_names_from_the_wire_are_bounded_metric_labels(source_factory):
    names = ["NAME_%d" % n for n in range(200)] + ["X" * 10_000]
    server = RawEslServer([json_event_frame({"Event-Name": n}) for n in names]).start()
    try:
        source = source_factory(server)
        assert wait_until(lambda: source.state.events == len(names))
    finally:
        server.stop()
    counts = source.state.events_by_name
    assert len(counts) <= MAX_EVENT_NAMES + 1 and sum(counts.values()) == len(names)
    assert max(map(len, counts)) <= MAX_EVENT_NAME_LENGTH


def test_a_sink_that_raises_skips_that_event_not_the_connection():
    # Whatever one event does downstream (a bug there included) ended the
    # reader and dropped the events buffered behind it.
    frames = [json_event_frame({"Event-Name": "CHANNEL_CREATE", "Unique-ID": uid})
              for uid in ("u-1", "u-boom", "u-2")]
    server = RawEslServer(frames, close_after=False).start()
    got = []

    def sink(event, switch):
        if event["Unique-ID"] == "u-boom":
            raise RuntimeError("downstream bug")
        got.append(event["Unique-ID"])

    host, port = server.address
    source = SwitchSource(SwitchConfig(name="fs1", host=host, port=port), sink,
                          policy=FAST, liveness_check_seconds=0.05)
    runner = gevent.spawn(source.run)
    try:
        assert wait_until(lambda: got == ["u-1", "u-2"])
        assert source.state.malformed == 1 and source.state.connects == 1
    finally:
        source.stop()
        runner.join(timeout=3)
        server.stop()


def test_a_late_reply_while_events_flow_keeps_the_connection_and_the_order():
    """The switch keeps sending events but answers the first api only after the
    command timeout (eslhook's reader behind a burst looks the same): the command
    times out, the connection stays (closing it would lose the events in flight),
    the late reply is dropped and the next command gets its own."""
    import gevent.server
    heartbeat = (b"Content-Length: 41\nContent-Type: text/event-plain\n\n"
                 b"Event-Name: HEARTBEAT\nCore-UUID: core-1\n\n")
    assert len(heartbeat.split(b"\n\n", 1)[1]) == 41

    def serve(sock, _address):
        stream = sock.makefile("rb")
        sock.sendall(b"Content-Type: auth/request\n\n")
        answers = 0
        for line in iter(stream.readline, b""):
            if line != b"\n":
                command = line
                continue
            if command.startswith(b"auth"):
                sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            elif command.startswith(b"api"):
                answers += 1
                text = b"answer %d" % answers
                if answers == 1:
                    for _ in range(12):        # 0.6 s of events, over the 0.3 s timeout
                        sock.sendall(heartbeat)
                        gevent.sleep(0.05)
                sock.sendall(b"Content-Type: api/response\nContent-Length: %d\n\n%s"
                             % (len(text), text))
    server = gevent.server.StreamServer(("127.0.0.1", 0), serve)
    server.start()
    try:
        conn = EslConnection("127.0.0.1", server.server_port, "ClueCon", timeout=2,
                             command_timeout=0.3)
        conn.connect()
        with pytest.raises(CommandTimeout):
            conn.api("status")
        assert conn.connected
        assert conn.api("status", timeout=2).data == "answer 2"
    finally:
        server.stop()
