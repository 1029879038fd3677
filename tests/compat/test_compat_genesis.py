"""genesis (asyncio, PyPI) against the fake switch: genesis_client.py in a
subprocess, its JSON results checked here."""

from __future__ import annotations

import sys
from pathlib import Path

from compat_support import (B_LEG, BRIDGED_PLAIN, JOB_UUID, ROOT,
                            assert_hangups_are_the_recorded_inbound_ones,
                            recorded_session_events, run_client_script)

SCRIPT = Path(__file__).resolve().parent / "genesis_client.py"


def test_genesis_authenticates_subscribes_and_reads_the_capture(switch_factory):
    switch = switch_factory(BRIDGED_PLAIN)
    out, after = run_client_script([sys.executable, str(SCRIPT)], ROOT, switch)

    assert out["bad_password"] == "AuthenticationError"
    assert out["start"] == [
        "+OK event listener enabled plain", "+OK events nixed",
        "+OK no longer listening for events", "+OK event listener enabled plain",
        "+OK filter added. [Call-Direction]=[inbound]"]
    assert out["myevents"] == "+OK Events Enabled"
    assert_hangups_are_the_recorded_inbound_ones(out["hangups"])
    assert (out["session_ids"], out["session_count"]) == (
        [B_LEG], recorded_session_events(B_LEG))
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
