"""eslhook/timings.py: production's intervals, written out, and how a Bridge hands them on.

The tests run with FAST_TIMINGS; this file is what keeps the defaults that
``eslhook run`` uses from changing unnoticed.
"""

import dataclasses

import gevent
import pytest
import yaml
from helpers import FAST_TIMINGS, wait_until
from world import ACME

from eslhook.config import load_config
from eslhook.service import Bridge
from eslhook.source.switch import ReconnectPolicy
from eslhook.timings import Timings

PRODUCTION = {
    "reconnect": ReconnectPolicy(first_seconds=0.5, cap_seconds=10.0, jitter=0.2),
    "liveness_check_seconds": 1.0, "malformed_log_seconds": 10.0,
    "hooks_poll_seconds": 1.0, "hooks_settle_seconds": 0.025,
    "hooks_empty_settle_seconds": 1.0, "open_calls_flush_seconds": 1.0,
    "open_calls_error_report_seconds": 10.0, "spool_commit_retry_seconds": 1.0,
    "spool_error_report_seconds": 10.0}


def bridge_parts(bridge: Bridge) -> dict:
    """Each timing as the part that waits on it holds it."""
    source = bridge.sources[0]
    failing_retry, failing_report = bridge.delivery._store._failing_intervals
    return {
        "reconnect": source.policy, "liveness_check_seconds": source.liveness_check_seconds,
        "malformed_log_seconds": source.malformed_log_seconds,
        "hooks_settle_seconds": bridge.hooks.settle_seconds,
        "hooks_empty_settle_seconds": bridge.hooks.empty_settle_seconds,
        "open_calls_flush_seconds": bridge.calls.flush_seconds,
        "open_calls_error_report_seconds": bridge.calls.error_report_seconds,
        "spool_commit_retry_seconds": failing_retry,
        "spool_error_report_seconds": failing_report}


@pytest.fixture
def config(tmp_path):
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "port": 8021}], "state_dir": "state"}))
    return load_config(tmp_path / "eslhook.yaml")


def test_the_defaults_are_production_s_intervals():
    assert dataclasses.asdict(Timings()) == {
        k: dataclasses.asdict(v) if k == "reconnect" else v for k, v in PRODUCTION.items()}


@pytest.mark.parametrize("timings", [None, FAST_TIMINGS], ids=["default", "injected"])
def test_a_bridge_hands_each_timing_to_the_part_that_waits_on_it(config, timings):
    bridge = Bridge(config) if timings is None else Bridge(config, timings=timings)
    expected = dataclasses.asdict(timings or Timings())
    del expected["hooks_poll_seconds"]   # an argument of start(): the next test's
    got = bridge_parts(bridge)
    got["reconnect"] = dataclasses.asdict(got["reconnect"])
    assert got == expected
    if timings is None:
        assert bridge.timings == Timings(**PRODUCTION)


@pytest.mark.parametrize("poll, picked_up", [(0.05, True), (3600.0, False)])
def test_the_hooks_file_is_polled_at_the_injected_interval(world, poll, picked_up):
    w = world(timings=dataclasses.replace(FAST_TIMINGS, hooks_poll_seconds=poll)).start()
    generation = w.bridge.hooks.generation
    w.write_hooks([w.hook(ACME, "/new")])
    if picked_up:
        assert wait_until(lambda: w.bridge.hooks.generation > generation)
    else:   # an hour between polls: not within half a second
        gevent.sleep(0.5)
        assert w.bridge.hooks.generation == generation


@pytest.mark.parametrize("field, value", [("liveness_check_seconds", 0),
                                          ("hooks_poll_seconds", -1.0),
                                          ("spool_commit_retry_seconds", float("inf")),
                                          ("reconnect", 0.5)])
def test_a_bad_timing_fails_where_it_is_written(field, value):
    with pytest.raises(ValueError, match="Timings.%s" % field):
        Timings(**{field: value})
