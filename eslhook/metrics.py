"""Prometheus metrics for ``GET /metrics``, read from the bridge at scrape time.

The hot path pays nothing for them: a scrape reads the counters the stages
keep anyway (``SwitchSource.state``, ``Bridge.stats``, ``DeliveryQueue.stats``,
``HookStore.hooks``).  The only per-delivery cost is the latency histogram: the
delivery queue calls ``BridgeMetrics.observe_attempt`` after each HTTP attempt
(a bisect and two additions).  Metrics live on their own ``CollectorRegistry``,
never on prometheus_client's global one, so two bridges in one process (tests)
do not collide.

Serving: ``render_metrics(bridge, accept)`` returns ``(content_type, body)``;
``wsgi_app(bridge)`` is the same as a WSGI callable.  No label ever holds a
secret: labels are switch names, FreeSWITCH event names and fixed words.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric)
from prometheus_client.exposition import choose_encoder

from .delivery.policy import Outcome, is_success
from .hooks.model import Hook

if TYPE_CHECKING:
    from .delivery.queue import DeliveryStats
    from .service import Bridge

# Seconds.  Loopback receivers answer in ~1 ms; a slow receiver hits the 10 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
ATTEMPT_RESULTS = ("success", "failure")


class LatencyHistogram:
    """Bucket counts for one label value; cumulated only when scraped."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS):
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("LatencyHistogram.bounds: must be increasing and not empty")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)     # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal")
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class BridgeMetrics:
    """The bridge's metrics: owns the registry and the latency histograms."""

    def __init__(self, bridge: "Bridge"):
        self.latency = {result: LatencyHistogram() for result in ATTEMPT_RESULTS}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_BridgeCollector(bridge, self))

    def observe_attempt(self, hook: Hook, outcome: Outcome) -> None:
        """Called by the delivery queue after every HTTP attempt."""
        result = "success" if is_success(outcome) else "failure"
        self.latency[result].observe(outcome.duration_seconds)

    def render(self, accept: str | None = None) -> tuple[str, bytes]:
        """The exposition for an ``Accept`` header: (content type, body)."""
        encoder, content_type = choose_encoder(accept or "")
        return content_type, encoder(self.registry)


class _BridgeCollector:
    def __init__(self, bridge: "Bridge", metrics: BridgeMetrics):
        self.bridge = bridge
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        delivery = self.bridge.delivery.stats     # one snapshot: it walks the lanes
        yield from self._switches()
        yield from self._ingest(delivery)
        yield from self._delivery(delivery)
        yield from self._hooks()

    def _switches(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "eslhook_events_received", "Events read from a switch, by event name "
            "(HEARTBEAT included).", labels=["switch", "event"])
        connected = GaugeMetricFamily(
            "eslhook_switch_connected", "1 while subscribed to the switch's events, else 0.",
            labels=["switch"])
        reconnects = CounterMetricFamily(
            "eslhook_switch_reconnects", "Reconnection attempts scheduled.", labels=["switch"])
        auth_failures = CounterMetricFamily(
            "eslhook_switch_auth_failures", "Connections the switch refused for a bad "
            "password.", labels=["switch"])
        malformed = CounterMetricFamily(
            "eslhook_events_malformed", "Events skipped because they could not be read "
            "or mapped; the connection stays.", labels=["switch"])
        protocol_errors = CounterMetricFamily(
            "eslhook_switch_malformed_frames", "Frames that could not be framed (bad "
            "Content-Length, endless header): each dropped the connection.",
            labels=["switch"])
        for source in self.bridge.sources:
            state, name = source.state, source.name
            for event_name, count in list(state.events_by_name.items()):
                received.add_metric([name, event_name or ""], count)
            connected.add_metric([name], 1 if state.connected else 0)
            reconnects.add_metric([name], state.reconnects)
            auth_failures.add_metric([name], state.auth_failures)
            malformed.add_metric([name], state.malformed)
            protocol_errors.add_metric([name], state.protocol_errors)
        yield from (received, connected, reconnects, auth_failures, malformed, protocol_errors)

    def _ingest(self, delivery: "DeliveryStats") -> Iterator[Metric]:
        stats = self.bridge.stats
        for name, doc, value in (
                ("eslhook_events_mapped", "Channel events that became a payload.", stats.mapped),
                ("eslhook_events_unassigned", "Payloads no account claimed: delivered "
                 "nowhere.", stats.unassigned),
                ("eslhook_events_unmatched", "Payloads of an account with no hook for them.",
                 stats.unmatched),
                ("eslhook_ingest_dropped", "(hook, payload) pairs refused because the "
                 "ingest buffer was full or delivery was stopping.", stats.dropped)):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "eslhook_ingest_buffer_depth", "Pending deliveries held in memory (the buffer "
            "between the ESL readers and delivery, bounded by delivery.buffer_size).",
            value=delivery.resident)
        yield GaugeMetricFamily(
            "eslhook_ingest_buffer_capacity", "delivery.buffer_size: beyond it, deliveries "
            "are dropped.", value=self.bridge.config.delivery.buffer_size)

    def _delivery(self, stats: "DeliveryStats") -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "eslhook_deliveries", "Webhook deliveries by result: success (2xx), failure "
            "(an attempt without 2xx), retry (a retry scheduled), given_up (abandoned).",
            labels=["result"])
        failures = sum(self.metrics.latency["failure"].counts)
        for result, value in (("success", stats.delivered), ("failure", failures),
                              ("retry", stats.retried), ("given_up", stats.given_up)):
            deliveries.add_metric([result], value)
        yield deliveries
        latency = HistogramMetricFamily(
            "eslhook_delivery_latency_seconds", "Duration of each HTTP attempt, from "
            "connecting (or reusing a connection) to the end of the response.",
            labels=["result"])
        for result, histogram in self.metrics.latency.items():
            latency.add_metric([result], histogram.buckets(), sum_value=histogram.total)
        yield latency
        yield GaugeMetricFamily("eslhook_spool_depth", "Deliveries accepted and not yet "
                                "delivered or given up (in memory or in the spool).",
                                value=stats.pending)
        yield GaugeMetricFamily("eslhook_deliveries_in_flight", "HTTP attempts running now.",
                                value=stats.in_flight)
        yield CounterMetricFamily("eslhook_deliveries_invalid", "Deliveries whose hook and "
                                  "payload could not make a request.", value=stats.invalid)
        yield CounterMetricFamily("eslhook_deliveries_expired", "Pending deliveries dropped "
                                  "for being older than delivery.max_age_seconds.",
                                  value=stats.expired)
        yield CounterMetricFamily("eslhook_hooks_auto_disabled", "Hooks disabled by eslhook "
                                  "after failing too long.", value=stats.hooks_disabled)
        yield from _durability(stats)

    def _hooks(self) -> Iterator[Metric]:
        hooks = self.bridge.hooks.hooks
        enabled = sum(1 for hook in hooks if hook.enabled)
        family = GaugeMetricFamily("eslhook_hooks", "Hooks in force, by state.",
                                   labels=["state"])
        family.add_metric(["enabled"], enabled)
        family.add_metric(["disabled"], len(hooks) - enabled)
        yield family


def _durability(stats: "DeliveryStats") -> Iterator[Metric]:
    """The spool's health: a full disk shows here (and in /healthz) before it costs."""
    yield GaugeMetricFamily(
        "eslhook_delivery_not_durable", "Pending deliveries the spool could not commit "
        "(disk full, I/O error): held in memory, still delivered, lost if eslhook stops "
        "before they fit.", value=stats.not_durable)
    yield GaugeMetricFamily(
        "eslhook_spool_commit_failing", "1 while commits to the delivery spool fail (the "
        "log says why, once per interval), else 0.", value=1 if stats.spool_error else 0)
    yield CounterMetricFamily(
        "eslhook_spool_unrecorded", "Finished deliveries and attempt-log rows never "
        "recorded: given up to bound memory while the spool could not commit.",
        value=stats.unrecorded)


def render_metrics(bridge: "Bridge", accept: str | None = None) -> tuple[str, bytes]:
    """``GET /metrics``: (content type, body) for the request's ``Accept`` header."""
    return bridge.metrics.render(accept)


def wsgi_app(bridge: "Bridge"):
    """A WSGI callable answering every GET with the metrics (for any listener)."""

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"),
                                                      ("Content-Length", "0")])
            return [b""]
        content_type, body = render_metrics(bridge, environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    return app
