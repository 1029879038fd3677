"""GET /metrics against a running bridge: fake switch -> Bridge -> real receiver,
scraped over real HTTP from the bridge's API and parsed with prometheus_client's
own parser; and the metrics themselves from hand-built status snapshots.
"""

import re
from pathlib import Path

import pytest
from helpers import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from receiver import Reply

from eslhook.metrics import LatencyHistogram, metric_families, render
from eslhook.ports import (DeliveryStatus, IngestStatus, LatencyCounts, StatusSnapshot,
                           SwitchStatus)
from eslhook.supervise import SupervisionStatus



def scrape(ops_world) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    response = ops_world.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[name, frozenset(labels.items())]


def test_events_deliveries_and_latency_of_real_calls(ops_world):
    w = ops_world()
    w.write_hooks([w.hook("/all"), w.hook("/off", enabled=False),
                   w.hook("/destroy", hook="channel_destroy")])
    w.start()
    for _ in range(3):
        w.call()
    w.call(realm="nobody.example.com")             # no account: unassigned
    assert wait_until(lambda: w.bridge.delivery.stats.delivered == 12)   # 9 + 3
    assert wait_until(lambda: len(w.receiver.requests) == 12)
    m = scrape(w)
    for event, count in (("CHANNEL_CREATE", 4), ("CHANNEL_ANSWER", 4),
                         ("CHANNEL_HANGUP_COMPLETE", 4)):
        assert value(m, "eslhook_events_received_total", switch="fs1", event=event) == count
    assert value(m, "eslhook_events_mapped_total") == 12
    assert value(m, "eslhook_events_unassigned_total") == 3
    assert value(m, "eslhook_deliveries_total", result="success") == 12
    assert value(m, "eslhook_deliveries_total", result="failure") == 0
    assert value(m, "eslhook_hooks", state="enabled") == 2
    assert value(m, "eslhook_hooks", state="disabled") == 1
    assert value(m, "eslhook_switch_connected", switch="fs1") == 1
    assert value(m, "eslhook_spool_depth") == 0
    assert value(m, "eslhook_ingest_buffer_depth") == 0
    assert value(m, "eslhook_ingest_dropped_total") == 0
    assert value(m, "eslhook_deliveries_expired_total") == 0
    assert value(m, "eslhook_hooks_auto_disabled_total") == 0
    # one latency observation per attempt, cumulative buckets ending at the count
    count = value(m, "eslhook_delivery_latency_seconds_count", result="success")
    assert count == 12
    assert 0 < value(m, "eslhook_delivery_latency_seconds_sum", result="success") < 12 * 2
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in m.items()
                     if name == "eslhook_delivery_latency_seconds_bucket"
                     and dict(labels)["result"] == "success")
    assert buckets[-1] == (float("inf"), 12)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_failures_retries_and_given_up(ops_world):
    w = ops_world()
    w.write_hooks([w.hook("/flaky", retries=1), w.hook("/gone")])
    w.receiver.responder = lambda request: (
        Reply(404) if request.path == "/gone"
        else Reply(500) if sum(r.path == "/flaky" for r in w.receiver.requests) == 1
        else Reply(200))
    w.start()
    w.call(events=["CHANNEL_CREATE"])
    # /flaky: 500 then, after the first retry delay, 200; /gone: 404 is final
    assert wait_until(lambda: len(w.receiver.requests) == 3, timeout=8)
    assert wait_until(lambda: w.bridge.delivery.stats.pending == 0)
    m = scrape(w)
    assert value(m, "eslhook_deliveries_total", result="success") == 1
    assert value(m, "eslhook_deliveries_total", result="failure") == 2
    assert value(m, "eslhook_deliveries_total", result="retry") == 1
    assert value(m, "eslhook_deliveries_total", result="given_up") == 1
    assert value(m, "eslhook_delivery_latency_seconds_count", result="failure") == 2


def test_a_hook_disabled_for_410_is_counted_and_shown_disabled(ops_world):
    w = ops_world()
    w.write_hooks([w.hook("/gone"), w.hook("/fine", hook="channel_create")])   # no notices
    w.receiver.responder = lambda request: Reply(410 if request.path == "/gone" else 200)
    w.start()
    w.call(events=["CHANNEL_CREATE"])
    assert wait_until(lambda: w.bridge.delivery.stats.hooks_disabled == 1)
    # the disable is written to hooks.yaml and the store reloads it
    assert wait_until(lambda: scrape(w)[("eslhook_hooks", frozenset({("state", "disabled")}))]
                      == 1, timeout=5)
    m = scrape(w)
    assert value(m, "eslhook_hooks_auto_disabled_total") == 1
    assert value(m, "eslhook_hooks", state="enabled") == 1
    assert value(m, "eslhook_deliveries_total", result="success") == 1


def test_backlog_and_drops_show_while_the_receiver_is_slow(ops_world):
    w = ops_world(delivery={"timeout_seconds": 5, "max_in_flight": 1, "buffer_size": 2})
    w.write_hooks([w.hook("/slow")])
    w.receiver.default_reply = Reply(200, delay=0.5)
    w.start()
    w.call()                               # 3 events: 2 fit the buffer... then drops
    w.call()
    assert wait_until(lambda: w.bridge.stats.dropped >= 1)
    m = scrape(w)
    assert value(m, "eslhook_ingest_buffer_capacity") == 2
    assert 1 <= value(m, "eslhook_ingest_buffer_depth") <= 2
    assert value(m, "eslhook_spool_depth") >= value(m, "eslhook_ingest_buffer_depth")
    assert value(m, "eslhook_ingest_dropped_total") == w.bridge.stats.dropped >= 1
    assert value(m, "eslhook_deliveries_in_flight") == 1


def test_a_lost_switch_reads_disconnected_and_counts_reconnects(ops_world, tmp_path):
    w = ops_world(switches=("fs1", "fs2")).start()
    w.fakes["fs2"].stop()
    assert wait_until(lambda: not w.bridge.sources[1].state.connected)
    assert wait_until(lambda: w.bridge.sources[1].state.reconnects >= 1, timeout=5)
    m = scrape(w)
    assert value(m, "eslhook_switch_connected", switch="fs1") == 1
    assert value(m, "eslhook_switch_connected", switch="fs2") == 0
    assert value(m, "eslhook_switch_reconnects_total", switch="fs2") >= 1
    assert value(m, "eslhook_switch_reconnects_total", switch="fs1") == 0


def test_openmetrics_on_request_and_get_only(ops_world):
    w = ops_world().start()
    response = w.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    import requests
    refused = requests.post(w.url("/metrics"), timeout=5)
    assert refused.status_code == 405


def test_latency_histogram_buckets():
    histogram = LatencyHistogram((0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):
        histogram.observe(seconds)
    # a value equal to a bound belongs to it (le = less or equal)
    counts = histogram.snapshot()
    assert counts.buckets() == [("0.01", 2), ("0.1", 3), ("+Inf", 4)]
    assert counts.total == pytest.approx(3.065) and counts.count == 4
    with pytest.raises(ValueError, match="LatencyHistogram.bounds"):
        LatencyHistogram((0.1, 0.01))


# -- the metrics are a pure function of a status snapshot: hand-built ones, no bridge ---

def render_samples(snapshot, accept=None) -> dict:
    content_type, body = render(snapshot, accept)
    assert content_type.startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def latency(*counts: int, total: float = 0.0) -> LatencyCounts:
    return LatencyCounts((0.01, 0.1), counts, total)


HAND_BUILT = StatusSnapshot(
    switches=(SwitchStatus("fs1", connected=True, reconnects=2, auth_failures=3, malformed=4,
                           protocol_errors=5,
                           events_by_name={"CHANNEL_CREATE": 6, "HEARTBEAT": 7, None: 8}),
              SwitchStatus("fs2")),
    ingest=IngestStatus(mapped=11, unassigned=12, unmatched=13, dropped=14),
    delivery=DeliveryStatus(
        pending=21, resident=22, buffer_capacity=23, in_flight=24, delivered=25, retried=26,
        given_up=27, invalid=28, expired=29, hooks_disabled=30, not_durable=31,
        unrecorded=32, spool_error="database or disk is full",
        latency={"success": latency(1, 2, 3, total=1.5), "failure": latency(0, 4, 0, total=0.2)}),
    hooks_enabled=41, hooks_disabled=42,
    supervision=SupervisionStatus(dead=(("spool flusher", "RuntimeError()"),),
                                  restarts=(("switch fs1", 43),),
                                  crashes=(("spool flusher", 1), ("switch fs1", 43))))


def test_metrics_of_a_hand_built_snapshot_carry_each_value_under_its_name():
    m = render_samples(HAND_BUILT)
    expected = {
        ("eslhook_events_received_total", "fs1", "CHANNEL_CREATE"): 6,
        ("eslhook_events_received_total", "fs1", "HEARTBEAT"): 7,
        ("eslhook_events_received_total", "fs1", ""): 8,     # a frame without Event-Name
    }
    for (name, switch_name, event), count in expected.items():
        assert value(m, name, switch=switch_name, event=event) == count
    for name, fs1, fs2 in (("eslhook_switch_connected", 1, 0),
                           ("eslhook_switch_reconnects_total", 2, 0),
                           ("eslhook_switch_auth_failures_total", 3, 0),
                           ("eslhook_events_malformed_total", 4, 0),
                           ("eslhook_switch_malformed_frames_total", 5, 0)):
        assert (value(m, name, switch="fs1"), value(m, name, switch="fs2")) == (fs1, fs2), name
    for name, number in (("eslhook_events_mapped_total", 11),
                         ("eslhook_events_unassigned_total", 12),
                         ("eslhook_events_unmatched_total", 13),
                         ("eslhook_ingest_dropped_total", 14),
                         ("eslhook_spool_depth", 21), ("eslhook_ingest_buffer_depth", 22),
                         ("eslhook_ingest_buffer_capacity", 23),
                         ("eslhook_deliveries_in_flight", 24),
                         ("eslhook_deliveries_invalid_total", 28),
                         ("eslhook_deliveries_expired_total", 29),
                         ("eslhook_hooks_auto_disabled_total", 30),
                         ("eslhook_delivery_not_durable", 31),
                         ("eslhook_spool_commit_failing", 1),
                         ("eslhook_spool_unrecorded_total", 32)):
        assert value(m, name) == number, name
    for result, number in (("success", 25), ("failure", 4), ("retry", 26), ("given_up", 27)):
        assert value(m, "eslhook_deliveries_total", result=result) == number, result
    assert [value(m, "eslhook_delivery_latency_seconds_bucket", result="success", le=le)
            for le in ("0.01", "0.1", "+Inf")] == [1, 3, 6]
    assert value(m, "eslhook_delivery_latency_seconds_count", result="failure") == 4
    assert value(m, "eslhook_delivery_latency_seconds_sum", result="success") == 1.5
    assert (value(m, "eslhook_hooks", state="enabled"),
            value(m, "eslhook_hooks", state="disabled")) == (41, 42)


def test_spool_commit_failing_is_0_while_commits_work():
    m = render_samples(StatusSnapshot())
    assert value(m, "eslhook_spool_commit_failing") == 0
    assert value(m, "eslhook_delivery_latency_seconds_count", result="success") == 0


def readme_metrics() -> list[tuple[str, tuple[str, ...]]]:
    """(name, label names) of each metric the README's "Watching it" lists."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("- `GET /metrics`", 1)[1].split("\n- Logs:", 1)[0]
    listed = re.findall(r"`(eslhook_[a-z_]+)(?:\{([^}]*)\})?`", section)
    assert "`eslhook_ingest_buffer_depth` / `_capacity`" in section
    listed.append(("eslhook_ingest_buffer_capacity", ""))
    return [(name, tuple(re.findall(r"([a-z]+)(?:=|,|$)", labels))) for name, labels in listed]


def test_every_metric_the_readme_lists_is_exported_with_its_labels():
    from dataclasses import replace
    names = {}
    fleet = replace(HAND_BUILT, delivery=replace(HAND_BUILT.delivery, fleet=True))
    for family in metric_families(fleet):    # fleet mode: every metric there is
        suffix = "_total" if family.type == "counter" else ""
        for sample in family.samples:
            names.setdefault(family.name + suffix, set()).update(
                set(sample.labels) - {"le"})
    listed = readme_metrics()
    assert len(listed) >= 19          # the regex found the list
    for name, labels in listed:
        assert name in names, name
        assert names[name] == set(labels), (name, names[name])


COUNTERS = ("reconnects", "auth_failures", "malformed", "protocol_errors", "created",
            "mapped", "unassigned", "unmatched", "dropped", "delivered", "retried",
            "given_up", "invalid", "expired", "hooks_disabled", "unrecorded")
counts = st.integers(min_value=0, max_value=10 ** 9)


def counter_snapshot(c: dict, success: tuple, failure: tuple) -> StatusSnapshot:
    """A snapshot whose counters are ``c``'s, its gauges arbitrary but fixed."""
    return StatusSnapshot(
        switches=(SwitchStatus("fs1", connected=True, reconnects=c["reconnects"],
                               auth_failures=c["auth_failures"], malformed=c["malformed"],
                               protocol_errors=c["protocol_errors"],
                               events_by_name={"CHANNEL_CREATE": c["created"]}),),
        ingest=IngestStatus(c["mapped"], c["unassigned"], c["unmatched"], c["dropped"]),
        delivery=DeliveryStatus(
            pending=3, delivered=c["delivered"], retried=c["retried"],
            given_up=c["given_up"], invalid=c["invalid"], expired=c["expired"],
            hooks_disabled=c["hooks_disabled"], unrecorded=c["unrecorded"],
            latency={"success": latency(*success, total=sum(success) * 0.05),
                     "failure": latency(*failure, total=sum(failure) * 0.05)}))


def counter_samples(snapshot) -> dict:
    """Every sample that must never go down: counters and histogram series."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in metric_families(snapshot) if family.type in ("counter", "histogram")
            for sample in family.samples}


@settings(max_examples=60, deadline=None)
@given(before=st.fixed_dictionaries({name: counts for name in COUNTERS}),
       grown=st.fixed_dictionaries({name: counts for name in COUNTERS}),
       latency_before=st.lists(counts, min_size=6, max_size=6),
       latency_grown=st.lists(counts, min_size=6, max_size=6))
def test_counters_never_go_down_when_what_they_count_grew(before, grown, latency_before,
                                                          latency_grown):
    after = {name: before[name] + grown[name] for name in COUNTERS}
    latency_after = [a + b for a, b in zip(latency_before, latency_grown)]
    earlier = counter_samples(counter_snapshot(before, tuple(latency_before[:3]),
                                               tuple(latency_before[3:])))
    later = counter_samples(counter_snapshot(after, tuple(latency_after[:3]),
                                             tuple(latency_after[3:])))
    assert earlier.keys() == later.keys()
    assert all(later[key] >= earlier[key] for key in earlier), [
        key for key in earlier if later[key] < earlier[key]]


def test_fleet_metrics_only_in_fleet_mode():
    from dataclasses import replace
    embedded = render_samples(HAND_BUILT)
    assert not any(name.startswith(("eslhook_fleet_", "eslhook_database_"))
                   for name, _ in embedded)
    fleet = replace(HAND_BUILT, delivery=replace(HAND_BUILT.delivery, fleet=True,
                                                 duplicates=51, lanes_lost=52,
                                                 leases_held=53))
    m = render_samples(fleet)
    none = frozenset()
    assert m[("eslhook_database_up", none)] == 0          # spool_error is set
    assert m[("eslhook_fleet_duplicates_total", none)] == 51
    assert m[("eslhook_fleet_lanes_lost_total", none)] == 52
    assert m[("eslhook_fleet_leases_held", none)] == 53
    back = replace(fleet, delivery=replace(fleet.delivery, spool_error=None))
    assert render_samples(back)[("eslhook_database_up", none)] == 1
