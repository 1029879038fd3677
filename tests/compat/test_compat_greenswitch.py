"""greenswitch (gevent, PyPI) against the fake switch, as its users drive it.

It runs in this process: greenswitch is a gevent library and conftest has
monkey-patched everything already.  Every blocking call is under a timeout
(greenswitch's own ``send`` waits forever for a reply).
"""

from __future__ import annotations

import gevent
import greenswitch
import pytest

from compat_support import (A_LEG, B_LEG, BRIDGED_PLAIN, JOB_UUID, PASSWORD,
                            assert_hangups_are_the_recorded_inbound_ones, recorded_hangups,
                            recorded_session_events)

TIMEOUT = 5.0


def connect(switch, password=PASSWORD) -> greenswitch.InboundESL:
    client = greenswitch.InboundESL(switch.address[0], switch.address[1], password)
    with gevent.Timeout(TIMEOUT):
        client.connect()
    return client


def send(client, command: str):
    with gevent.Timeout(TIMEOUT):
        return client.send(command)


def wait_for(predicate, what: str) -> None:
    with gevent.Timeout(TIMEOUT, AssertionError("no %s in %s s" % (what, TIMEOUT))):
        while not predicate():
            gevent.sleep(0.01)


def test_greenswitch_authenticates_subscribes_and_reads_the_capture(switch_factory):
    switch = switch_factory(BRIDGED_PLAIN)
    with pytest.raises(ValueError, match="Invalid password"):
        connect(switch, "wrong")

    conn, mine = connect(switch), connect(switch)
    try:
        hangups, customs, jobs, session_events = [], [], [], []
        conn.register_handle("CHANNEL_HANGUP_COMPLETE", hangups.append)
        conn.register_handle("fake::compat", customs.append)  # CUSTOM: keyed by subclass
        conn.register_handle("BACKGROUND_JOB", jobs.append)
        mine.register_handle("*", session_events.append)
        # a user's start: ALL, then narrowing it down (greenswitch used to hang here)
        assert send(conn, "event plain ALL").data == "+OK event listener enabled plain"
        assert send(conn, "nixevent HEARTBEAT").data == "+OK events nixed"
        assert send(conn, "noevents").data == "+OK no longer listening for events"
        assert send(conn, "event plain CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CUSTOM "
                          "fake::compat").data == "+OK event listener enabled plain"
        assert send(conn, "filter Call-Direction inbound").data == (
            "+OK filter added. [Call-Direction]=[inbound]")
        assert send(mine, "myevents " + B_LEG).data == "+OK Events Enabled"

        assert switch.replay_done.wait(TIMEOUT)
        inbound = [h for h in recorded_hangups().values() if h["Call-Direction"] == "inbound"]
        wait_for(lambda: len(hangups) == len(inbound), "inbound hangups")
        assert_hangups_are_the_recorded_inbound_ones([e.headers for e in hangups])
        b_events = recorded_session_events(B_LEG)
        wait_for(lambda: len(session_events) == b_events, "B-leg events")
        assert {e.headers["Unique-ID"] for e in session_events} == {B_LEG}

        assert send(conn, "filter delete Call-Direction inbound").data.startswith(
            "+OK filter deleted.")
        job = send(conn, "bgapi status\nJob-UUID: " + JOB_UUID)
        assert job.headers["Job-UUID"] == JOB_UUID
        wait_for(lambda: jobs, "BACKGROUND_JOB")
        assert jobs[0].headers["Job-UUID"] == JOB_UUID

        sent = send(mine, "sendevent CUSTOM\nEvent-Subclass: fake::compat\nCompat-Header: yes")
        assert sent.data.startswith("+OK ")
        wait_for(lambda: customs, "the sent CUSTOM event")
        assert customs[0].headers["Compat-Header"] == "yes"
        assert customs[0].headers["Event-UUID"] == sent.data[4:]

        assert send(conn, "api uuid_exists " + A_LEG).data == "false"  # replay over
        made = send(conn, "api originate sofia/internal/1000@127.0.0.1:5080 &park()").data
        assert made.startswith("+OK ")
        assert send(conn, "api uuid_kill " + made.split()[1]).data == "+OK\n"
    finally:
        mine.stop()  # exit: +OK bye, disconnect notice, EOF
    assert not mine.connected

    switch.disconnect_all()  # the switch goes away: no hang, a clear error
    wait_for(lambda: not conn.connected, "disconnect noticed")
    with pytest.raises(greenswitch.esl.NotConnectedError):
        send(conn, "api status")
    conn.stop()
