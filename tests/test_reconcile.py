"""No call left open: reconciliation against the fake switch, end to end."""

import uuid

import pytest
import yaml
from helpers import FAST_TIMINGS, wait_until

from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
QUICK = {"interval_seconds": 0.2, "confirm_seconds": 0.1}


class Setup:
    def __init__(self, tmp_path, receiver):
        self.tmp, self.receiver = tmp_path, receiver
        self.fake = FakeSwitch(heartbeat_seconds=None)
        self.fake.lose_events_while_disconnected()  # as a real switch: nothing is replayed
        host, port = self.fake.start()
        (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
            "switches": [{"name": "fs1", "host": host, "port": port}],
            "accounts": [{"id": ACCOUNT, "name": "Acme"}], "reconcile": QUICK}))
        (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
            "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "all", "hook": "all",
            "format": "json", "uri": receiver.url("/all")}]}))
        self.bridges = []

    def start_bridge(self) -> Bridge:
        bridge = Bridge(load_config(self.tmp / "eslhook.yaml"), timings=FAST_TIMINGS)
        bridge.start()
        self.bridges.append(bridge)
        assert self.fake.wait_for_subscribers(1, timeout=5)
        return bridge

    def event(self, name, call_id):
        extra = [("Unique-ID", call_id), ("Call-Direction", "inbound"),
                 ("Channel-Name", "sofia/internal/1000@127.0.0.1"),
                 ("Answer-State", "answered" if name != "CHANNEL_CREATE" else "ringing"),
                 ("variable_account_id", ACCOUNT), ("variable_sip_call_id", "sip-" + call_id)]
        if name == "CHANNEL_HANGUP_COMPLETE":
            extra.append(("Hangup-Cause", "NORMAL_CLEARING"))
        self.fake.publish_generated(name, extra)

    def payloads(self, call_id=None):
        got = [r.json for r in self.receiver.requests]
        return [p for p in got if call_id is None or p["call_id"] == call_id]

    def kinds(self, call_id):
        return [(p["hook_event"], p.get("reconciled", False)) for p in self.payloads(call_id)]

    def runs(self, bridge, count):
        """Wait until the reconciler has completed ``count`` more runs."""
        reconciler = bridge.reconcilers["fs1"]
        target = reconciler.runs + count
        assert wait_until(lambda: reconciler.runs >= target, timeout=10)

    def close(self):
        for bridge in self.bridges:
            bridge.stop(drain_seconds=1)
        self.fake.stop()


@pytest.fixture
def setup(tmp_path, receiver):
    s = Setup(tmp_path, receiver)
    yield s
    s.close()


def reconnect(setup, bridge):
    source = bridge.sources[0]
    connects = source.state.connects
    setup.fake.disconnect_all()
    return connects


def test_a_call_that_ends_during_a_disconnect_gets_one_reconciled_destroy(setup):
    bridge = setup.start_bridge()
    setup.event("CHANNEL_CREATE", "ended-away")
    setup.event("CHANNEL_ANSWER", "ended-away")
    assert wait_until(lambda: len(setup.payloads("ended-away")) == 2)
    connects = reconnect(setup, bridge)
    setup.event("CHANNEL_HANGUP_COMPLETE", "ended-away")   # nobody listening: lost
    assert wait_until(lambda: bridge.sources[0].state.connects > connects)
    assert wait_until(lambda: len(setup.payloads("ended-away")) == 3)
    setup.runs(bridge, 3)   # later runs must not repeat it
    destroy = setup.payloads("ended-away")[-1]
    assert setup.kinds("ended-away") == [("channel_create", False), ("channel_answer", False),
                                         ("channel_destroy", True)]
    assert destroy["hangup_cause"] == "UNKNOWN" and destroy["account_id"] == ACCOUNT
    assert destroy["sip_call_id"] == "sip-ended-away"
    # The synthetic destroy continues the call's sequence, after what was sent.
    assert [p["sequence"] for p in setup.payloads("ended-away")] == [1, 2, 3]


def test_a_call_started_during_a_disconnect_gets_its_start_then_its_real_end(setup):
    bridge = setup.start_bridge()
    connects = reconnect(setup, bridge)
    setup.event("CHANNEL_CREATE", "born-away")
    setup.event("CHANNEL_ANSWER", "born-away")
    assert wait_until(lambda: bridge.sources[0].state.connects > connects)
    assert wait_until(lambda: len(setup.payloads("born-away")) == 2)
    setup.event("CHANNEL_HANGUP_COMPLETE", "born-away")
    assert wait_until(lambda: len(setup.payloads("born-away")) == 3)
    setup.runs(bridge, 2)
    assert setup.kinds("born-away") == [("channel_create", True), ("channel_answer", True),
                                        ("channel_destroy", False)]
    created = setup.payloads("born-away")[0]
    # Built from uuid_dump, so the account variable resolved as for a real event.
    assert created["account_id"] == ACCOUNT and created["sip_call_id"] == "sip-born-away"


def test_a_switch_restart_closes_every_open_call_as_switch_restarted(setup):
    bridge = setup.start_bridge()
    for call in ("r1", "r2"):
        setup.event("CHANNEL_CREATE", call)
    assert wait_until(lambda: len(setup.payloads()) == 2)
    setup.fake.restart(new_core_uuid=True)
    assert wait_until(lambda: len(setup.payloads()) == 4)
    setup.runs(bridge, 2)
    for call in ("r1", "r2"):
        assert setup.kinds(call) == [("channel_create", False), ("channel_destroy", True)]
        assert setup.payloads(call)[-1]["hangup_cause"] == "SWITCH_RESTARTED"
    assert len(setup.payloads()) == 4


def test_an_eslhook_restart_reconciles_the_calls_it_left_open(setup):
    first = setup.start_bridge()
    setup.event("CHANNEL_CREATE", "across-restart")
    setup.event("CHANNEL_CREATE", "still-up")
    assert wait_until(lambda: len(setup.payloads()) == 2)
    first.stop(drain_seconds=1)
    setup.bridges.remove(first)
    assert (setup.tmp / "state" / "open-calls.json").exists()
    setup.event("CHANNEL_HANGUP_COMPLETE", "across-restart")   # while eslhook is down
    second = setup.start_bridge()
    assert wait_until(lambda: len(setup.payloads()) == 3)
    setup.runs(second, 2)
    assert setup.kinds("across-restart") == [("channel_create", False),
                                             ("channel_destroy", True)]
    # The sequence counter came back from state_dir with the open call.
    assert [p["sequence"] for p in setup.payloads("across-restart")] == [1, 2]
    assert setup.kinds("still-up") == [("channel_create", False)]


def test_a_clean_reconnect_emits_nothing(setup):
    bridge = setup.start_bridge()
    setup.event("CHANNEL_CREATE", "steady")
    assert wait_until(lambda: len(setup.payloads()) == 1)
    connects = reconnect(setup, bridge)
    assert wait_until(lambda: bridge.sources[0].state.connects > connects)
    setup.runs(bridge, 3)
    assert bridge.reconcilers["fs1"].synthesised == 0
    assert setup.kinds("steady") == [("channel_create", False)]


def test_a_lagging_channel_list_causes_no_false_event(setup):
    bridge = setup.start_bridge()
    setup.fake.lag_show_channels(1)
    setup.event("CHANNEL_CREATE", "short")
    setup.event("CHANNEL_HANGUP_COMPLETE", "short")
    setup.event("CHANNEL_CREATE", "long")
    assert wait_until(lambda: len(setup.payloads()) == 3)
    connects = reconnect(setup, bridge)
    assert wait_until(lambda: bridge.sources[0].state.connects > connects)
    setup.runs(bridge, 3)
    assert bridge.reconcilers["fs1"].synthesised == 0
    assert [p.get("reconciled", False) for p in setup.payloads()] == [False] * 3


def test_periodic_reconciliation_catches_a_lost_hangup_without_any_reconnect(setup):
    bridge = setup.start_bridge()
    setup.event("CHANNEL_CREATE", "lost-end")
    setup.event("CHANNEL_CREATE", "real-end")
    assert wait_until(lambda: len(setup.payloads()) == 2)
    # The switch ends "lost-end" but its HANGUP_COMPLETE never reaches us (we
    # do not subscribe to CHANNEL_DESTROY); "real-end" ends normally.
    setup.event("CHANNEL_DESTROY", "lost-end")
    setup.event("CHANNEL_HANGUP_COMPLETE", "real-end")
    assert wait_until(lambda: len(setup.payloads()) == 4)
    setup.runs(bridge, 3)
    assert bridge.sources[0].state.connects == 1
    assert setup.kinds("lost-end") == [("channel_create", False), ("channel_destroy", True)]
    assert setup.kinds("real-end") == [("channel_create", False), ("channel_destroy", False)]
