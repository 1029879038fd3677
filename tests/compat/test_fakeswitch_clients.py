"""What users' own ESL clients do to the fake switch, over real sockets.

Each test is named after what broke a real client library (issue 13);
the other tests here run the libraries themselves.  The switch settles
before replaying, as ``eslhook fake-switch`` does (conftest.py here).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import gevent

from eslhook.fakeswitch import load_capture
from eslhook.fakeswitch.api import ChannelTable
from eslhook.source.parsing import parse_event
from compat_support import A_LEG, B_LEG, BRIDGED_JSON, BRIDGED_PLAIN, ROOT
from test_fakeswitch import IO_TIMEOUT, RawClient, clients  # noqa: F401 (fixture)

CAPTURES = ROOT / "tests" / "captures"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")



def reply(client: RawClient, command: str) -> str:
    return client.command(command).headers["Reply-Text"]


def assert_replies(client: RawClient, expected: list[tuple[str, str]]) -> None:
    assert [(c, reply(client, c)) for c, _ in expected] == expected


def events_until_quiet(client: RawClient, quiet: float = 0.3, limit: float = IO_TIMEOUT):
    """Decoded events until none came for ``quiet`` seconds (bounded)."""
    got, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            frame = client.frame(timeout=quiet)
        except OSError:  # socket.timeout: nothing more came
            break
        if frame.content_type.startswith("text/event-"):
            got.append(parse_event(frame))
    return got


def recorded(path: Path, name: str) -> list[dict]:
    return [e.headers for e in load_capture(path).events if e.name == name]


# -- 1. events lost before the client is ready -------------------------------
def test_replay_waits_for_a_clients_second_subscription(switch_factory, clients):
    """modesl subscribes BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE first, then
    the user's events: the replay used to be over before the second one."""
    switch = switch_factory(BRIDGED_JSON)
    client = clients(switch)
    client.login()
    assert reply(client, "event json BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE") == (
        "+OK event listener enabled json")
    gevent.sleep(0.05)  # the client's own round trip and callback
    assert reply(client, "event json CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE") == (
        "+OK event listener enabled json")
    assert switch.replay_done.wait(IO_TIMEOUT)
    names = Counter(e["Event-Name"] for e in events_until_quiet(client))
    assert names == {"CHANNEL_EXECUTE_COMPLETE": 4, "CHANNEL_CREATE": 3,
                     "CHANNEL_HANGUP_COMPLETE": 3}


def test_replay_waits_for_filters_sent_after_the_subscription(switch_factory, clients):
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    reply(client, "event plain ALL")
    gevent.sleep(0.05)
    assert reply(client, "filter Unique-ID " + A_LEG) == "+OK filter added. [Unique-ID]=[%s]" % A_LEG
    assert switch.replay_done.wait(IO_TIMEOUT)
    got = events_until_quiet(client)
    assert {e["Unique-ID"] for e in got} == {A_LEG}
    assert len(got) == sum(1 for e in load_capture(BRIDGED_PLAIN).events if e.unique_id == A_LEG)


# -- 2. command headers are caseless ------------------------------------------
def test_bgapi_takes_a_lower_case_job_uuid_header(switch_factory, clients):
    """esl-lite sends ``job-uuid:``; its bgapi waited for its own id forever."""
    client = clients(switch_factory())
    client.login()
    reply(client, "event plain BACKGROUND_JOB")
    own = "0b6f1c7e-6a57-4a8e-9d0e-3f6a2f0d4c11"
    answer = client.command("bgapi status\njob-uuid: " + own)
    assert answer.headers["Reply-Text"] == "+OK Job-UUID: " + own
    assert answer.headers["Job-UUID"] == own
    job = parse_event(client.events(1)[0])
    assert job["Job-UUID"] == own


# -- 3. noevents after nixevent from ALL ----------------------------------------
def test_noevents_after_nixevent_from_all_replies(switch_factory, clients):
    """ALL, nixevent HEARTBEAT, noevents killed the connection (greenswitch hung)."""
    client = clients(switch_factory())
    client.login()
    assert_replies(client, [
        ("event plain ALL", "+OK event listener enabled plain"),
        ("nixevent HEARTBEAT", "+OK events nixed"),
        ("noevents", "+OK no longer listening for events"),
        ("event plain ALL", "+OK event listener enabled plain"),
        ("nixevent CHANNEL_CREATE", "+OK events nixed"),
        ("event plain CHANNEL_CREATE", "+OK event listener enabled plain")])
    assert client.command("api uuid_exists x").body == b"false"  # still alive


# -- 4. commands a real inbound socket answers ----------------------------------
def test_myevents_uuid_sends_only_that_calls_events(switch_factory, clients):
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    assert reply(client, "myevents " + B_LEG) == "+OK Events Enabled"
    assert reply(client, "myevents " + B_LEG) == "-ERR aready enabled."
    assert switch.replay_done.wait(IO_TIMEOUT)
    got = events_until_quiet(client)
    assert got and {e["Unique-ID"] for e in got} == {B_LEG}
    assert {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY"} <= {e["Event-Name"] for e in got}
    other = clients(switch)
    other.login()
    assert reply(other, "myevents 11111111-2222-3333-4444-555555555555 json") == (
        "-ERR invalid uuid")
    assert reply(other, "myevents") == "-ERR command not found"


def test_sendevent_reaches_every_subscriber(switch_factory, clients):
    switch = switch_factory()
    listener, sender = clients(switch), clients(switch)
    listener.login()
    sender.login()
    reply(listener, "event json CUSTOM example::hello")
    answer = reply(sender, "sendevent CUSTOM\nEvent-Subclass: example::hello\n"
                           "Example-Header: forty two")
    assert answer.startswith("+OK ") and UUID.fullmatch(answer[4:])
    event = json.loads(listener.events(1)[0].body)
    assert event["Event-Name"] == "CUSTOM"
    assert event["Event-Subclass"] == "example::hello"
    assert event["Example-Header"] == "forty two"
    assert event["Event-UUID"] == answer[4:]
    assert event["Core-UUID"] == switch.core_uuid


def test_sendmsg_execute_answers_and_fires_execute_complete(switch_factory, clients):
    """modesl's execute() waits for CHANNEL_EXECUTE_COMPLETE with its Event-UUID."""
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    created = client.command("api originate sofia/internal/1000@127.0.0.1:5080 &park()")
    unique_id = created.body.decode().split()[1]
    reply(client, "event plain CHANNEL_EXECUTE_COMPLETE")
    app_uuid = "5b0f4d3c-2a1e-4c6b-8f9a-0d1e2f3a4b5c"
    assert reply(client, "sendmsg %s\ncall-command: execute\nexecute-app-name: playback\n"
                         "execute-app-arg: tone_stream://%%(100,0,440)\nEvent-UUID: %s"
                 % (unique_id, app_uuid)) == "+OK"
    done = parse_event(client.events(1)[0])
    assert (done["Unique-ID"], done["Application"], done["Application-UUID"]) == (
        unique_id, "playback", app_uuid)
    assert reply(client, "sendmsg 11111111-2222-3333-4444-555555555555\n"
                         "call-command: execute") == (
        "-ERR invalid session id [11111111-2222-3333-4444-555555555555]")


def test_sendmsg_hangup_ends_the_call(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    unique_id = client.command("api originate sofia/internal/1000@127.0.0.1:5080 &park()"
                               ).body.decode().split()[1]
    assert reply(client, "myevents %s json" % unique_id) == "+OK Events Enabled"
    assert reply(client, "sendmsg %s\ncall-command: hangup\nhangup-cause: USER_BUSY"
                 % unique_id) == "+OK"
    got = [json.loads(f.body) for f in client.events(3)]
    assert [(e["Event-Name"], e["Hangup-Cause"]) for e in got] == [
        ("CHANNEL_HANGUP", "USER_BUSY"), ("CHANNEL_HANGUP_COMPLETE", "USER_BUSY"),
        ("CHANNEL_DESTROY", "USER_BUSY")]
    assert client.command("api uuid_exists " + unique_id).body == b"false"


def test_log_nolog_linger_and_divert_events_reply_as_an_inbound_socket(switch_factory, clients):
    client = clients(switch_factory())
    client.login()
    assert_replies(client, [
        ("nolog", "-ERR not loging"),
        ("log info", "+OK log level info [6]"),
        ("log 9", "-ERR invalid log level"),
        ("nolog", "+OK no longer logging"),
        ("linger", "-ERR not controlling a session"),
        ("nolinger", "-ERR not controlling a session"),
        ("divert_events on", "-ERR not controlling a session.")])


def test_event_xml_serves_xml_events(switch_factory, clients):
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    assert reply(client, "event xml CHANNEL_CREATE") == "+OK event listener enabled xml"
    frame = client.events(1)[0]
    assert frame.content_type == "text/event-xml"
    text = frame.body.decode()
    assert text.startswith("<event>\n  <headers>\n    <Event-Name>CHANNEL_CREATE</Event-Name>\n")
    assert text.endswith("  </headers>\n</event>")
    first = recorded(BRIDGED_PLAIN, "CHANNEL_CREATE")[0]
    assert "<Unique-ID>%s</Unique-ID>" % first["Unique-ID"] in text
    assert "<Caller-Caller-ID-Name>Alice%20Example</Caller-Caller-ID-Name>" in text


# -- 5. api commands ------------------------------------------------------------
def test_uuid_dump_without_format_dumps_the_channel_plain(switch_factory, clients):
    """genesis's get_channel() sends plain ``uuid_dump <uuid>``."""
    switch = switch_factory()
    client = clients(switch)
    client.login()
    unique_id = client.command("api originate {origination_caller_id_number=+15557654321}"
                               "sofia/internal/1006@127.0.0.1:5080 &park()").body.split()[1]
    dump = client.command("api uuid_dump " + unique_id.decode()).body.decode()
    fields = dict(line.split(": ", 1) for line in dump.strip().split("\n"))
    assert fields["Event-Name"] == "CHANNEL_DATA"
    assert fields["Unique-ID"] == unique_id.decode()
    assert fields["Caller-Caller-ID-Number"] == "%2B15557654321"  # url-encoded, as serialised
    assert client.command("api uuid_dump 11111111-2222-3333-4444-555555555555").body == (
        b"-ERR No such channel!\n")


def test_show_calls_lists_a_bridged_call_with_its_b_leg():
    real = (CAPTURES / "api-show-calls-as-json.raw").read_bytes()
    real_rows = json.loads(real[real.index(b"{"):])["rows"]
    table = ChannelTable()
    for event in load_capture(BRIDGED_PLAIN).events:
        table.observe(event.name, event.headers, event.unique_id)
        if event.name == "CHANNEL_BRIDGE":
            break
    rows = json.loads(table.calls_as_json())["rows"]
    assert [list(r) for r in rows] == [list(real_rows[1])] * len(rows)  # same columns, order
    bridged = [r for r in rows if r["uuid"] == A_LEG]
    assert bridged[0]["b_uuid"] == B_LEG and bridged[0]["call_uuid"] == A_LEG
    assert B_LEG not in {r["uuid"] for r in rows}  # a B-leg is in its A-leg's row
    assert ChannelTable().calls_as_json() == '{"row_count": 0}\n'


def test_sofia_status_is_byte_exact(switch_factory, clients):
    client = clients(switch_factory())
    client.send("auth ClueCon")
    client.send("api sofia status")
    real = (CAPTURES / "api-sofia-status.raw").read_bytes()
    assert client.read_bytes(len(real)) == real


def test_originate_then_uuid_kill_a_call_made_from_a_recorded_template(switch_factory, clients):
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    reply(client, "myevents " + A_LEG)  # nothing of the replay: only our call below
    assert client.command("api uuid_kill " + A_LEG).body == b"-ERR No such channel!\n"
    answer = client.command("api originate sofia/internal/1000@127.0.0.1:5080 &park()").body
    assert re.fullmatch(rb"\+OK [0-9a-f-]{36}\n", answer)
    unique_id = answer.split()[1].decode()
    assert client.command("api uuid_exists " + unique_id).body == b"true"
    listed = json.loads(client.command("api show channels as json").body)["rows"]
    assert [r["uuid"] for r in listed if r["uuid"] == unique_id] == [unique_id]
    assert client.command("api uuid_kill %s USER_BUSY" % unique_id).body == b"+OK\n"
    assert client.command("api uuid_exists " + unique_id).body == b"false"
    assert client.command("api uuid_kill").body == b"-USAGE: <uuid> [cause]\n"
    assert client.command("api originate").body.startswith(b"-USAGE: <call url> <exten>")


def test_uuid_kill_of_a_replayed_call_ends_it_and_skips_its_recorded_rest(switch_factory,
                                                                         clients):
    switch = switch_factory(BRIDGED_PLAIN, speed=2.0)  # the bridge lasts ~1 s here
    client = clients(switch)
    client.login()
    reply(client, "event plain CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY")
    bridge = parse_event(client.events(1)[0])
    assert bridge["Event-Name"] == "CHANNEL_BRIDGE" and bridge["Unique-ID"] == A_LEG
    assert client.command("api uuid_kill %s CALL_REJECTED" % A_LEG).body == b"+OK\n"
    assert switch.replay_done.wait(IO_TIMEOUT)
    a_leg = [e for e in events_until_quiet(client) if e["Unique-ID"] == A_LEG]
    assert [(e["Event-Name"], e["Hangup-Cause"]) for e in a_leg] == [
        ("CHANNEL_HANGUP_COMPLETE", "CALL_REJECTED"), ("CHANNEL_DESTROY", "CALL_REJECTED")]


# -- 6. whole captures ----------------------------------------------------------
def test_bundled_all_capture_shows_every_event_a_call_fires(switch_factory, clients):
    """The old captures were trimmed to CREATE/ANSWER/HANGUP_COMPLETE/HEARTBEAT."""
    switch = switch_factory(BRIDGED_PLAIN)
    client = clients(switch)
    client.login()
    reply(client, "event plain ALL")
    assert switch.replay_done.wait(IO_TIMEOUT)
    names = {e["Event-Name"] for e in events_until_quiet(client)}
    assert {"CHANNEL_STATE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
            "CHANNEL_DESTROY", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"} <= names


def _capture_files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.suffix in (".esl", ".raw")}


def test_captures_readmes_name_exactly_their_files():
    data = ROOT / "eslhook" / "data"
    for folder in (CAPTURES, data):
        named = set(re.findall(r"`([\w.-]+\.(?:esl|raw))`", (folder / "README.md").read_text()))
        here = _capture_files(folder)
        assert not here - named, "not described in its README: %s" % (here - named)
        elsewhere = named - here
        assert elsewhere <= _capture_files(data) | _capture_files(CAPTURES), (
            "described but missing: %s" % elsewhere)
