"""End to end: fake switch --TCP--> Bridge --HTTP--> a real receiver.

Config and hooks are real YAML files loaded the way ``eslhook run`` loads
them; events are real captures or events the fake switch generates.
"""

import logging
import uuid
from collections import defaultdict

import gevent
import pytest
import helpers
import yaml
from helpers import FAST_TIMINGS
from receiver import Receiver
from world import ACME, BETA, BETA_CHILD, FALLBACK

from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event


def hook_id() -> str:
    return uuid.uuid4().hex


def wait_until(predicate, timeout=10.0):
    return helpers.wait_until(predicate, timeout)


def capture_channel_events(path):
    events = [parse_event(f) for f in split_frames(path.read_bytes())]
    return [e for e in events if e is not None and e["Event-Name"].startswith("CHANNEL_")]


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_real_calls_arrive_in_order_with_kazoo_payloads(world, captures, fmt):
    capture = captures / "json-single-calls.esl"
    expected = capture_channel_events(capture)
    w = world([capture], fmt=fmt, default_account_id=FALLBACK)
    w.write_hooks([w.hook(account, path, hook=kind) for account in (FALLBACK, ACME)
                   for path, kind in (("/all", "all"), ("/destroy", "channel_destroy"))])
    w.start()
    destroys = [e for e in expected if e["Event-Name"] == "CHANNEL_HANGUP_COMPLETE"]
    assert wait_until(lambda: len(w.receiver.requests) == len(expected) + len(destroys))
    got = w.by_path()
    # ACME's 1005 calls resolve to ACME by ecallmgr_Account-ID; all others
    # fall back to the default account.
    acme_calls = {e["Unique-ID"] for e in expected
                  if e.get("variable_ecallmgr_Account-ID") == ACME}
    assert acme_calls
    assert {p["call_id"] for p in got["/all"] if p["account_id"] == ACME} == acme_calls
    assert {p["account_id"] for p in got["/all"]} == {FALLBACK, ACME}
    # Different calls go in parallel: compare as sets.
    assert sorted((p["hook_event"], p["call_id"]) for p in got["/destroy"]) == sorted(
        ("channel_destroy", e["Unique-ID"]) for e in destroys)
    # Per hook and call, the events arrive in the switch's order.  (A 1005
    # call starts in FALLBACK and ends in ACME: two hooks, no order between.)
    order = {"channel_create": 0, "channel_answer": 1, "channel_destroy": 2}
    per_hook_call, per_call = defaultdict(list), defaultdict(set)
    for request in w.receiver.requests:
        if request.path == "/all":
            payload = request.json
            rank = order[payload["hook_event"]]
            per_hook_call[request.header("X-Hook-ID"), payload["call_id"]].append(rank)
            per_call[payload["call_id"]].add(rank)
    assert len(per_call) == 35 and all({0, 2} <= ranks for ranks in per_call.values())
    assert all(seq == sorted(seq) for seq in per_hook_call.values())
    # The busy call (sipp -> 1001, FreeSWITCH answered 486 itself).
    busy = next(p for p in got["/destroy"] if p["call_id"] == "c5b885aa-4331-4b15-9c39-84ce1a3d4b2c")
    assert busy["hangup_cause"] == "USER_BUSY" and busy["hangup_code"] == "sip:486"
    assert busy["switch"] == "fs1" and busy["is_internal_leg"] is False
    assert w.receiver.requests[0].header("X-Hook-ID") is not None


def test_account_resolution_variable_realm_default_and_unassigned(world):
    w = world()
    w.write_hooks([w.hook(ACME, "/acme", hook="channel_create"),
                   w.hook(BETA, "/beta", hook="channel_create"),
                   w.hook(FALLBACK, "/fallback", hook="channel_create")])
    w.start()
    w.call("by-variable", "CHANNEL_CREATE", account_id=BETA, domain_name="acme.example.com")
    w.call("by-realm", "CHANNEL_CREATE", sip_req_host="acme.example.com")
    w.call("nobody", "CHANNEL_CREATE", sip_req_host="unknown.example.com")
    assert wait_until(lambda: len(w.receiver.requests) == 2)
    gevent.sleep(0.3)
    got = w.by_path()
    assert [p["call_id"] for p in got["/beta"]] == ["by-variable"]
    assert [p["call_id"] for p in got["/acme"]] == ["by-realm"]
    assert got["/fallback"] == []  # no default configured: unassigned, delivered nowhere
    assert w.bridge.stats.unassigned == 1


def test_default_account_catches_what_nothing_else_assigns(world):
    w = world(default_account_id=FALLBACK)
    w.write_hooks([w.hook(FALLBACK, "/fallback", hook="channel_create")])
    w.start()
    w.call("nobody", "CHANNEL_CREATE", sip_req_host="unknown.example.com")
    assert wait_until(lambda: len(w.receiver.requests) == 1)
    assert w.receiver.requests[0].json["account_id"] == FALLBACK
    assert w.bridge.stats.unassigned == 0


def test_sub_accounts_reach_parent_hooks_only_with_include_subaccounts(world):
    w = world()
    w.write_hooks([w.hook(BETA, "/parent-incl", hook="channel_create", include_subaccounts=True),
                   w.hook(BETA, "/parent-only", hook="channel_create"),
                   w.hook(BETA_CHILD, "/child", hook="channel_create")])
    w.start()
    w.call("child-call", "CHANNEL_CREATE", account_id=BETA_CHILD)
    w.call("parent-call", "CHANNEL_CREATE", account_id=BETA)
    assert wait_until(lambda: len(w.receiver.requests) == 4)
    gevent.sleep(0.3)
    got = {path: sorted(p["call_id"] for p in payloads) for path, payloads in w.by_path().items()}
    assert got == {"/parent-incl": ["child-call", "parent-call"], "/parent-only": ["parent-call"],
                   "/child": ["child-call"]}


def test_internal_legs_are_skipped_when_the_hook_says_so(world):
    w = world()
    w.write_hooks([w.hook(ACME, "/everything", hook="channel_create"),
                   w.hook(ACME, "/external", hook="channel_create", include_internal_legs=False)])
    w.start()
    w.call("loop-leg", "CHANNEL_CREATE", account_id=ACME, channel="loopback/1000-a")
    w.call("sip-leg", "CHANNEL_CREATE", account_id=ACME)
    assert wait_until(lambda: len(w.receiver.requests) == 3)
    gevent.sleep(0.3)
    got = w.by_path()
    assert sorted(p["call_id"] for p in got["/everything"]) == ["loop-leg", "sip-leg"]
    assert [p["call_id"] for p in got["/external"]] == ["sip-leg"]
    assert [p["is_internal_leg"] for p in got["/everything"] if p["call_id"] == "loop-leg"] == [True]


def test_custom_data_is_merged_over_the_payload(world):
    w = world()
    w.write_hooks([w.hook(ACME, "/crm", hook="channel_create",
                          custom_data={"source": "eslhook", "call_direction": "overridden"})])
    w.start()
    w.call("c1", "CHANNEL_CREATE", account_id=ACME)
    assert wait_until(lambda: len(w.receiver.requests) == 1)
    payload = w.receiver.requests[0].json
    assert payload["source"] == "eslhook" and payload["call_direction"] == "overridden"
    assert payload["call_id"] == "c1"


def test_a_bad_hooks_edit_keeps_the_old_hooks_and_a_good_one_takes_over(world, caplog):
    w = world()
    first = w.hook(ACME, "/first", hook="channel_create")
    w.write_hooks([first])
    w.start()
    generation = w.bridge.hooks.generation
    with caplog.at_level(logging.ERROR, logger="eslhook.hooks.store"):
        (w.tmp / "hooks.yaml").write_text("webhooks:\n  - id: [not, valid\n")
        assert wait_until(lambda: "rejected" in caplog.text)   # the store read it ...
        gevent.sleep(FAST_TIMINGS.hooks_poll_seconds * 4)      # ... and polled on after
    assert w.bridge.hooks.generation == generation
    w.call("during-bad-edit", "CHANNEL_CREATE", account_id=ACME)
    assert wait_until(lambda: len(w.receiver.requests) == 1)
    assert w.receiver.requests[0].path == "/first"
    w.write_hooks([w.hook(ACME, "/second", hook="channel_create")])
    assert wait_until(lambda: w.bridge.hooks.generation > generation, timeout=5)
    w.call("after-good-edit", "CHANNEL_CREATE", account_id=ACME)
    assert wait_until(lambda: len(w.receiver.requests) == 2)
    assert (w.receiver.requests[1].path, w.receiver.requests[1].json["call_id"]) == (
        "/second", "after-good-edit")


def test_two_switches_in_one_process(tmp_path, captures):
    receiver = Receiver()
    fakes = [FakeSwitch([captures / "json-single-calls.esl"]) for _ in range(2)]
    addresses = [fake.start() for fake in fakes]
    config = {"switches": [{"name": "fs%d" % i, "host": h, "port": p, "format": fmt}
                           for i, ((h, p), fmt) in enumerate(zip(addresses, ["json", "plain"]))],
              "hooks_file": "hooks.yaml", "state_dir": "state",
              "accounts": [{"id": FALLBACK}], "default_account_id": FALLBACK}
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": hook_id(), "account_id": FALLBACK, "name": "destroys", "format": "json",
        "hook": "channel_destroy", "uri": receiver.url("/d")}]}))
    bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=FAST_TIMINGS)
    bridge.start()
    try:
        assert wait_until(lambda: len(receiver.requests) == 70)
        switches = defaultdict(set)
        for request in receiver.requests:
            switches[request.json["switch"]].add(request.json["call_id"])
        assert set(switches) == {"fs0", "fs1"}
        assert switches["fs0"] == switches["fs1"] and len(switches["fs0"]) == 35
    finally:
        bridge.stop(drain_seconds=1)
        for fake in fakes:
            fake.stop()
        receiver.stop()
