#!/usr/bin/env python3
"""Soak: 1,000,000 events through the whole pipeline; eslhook's RSS as it goes.

    python scripts/bench_soak.py [--events 1000000] [--rate 1000] [--every 100000]

The same three processes as bench_delivery.py: a switch process streaming the
real capture's channel events (looped, call ids rewritten per pass) at
``--rate`` events/s, eslhook in this process (one json hook per event), and a
fast receiver (nginx answering 204 when installed, else the gevent receiver).
The rate stays below saturation so the figure is memory held, not a backlog.

Prints eslhook's RSS at start, every ``--every`` events and at the end (all
delivered), then RESULT lines: growth start -> end (target <= 20 MB) and the
trend over the last half: the least-squares slope of the samples from the
half-way point on, in MB per 100k events (target <= 0.5, i.e. no trend).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_delivery as bench  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def slope_per_100k(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of (events, MB) in MB per 100k events."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in samples)
    return cov / var * 100_000 if var else 0.0


def soak(args, receiver_port: int) -> list[tuple[int, float]]:
    switch = bench.start_switch(args.events, args.rate)
    bridge, _first, work = bench.start_bridge(switch, receiver_port, args.events)
    samples = [(0, rss_mb())]       # started, not yet subscribed: no event read
    print("events %9d  RSS %7.1f MB  (start)" % samples[0], flush=True)
    source = bridge.sources[0]
    started = time.monotonic()
    deadline = started + args.events / args.rate * 3 + 120
    try:
        next_mark = args.every
        while next_mark <= args.events and time.monotonic() < deadline:
            if source.state.events >= next_mark:
                stats = bridge.delivery.stats
                samples.append((next_mark, rss_mb()))
                print("events %9d  RSS %7.1f MB  delivered %9d  pending %6d  dropped %d  "
                      "%.0fs" % (next_mark, samples[-1][1], stats.delivered, stats.pending,
                                 stats.dropped, time.monotonic() - started), flush=True)
                next_mark += args.every
            gevent.sleep(0.05)
        finished = bench.wait_finished(bridge, args.events,
                                       timeout=max(1.0, deadline - time.monotonic()))
        stats = bridge.delivery.stats
        end = (args.events, rss_mb())   # still running: stop() would free memory
    finally:
        bridge.stop(drain_seconds=1)
        switch.stop()
        shutil.rmtree(work, ignore_errors=True)
    if finished is None or stats.delivered != args.events:
        raise SystemExit("soak failed: %d of %d delivered (%d given up, %d dropped)"
                         % (stats.delivered, args.events, stats.given_up, stats.dropped))
    samples.append(end)
    print("events %9d  RSS %7.1f MB  (end: all delivered, still running, %.0fs)"
          % (args.events, samples[-1][1], time.monotonic() - started), flush=True)
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=1000.0,
                    help="events/s the switch sends (below saturation: see bench_delivery)")
    ap.add_argument("--every", type=int, default=100_000, help="RSS sample interval (events)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("eslhook.reconcile").setLevel(logging.ERROR)   # the switch says -ERR
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    receiver = bench.start_nginx(work)
    name = "nginx (204)"
    if receiver is None:
        receiver, name = bench.start_gevent_receiver(), "gevent receiver process"
    print("nproc=%d events=%d rate=%.0f/s capture=%s receiver=%s" % (
        os.cpu_count(), args.events, args.rate, bench.capture_path(), name), flush=True)
    try:
        samples = soak(args, receiver.port)
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    growth = samples[-1][1] - samples[0][1]
    last_half = [s for s in samples if s[0] >= args.events // 2]
    trend = slope_per_100k(last_half)
    print("RESULT soak_rss_start: %.1f MB" % samples[0][1])
    print("RESULT soak_rss_end: %.1f MB" % samples[-1][1])
    print("RESULT soak_rss_growth: %.1f MB (target 20 MB) %s"
          % (growth, bench.verdict(growth <= 20)))
    print("RESULT soak_rss_trend_last_half: %+.2f MB per 100k events (target 0.5) %s"
          % (trend, bench.verdict(trend <= 0.5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
