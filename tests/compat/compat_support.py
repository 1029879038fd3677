"""What every client-library test in tests/compat expects, from the capture.

The fake switch replays the bundled whole ALL capture of one bridged call
(eslhook/data/*-bridged-call-all-events.esl); each library's test checks
the typed header values its client decoded against the json recording
(exact, where plain is percent-encoded).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import json
import subprocess

import gevent

from eslhook.fakeswitch import load_capture
from eslhook.fakeswitch.client import MYEVENTS_NAMES

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "eslhook" / "data"
BRIDGED_PLAIN = DATA / "plain-bridged-call-all-events.esl"
BRIDGED_JSON = DATA / "json-bridged-call-all-events.esl"
A_LEG = "fcac29d0-7f0d-4996-a1f0-18ddd3daac16"  # inbound sipp leg to 1006, bridged
B_LEG = "cd3f12c1-297c-4ba6-9b86-e4442538c82b"  # its outbound leg to 1000
PASSWORD = "ClueCon"
# Header values a client reads off CHANNEL_HANGUP_COMPLETE (strings, as sent).
TYPED_HEADERS = ("Unique-ID", "Call-Direction", "Caller-Caller-ID-Name",
                 "Caller-Caller-ID-Number", "Caller-Destination-Number", "Event-Sequence",
                 "Event-Date-Timestamp", "variable_sip_hangup_disposition",
                 "variable_billsec", "Channel-Name")
JOB_UUID = "7f6a1c2e-0d4b-4e8f-9a3c-5b2d1e0f4a6c"

MAX_SECONDS = 20  # every client script is killed after this


def recorded_hangups() -> dict[str, dict[str, str]]:
    """Unique-ID -> the typed headers of its recorded CHANNEL_HANGUP_COMPLETE."""
    return {e.unique_id: {h: e.headers[h] for h in TYPED_HEADERS if h in e.headers}
            for e in load_capture(BRIDGED_JSON).events if e.name == "CHANNEL_HANGUP_COMPLETE"}


def recorded_session_events(unique_id: str) -> int:
    """How many recorded events ``myevents <unique_id>`` must deliver."""
    return sum(1 for e in load_capture(BRIDGED_JSON).events
               if e.unique_id == unique_id and e.name in MYEVENTS_NAMES)


def node_or_fail_reason() -> tuple[str | None, str]:
    """(node path, "") when Node and modesl are installed, else (None, why)."""
    node = shutil.which("node")
    modules = ROOT / "tests" / "compat" / "node" / "node_modules" / "modesl"
    if node is None:
        return None, "node is not installed: .ci/run installs it (apt-get install nodejs npm)"
    if not modules.is_dir():
        return None, ("modesl is not installed: .ci/run runs `npm ci --prefix "
                      "tests/compat/node` (needs the npm registry)")
    return node, ""


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_node() -> str:
    """Node's path; without Node or modesl the test fails under CI=true and
    is skipped, with the reason, elsewhere."""
    import pytest

    path, why = node_or_fail_reason()
    if path is None:
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    return path


def client_args(switch) -> list[str]:
    """What each client script is told: where, and how much to wait for."""
    inbound = [u for u, h in recorded_hangups().items() if h["Call-Direction"] == "inbound"]
    return [switch.address[0], str(switch.address[1]), PASSWORD, B_LEG, JOB_UUID,
            str(len(inbound)), str(recorded_session_events(B_LEG))]


def _read_result(process: subprocess.Popen, name: str) -> dict:
    with gevent.Timeout(MAX_SECONDS, AssertionError("%s gave no result" % name)):
        line = process.stdout.readline()
    assert line, "%s ended: %s" % (name, process.stderr.read()[-2000:])
    return json.loads(line)


def run_client_script(argv: list[str], cwd: Path, switch) -> tuple[dict, dict]:
    """Run a client script: its results, then (after the switch dropped every
    connection and the script was told so) what it noticed."""
    name = Path(argv[1]).name
    process = subprocess.Popen([*argv, *client_args(switch)], cwd=cwd, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        out = _read_result(process, name)
        switch.disconnect_all()
        process.stdin.write("go\n")
        process.stdin.flush()
        return out, _read_result(process, name)
    finally:
        process.kill()
        process.wait(5)


def assert_hangups_are_the_recorded_inbound_ones(hangups: list[dict]) -> None:
    """The typed values a client decoded equal the json recording's."""
    recorded = recorded_hangups()
    inbound = {u for u, h in recorded.items() if h["Call-Direction"] == "inbound"}
    assert {e["Unique-ID"] for e in hangups} == inbound
    for event in hangups:
        wanted = recorded[event["Unique-ID"]]
        assert {h: event.get(h) for h in wanted} == wanted
