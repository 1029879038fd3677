"""GET /metrics against a running bridge: fake switch -> Bridge -> real receiver.

Scraped over real HTTP and parsed with prometheus_client's own parser.
"""

import pytest
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families
from receiver import Reply

from eslhook.metrics import LatencyHistogram



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
