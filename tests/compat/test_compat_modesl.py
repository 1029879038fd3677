"""modesl (npm, Node) against the fake switch: node/modesl_client.js in a
subprocess, its JSON results checked here.

Node and modesl come from `.ci/run` (apt-get nodejs npm, `npm ci` in
tests/compat/node).  Missing under CI=true: the test fails.  Missing
elsewhere: it is skipped with that reason in pytest's summary (-ra).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_support import (B_LEG, BRIDGED_PLAIN, JOB_UUID,
                            assert_hangups_are_the_recorded_inbound_ones,
                            recorded_session_events, require_node, run_client_script)

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture
def node() -> str:
    return require_node()


def test_modesl_authenticates_subscribes_and_reads_the_capture(switch_factory, node):
    switch = switch_factory(BRIDGED_PLAIN)
    out, after = run_client_script([node, "modesl_client.js"], NODE_DIR, switch)

    assert out["bad_password"] == "refused"
    assert out["subscribe"] == "+OK event listener enabled json"
    assert out["filter"] == "+OK filter added. [Call-Direction]=[inbound]"
    assert out["myevents"] == "+OK Events Enabled"
    assert_hangups_are_the_recorded_inbound_ones(out["hangups"])
    assert (out["session_ids"], out["session_count"]) == (
        [B_LEG], recorded_session_events(B_LEG))
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
