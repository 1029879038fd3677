"""Reconciliation on a busy switch: replies sharing writes with events, a
lagging channel list, many overlapping calls.  No invented event, ever.

The switch is tests/busy_switch.py (real TCP, real ESL bytes); webhooks go
to the real HTTP receiver.  What each test checks is what a receiver sees:
every call exactly one channel_create and one channel_destroy, and no
``reconciled: true`` payload unless a real event was really lost.
"""

from __future__ import annotations

import uuid
from collections import Counter

import gevent
import pytest
import yaml
from busy_switch import ACCOUNT, BusySwitch
from helpers import FAST_TIMINGS, wait_until

from eslhook.config import load_config
from eslhook.service import Bridge
from eslhook.source.switch import ReconnectPolicy


class World:
    def __init__(self, tmp_path, receiver, switch: BusySwitch, *, interval: float,
                 confirm: float):
        self.tmp, self.receiver, self.switch = tmp_path, receiver, switch
        host, port = switch.start()
        (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
            "switches": [{"name": "fs1", "host": host, "port": port}],
            "accounts": [{"id": ACCOUNT, "name": "Acme"}],
            "reconcile": {"interval_seconds": interval, "confirm_seconds": confirm}}))
        (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
            "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "all", "hook": "all",
            "format": "json", "uri": receiver.url("/all")}]}))
        # reconnect at once: the test is about what happens after, not the backoff
        self.bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=FAST_TIMINGS)
        self.bridge.start()
        self.reconciler = self.bridge.reconcilers["fs1"]

    def payloads(self):
        return [r.json for r in self.receiver.requests]

    def reconciled(self) -> Counter:
        """Synthetic payloads that arrived, by kind."""
        return Counter(p["hook_event"] for p in self.payloads() if p.get("reconciled"))

    def events_of(self, call_id):
        return [p["hook_event"] for p in self.payloads() if p["call_id"] == call_id]

    def destroys(self) -> Counter:
        return Counter(p["call_id"] for p in self.payloads()
                       if p["hook_event"] == "channel_destroy")

    def wait_real_destroys(self, calls) -> None:
        """Until each call's real destroy arrived (anything synthesised for it came first)."""
        def arrived():
            real = {p["call_id"] for p in self.payloads()
                    if p["hook_event"] == "channel_destroy" and not p.get("reconciled")}
            return real >= set(calls)
        assert wait_until(arrived, timeout=15)

    def settle(self) -> None:
        """Two more runs done (whatever an earlier one emitted is submitted), all delivered."""
        self.wait_runs(2)
        assert self.bridge.delivery.wait_idle(timeout=10)

    def wait_runs(self, count: int) -> None:
        target = self.reconciler.runs + count
        assert wait_until(lambda: self.reconciler.runs >= target, timeout=10)

    def close(self):
        self.bridge.stop(drain_seconds=1)
        self.switch.stop()


@pytest.fixture
def world(tmp_path, receiver):
    made = []

    def make(switch, interval=0.2, confirm=0.05):
        made.append(World(tmp_path, receiver, switch, interval=interval, confirm=confirm))
        return made[-1]

    yield make
    for w in made:
        w.close()


# -- offline: a switch answering in the same write as new events --------------------


def on_reads(switch: BusySwitch, actions: dict) -> None:
    """Run ``actions[n]`` while the switch answers its n-th ``show channels``."""
    switch.after_api = lambda read: actions.get(read, lambda: None)()


def test_reconcile_does_not_close_calls_created_in_the_same_write_as_a_show_channels_reply(
        world):
    switch = BusySwitch(reply_first=True)
    # Each CREATE is written with the answer, which was made before the channel
    # existed; "with-first" is also listed late (by neither read).
    on_reads(switch, {1: lambda: switch.create("with-first", listed_after=60),
                      2: lambda: switch.create("with-second")})
    w = world(switch)
    w.wait_runs(1)
    assert switch.listed_rows[:2] == [0, 0]
    for call in ("with-first", "with-second"):
        switch.hangup(call)
    w.wait_real_destroys(["with-first", "with-second"])
    w.settle()
    assert w.reconciled() == Counter()
    assert w.destroys() == {"with-first": 1, "with-second": 1}
    assert w.reconciler.synthesised == 0


def test_reconcile_does_not_close_a_call_the_channel_list_shows_late(world):
    # Created on the switch just before the first read arrived there: its
    # CREATE is written ahead of the answer, which does not list it yet, nor
    # does the second (a busy switch's list lags by more than confirm_seconds).
    switch = BusySwitch(reply_first=False)
    on_reads(switch, {1: lambda: switch.create("late", listed_after=60)})
    w = world(switch)
    w.wait_runs(1)
    assert switch.listed_rows[:2] == [0, 0]
    switch.hangup("late")
    w.wait_real_destroys(["late"])
    w.settle()
    assert w.reconciled() == Counter()
    assert w.events_of("late") == ["channel_create", "channel_destroy"]


def test_reconcile_does_not_recreate_a_call_that_ended_while_the_reads_were_in_flight(world):
    # Born while eslhook was away (nobody got its CREATE), it ends between the
    # two reads; both still list it, as the real list lags behind a hangup.
    switch = BusySwitch(list_lag=60)
    switch.create("away", listed_after=0)
    on_reads(switch, {2: lambda: switch.hangup("away")})
    w = world(switch)
    w.wait_runs(1)
    w.wait_real_destroys(["away"])
    w.settle()
    assert switch.listed_rows[:2] == [1, 1]
    assert w.reconciler.synthesised == 0
    assert w.events_of("away") == ["channel_destroy"]


@pytest.mark.parametrize("when", ["same write as the answer", "next write"])
def test_reconcile_does_not_create_a_call_whose_real_create_comes_after_the_answer(world, when):
    # Listed by both reads, but its CREATE (held back, a busy switch's queue)
    # is written with the second answer or right after it.
    switch = BusySwitch(reply_first=True)
    switch.create("racing", listed_after=0, publish=False)
    release = lambda: switch.publish("CHANNEL_CREATE", "racing")   # noqa: E731
    on_reads(switch, {2: release if when == "same write as the answer"
                      else lambda: gevent.spawn(lambda: (release(), switch.flush()))})
    w = world(switch)
    w.wait_runs(1)
    switch.hangup("racing")
    w.wait_real_destroys(["racing"])
    w.settle()
    assert switch.listed_rows[:2] == [1, 1]
    assert w.reconciler.synthesised == 0
    assert w.events_of("racing") == ["channel_create", "channel_destroy"]


# -- under load: many overlapping calls, reconciling every 0.2 s --------------------

LOAD = dict(count=150, per_second=150, duration=(0.5, 0.9))   # ~100 calls up at once


def busy_switch() -> BusySwitch:
    # The list shows a new channel 30 ms late and a gone one 30 ms too long;
    # events go out every 5 ms, answers overtake what is queued.
    return BusySwitch(list_lag=0.03, flush_seconds=0.005, reply_first=True)


def assert_every_call_once(w: World, calls: list[str]) -> None:
    w.wait_real_destroys(calls)
    w.settle()
    assert w.reconciled() == Counter()
    assert w.reconciler.synthesised == 0
    wrong = {c: w.events_of(c) for c in calls
             if w.events_of(c) != ["channel_create", "channel_answer", "channel_destroy"]}
    assert wrong == {}


def test_reconcile_under_load_invents_no_event(world):
    switch = busy_switch()
    w = world(switch, interval=0.15, confirm=0.08)
    w.wait_runs(1)          # reconciling already, so the load meets it (a loaded CI starts late)
    before = w.reconciler.runs
    calls = switch.schedule_calls(**LOAD)
    assert wait_until(lambda: switch.schedule_done, timeout=20)
    runs_during_load = w.reconciler.runs - before
    assert_every_call_once(w, calls)
    # It did reconcile, against a busy list.
    assert runs_during_load >= 2 and max(switch.listed_rows) >= 50


def test_reconcile_after_a_clean_reconnect_under_load_invents_no_event(world):
    switch = busy_switch()
    w = world(switch, interval=0.15, confirm=0.08)
    calls = switch.schedule_calls(**LOAD)
    assert wait_until(lambda: len(w.payloads()) >= 150, timeout=20)   # in full swing
    switch.disconnect_all()     # written what was queued: nothing lost
    assert wait_until(lambda: w.bridge.sources[0].state.connects == 2, timeout=10)
    assert wait_until(lambda: switch.schedule_done, timeout=20)
    assert_every_call_once(w, calls)
    assert max(switch.listed_rows) >= 50


def test_reconcile_after_a_reconnect_that_lost_events_under_load_repairs_exactly_those(world):
    # The true positives still hold under load: a switch that went on while
    # eslhook was away (0.3 s, ~45 calls started and ~45 ended meanwhile).
    switch = BusySwitch(list_lag=0.03, flush_seconds=0.005, lose_events=True)
    w = world(switch, interval=0.15, confirm=0.08)
    w.bridge.sources[0].policy = ReconnectPolicy(first_seconds=0.3, cap_seconds=0.3, jitter=0)
    calls = switch.schedule_calls(**LOAD)
    assert wait_until(lambda: len(w.payloads()) >= 150, timeout=20)
    switch.disconnect_all()
    assert wait_until(lambda: w.bridge.sources[0].state.connects == 2, timeout=10)
    assert wait_until(lambda: switch.schedule_done, timeout=20)
    heard = [c for c in calls if ("CHANNEL_HANGUP_COMPLETE", c) not in switch.lost]
    w.wait_real_destroys(heard)
    w.settle()
    lost = {name: {c for n, c in switch.lost if n == name}
            for name in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE")}
    seen = {p["call_id"] for p in w.payloads()}
    synthetic = {kind: {p["call_id"] for p in w.payloads()
                        if p.get("reconciled") and p["hook_event"] == kind}
                 for kind in ("channel_create", "channel_destroy")}
    # Every call eslhook knew of got exactly one destroy: real, or synthesised
    # exactly when its hangup was lost; a create is synthesised only for a
    # call whose CREATE was lost.
    assert {c: n for c, n in w.destroys().items() if n != 1} == {}
    assert set(w.destroys()) == seen
    assert synthetic["channel_destroy"] == (lost["CHANNEL_HANGUP_COMPLETE"] & seen)
    assert synthetic["channel_create"] <= lost["CHANNEL_CREATE"]
    assert synthetic["channel_destroy"] and synthetic["channel_create"]   # both happened
