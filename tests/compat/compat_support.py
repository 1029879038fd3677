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

from eslhook.fakeswitch import load_capture

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "eslhook" / "data"
BRIDGED_PLAIN = DATA / "plain-bridged-call-all-events.esl"
BRIDGED_JSON = DATA / "json-bridged-call-all-events.esl"
A_LEG = "fcac29d0-7f0d-4996-a1f0-18ddd3daac16"
B_LEG = "cd3f12c1-297c-4ba6-9b86-e4442538c82b"
PASSWORD = "ClueCon"
# Header values a client reads off CHANNEL_HANGUP_COMPLETE (strings, as sent).
TYPED_HEADERS = ("Unique-ID", "Call-Direction", "Caller-Caller-ID-Name",
                 "Caller-Caller-ID-Number", "Caller-Destination-Number", "Event-Sequence",
                 "Event-Date-Timestamp", "variable_sip_hangup_disposition",
                 "variable_billsec", "Channel-Name")
JOB_UUID = "7f6a1c2e-0d4b-4e8f-9a3c-5b2d1e0f4a6c"
# What ``myevents`` subscribes to, per mod_event_socket.c (parse_command).
MYEVENTS_NAMES = frozenset("""
CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA
CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP
CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_OUTGOING
CHANNEL_PARK CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE
CHANNEL_UNBRIDGE CHANNEL_UNPARK DETECTED_SPEECH DTMF NOTALK TALK
""".split())
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
