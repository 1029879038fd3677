"""genesis (asyncio, PyPI) against the fake switch: genesis_client.py in a
subprocess, its JSON results checked here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gevent

from compat_support import (B_LEG, BRIDGED_PLAIN, JOB_UUID, MAX_SECONDS, PASSWORD, ROOT,
                            recorded_hangups, recorded_session_events)

SCRIPT = Path(__file__).resolve().parent / "genesis_client.py"


def read_line(process: subprocess.Popen, seconds: float) -> dict:
    with gevent.Timeout(seconds, AssertionError("genesis_client.py gave no result")):
        line = process.stdout.readline()
    assert line, "genesis_client.py ended: %s" % process.stderr.read()[-2000:]
    return json.loads(line)


def test_genesis_authenticates_subscribes_and_reads_the_capture(switch_factory):
    switch = switch_factory(BRIDGED_PLAIN)
    recorded = recorded_hangups()
    inbound = {u for u, h in recorded.items() if h["Call-Direction"] == "inbound"}
    b_events = recorded_session_events(B_LEG)
    args = [switch.address[0], str(switch.address[1]), PASSWORD, B_LEG, JOB_UUID,
            str(len(inbound)), str(b_events)]
    process = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        out = read_line(process, MAX_SECONDS)
        switch.disconnect_all()
        process.stdin.write("go\n")
        process.stdin.flush()
        after = read_line(process, MAX_SECONDS)
    finally:
        process.kill()
        process.wait(5)

    assert out["bad_password"] == "AuthenticationError"
    assert out["start"] == [
        "+OK event listener enabled plain", "+OK events nixed",
        "+OK no longer listening for events", "+OK event listener enabled plain",
        "+OK filter added. [Call-Direction]=[inbound]"]
    assert out["myevents"] == "+OK Events Enabled"
    assert {e["Unique-ID"] for e in out["hangups"]} == inbound
    for event in out["hangups"]:  # typed values genesis decoded = the json recording
        wanted = recorded[event["Unique-ID"]]
        assert {h: event.get(h) for h in wanted} == wanted
    assert (out["session_ids"], out["session_count"]) == ([B_LEG], b_events)
    assert out["bgapi_reply_job_uuid"] == out["job_event_uuid"] == JOB_UUID
    assert out["job_body_starts"] == "UP "
    assert out["sendevent"].startswith("+OK ")
    assert out["custom"]["Compat-Header"] == "yes"
    assert out["custom"]["Event-UUID"] == out["sendevent"][4:]
    assert out["originate"].startswith("+OK ")
    assert out["channel"]["uuid"] == out["originate"].split()[1]
    assert out["channel"]["name"] == "sofia/internal/1000@127.0.0.1:5080"
    assert out["kill"] == "+OK\n"
    assert out["exit"] == "+OK bye" and out["mine_lost"] is True
    assert after["noticed"] is True
    assert after["send_after_drop"] not in ("answered", "hung")
