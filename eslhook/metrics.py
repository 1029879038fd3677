"""Prometheus metrics for ``GET /metrics``: a pure function of a status snapshot.

A scrape takes one ``StatusSnapshot`` (eslhook/ports.py: ``Bridge.status()``
reads the counters the stages keep anyway) and ``metric_families(snapshot)``
turns it into metric families; nothing here reads a running part.  Counters
stay monotonic because what they copy only grows.  The hot path pays nothing:
the only per-delivery cost is the latency histogram, ``AttemptLatency``, which
the delivery queue calls after each HTTP attempt (a bisect and two additions).
Each scrape renders through a ``CollectorRegistry`` of its own, never
prometheus_client's global one, so two bridges in one process (tests) do not
collide.

``render(snapshot, accept)`` returns ``(content_type, body)`` for the request's
``Accept`` header (text 0.0.4, or OpenMetrics).  No label ever holds a
secret: labels are switch names, FreeSWITCH event names and fixed words.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric)
from prometheus_client.exposition import choose_encoder

from .delivery.policy import Outcome, is_success
from .hooks.model import Hook
from .ports import (ATTEMPT_RESULTS, LATENCY_BUCKETS, DeliveryStatus, IngestStatus,
                    LatencyCounts, StatusSnapshot, SwitchStatus)
from .supervise import SupervisionStatus

__all__ = ["ATTEMPT_RESULTS", "LATENCY_BUCKETS", "AttemptLatency", "LatencyHistogram",
           "metric_families", "render"]


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

    def snapshot(self) -> LatencyCounts:
        return LatencyCounts(self.bounds, tuple(self.counts), self.total)


class AttemptLatency:
    """The duration of every HTTP attempt, by result: fed by the delivery queue."""

    def __init__(self) -> None:
        self.histograms = {result: LatencyHistogram() for result in ATTEMPT_RESULTS}

    def observe_attempt(self, hook: Hook, outcome: Outcome) -> None:
        """Called by the delivery queue after every HTTP attempt."""
        result = "success" if is_success(outcome) else "failure"
        self.histograms[result].observe(outcome.duration_seconds)

    def snapshot(self) -> dict[str, LatencyCounts]:
        return {result: h.snapshot() for result, h in self.histograms.items()}


def metric_families(snapshot: StatusSnapshot) -> list[Metric]:
    """Every metric of ``/metrics``, from one snapshot."""
    return [*_switches(snapshot.switches), *_ingest(snapshot.ingest, snapshot.delivery),
            *_delivery(snapshot.delivery), *_durability(snapshot.delivery),
            *_fleet(snapshot.delivery),
            _hooks(snapshot.hooks_enabled, snapshot.hooks_disabled),
            *_supervision(snapshot.supervision)]


class _Families:
    """A collector handing out families already built (one scrape's)."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(snapshot: StatusSnapshot, accept: str | None = None) -> tuple[str, bytes]:
    """``GET /metrics``: (content type, body) for the request's ``Accept`` header."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metric_families(snapshot)))
    encoder, content_type = choose_encoder(accept or "")
    return content_type, encoder(registry)


def _switches(switches: Iterable[SwitchStatus]) -> Iterator[Metric]:
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
    for switch in switches:
        name = switch.name
        for event_name, count in switch.events_by_name.items():
            received.add_metric([name, event_name or ""], count)
        connected.add_metric([name], 1 if switch.connected else 0)
        reconnects.add_metric([name], switch.reconnects)
        auth_failures.add_metric([name], switch.auth_failures)
        malformed.add_metric([name], switch.malformed)
        protocol_errors.add_metric([name], switch.protocol_errors)
    yield from (received, connected, reconnects, auth_failures, malformed, protocol_errors)


def _ingest(ingest: IngestStatus, delivery: DeliveryStatus) -> Iterator[Metric]:
    for name, doc, value in (
            ("eslhook_events_mapped", "Channel events that became a payload.", ingest.mapped),
            ("eslhook_events_unassigned", "Payloads no account claimed: delivered "
             "nowhere.", ingest.unassigned),
            ("eslhook_events_unmatched", "Payloads of an account with no hook for them.",
             ingest.unmatched),
            ("eslhook_ingest_dropped", "(hook, payload) pairs refused because the "
             "ingest buffer was full or delivery was stopping.", ingest.dropped)):
        yield CounterMetricFamily(name, doc, value=value)
    yield GaugeMetricFamily(
        "eslhook_ingest_buffer_depth", "Pending deliveries held in memory (the buffer "
        "between the ESL readers and delivery, bounded by delivery.buffer_size).",
        value=delivery.resident)
    yield GaugeMetricFamily(
        "eslhook_ingest_buffer_capacity", "delivery.buffer_size: beyond it, deliveries "
        "are dropped.", value=delivery.buffer_capacity)


def _delivery(stats: DeliveryStatus) -> Iterator[Metric]:
    deliveries = CounterMetricFamily(
        "eslhook_deliveries", "Webhook deliveries by result: success (2xx), failure "
        "(an attempt without 2xx), retry (a retry scheduled), given_up (abandoned).",
        labels=["result"])
    failures = stats.latency["failure"].count
    for result, value in (("success", stats.delivered), ("failure", failures),
                          ("retry", stats.retried), ("given_up", stats.given_up)):
        deliveries.add_metric([result], value)
    yield deliveries
    latency = HistogramMetricFamily(
        "eslhook_delivery_latency_seconds", "Duration of each HTTP attempt, from "
        "connecting (or reusing a connection) to the end of the response.",
        labels=["result"])
    for result, histogram in stats.latency.items():
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


def _durability(stats: DeliveryStatus) -> Iterator[Metric]:
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


def _fleet(stats: DeliveryStatus) -> Iterator[Metric]:
    """Fleet mode only (storage postgresql): the shared database and the lanes."""
    if not stats.fleet:
        return
    yield GaugeMetricFamily(
        "eslhook_database_up", "1 while commits and lease renewals to the shared "
        "PostgreSQL succeed, else 0 (delivery pauses; intake goes on in memory).",
        value=0 if stats.spool_error else 1)
    yield CounterMetricFamily(
        "eslhook_fleet_duplicates", "Deliveries this instance heard that another "
        "instance had enqueued first (each (hook, event) is enqueued once).",
        value=stats.duplicates)
    yield CounterMetricFamily(
        "eslhook_fleet_lanes_lost", "Lanes another instance took over while this one "
        "held them (it was paused or cut off past the lease).", value=stats.lanes_lost)
    yield GaugeMetricFamily(
        "eslhook_fleet_leases_held", "(hook, call) lanes leased to this instance at "
        "its last renewal.", value=stats.leases_held)


def _hooks(enabled: int, disabled: int) -> Metric:
    family = GaugeMetricFamily("eslhook_hooks", "Hooks in force, by state.",
                               labels=["state"])
    family.add_metric(["enabled"], enabled)
    family.add_metric(["disabled"], disabled)
    return family


def _supervision(status: SupervisionStatus) -> Iterator[Metric]:
    """eslhook/supervise.py: greenlet names are fixed words plus switch names."""
    yield GaugeMetricFamily(
        "eslhook_critical_greenlets_dead", "Critical greenlets (or loops given up after "
        "crashing again and again) that died: above 0, eslhook is exiting.",
        value=len(status.dead))
    for name, doc, counts in (
            ("eslhook_greenlet_crashes", "Supervised greenlets that ended with an "
             "exception, by greenlet.", status.crashes),
            ("eslhook_greenlet_restarts", "Restarts of supervised loops after a crash, "
             "by greenlet.", status.restarts)):
        family = CounterMetricFamily(name, doc, labels=["greenlet"])
        for greenlet, count in counts:
            family.add_metric([greenlet], count)
        yield family
