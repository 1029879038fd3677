"""modesl (npm, Node) against the fake switch: node/modesl_client.js in a
subprocess, its JSON results checked here.

Node and modesl come from `.ci/run` (apt-get nodejs npm, `npm ci` in
tests/compat/node).  Missing under CI=true: the test fails.  Missing
elsewhere: it is skipped with that reason in pytest's summary (-ra).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import gevent
import pytest

from compat_support import (B_LEG, BRIDGED_PLAIN, JOB_UUID, MAX_SECONDS, PASSWORD, in_ci,
                            node_or_fail_reason, recorded_hangups, recorded_session_events)

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture
def node() -> str:
    path, why = node_or_fail_reason()
    if path is None:
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    return path


def read_line(process: subprocess.Popen, seconds: float) -> dict:
    with gevent.Timeout(seconds, AssertionError("modesl_client.js gave no result")):
        line = process.stdout.readline()
    assert line, "modesl_client.js ended: %s" % process.stderr.read()[-2000:]
    return json.loads(line)


def test_modesl_authenticates_subscribes_and_reads_the_capture(switch_factory, node):
    switch = switch_factory(BRIDGED_PLAIN)
    recorded = recorded_hangups()
    inbound = {u for u, h in recorded.items() if h["Call-Direction"] == "inbound"}
    b_events = recorded_session_events(B_LEG)
    args = [switch.address[0], str(switch.address[1]), PASSWORD, B_LEG, JOB_UUID,
            str(len(inbound)), str(b_events)]
    process = subprocess.Popen([node, "modesl_client.js", *args], cwd=NODE_DIR, text=True,
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

    assert out["bad_password"] == "refused"
    assert out["subscribe"] == "+OK event listener enabled json"
    assert out["filter"] == "+OK filter added. [Call-Direction]=[inbound]"
    assert out["myevents"] == "+OK Events Enabled"
    assert {e["Unique-ID"] for e in out["hangups"]} == inbound
    for event in out["hangups"]:  # typed values modesl decoded = the json recording
        wanted = recorded[event["Unique-ID"]]
        assert {h: event.get(h) for h in wanted} == wanted
    assert (out["session_ids"], out["session_count"]) == ([B_LEG], b_events)
    assert out["filter_delete"].startswith("+OK filter deleted.")
    assert out["job_event_uuid"] == JOB_UUID and out["job_body_starts"] == "UP "
    assert out["sendevent"].startswith("+OK ")
    assert out["custom"]["Compat-Header"] == "yes"
    assert out["custom"]["Event-UUID"] == out["sendevent"][4:]
    assert out["originate"].startswith("+OK ")
    uuid = out["originate"].split()[1]
    assert out["execute"] == {"uuid": uuid, "app": "playback"}
    assert out["dump_unique_id"] == uuid
    assert out["kill"] == "+OK\n"
    assert out["mine_ended"] is True
    assert after["noticed"] is True
