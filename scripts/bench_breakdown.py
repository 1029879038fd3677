#!/usr/bin/env python3
"""Where a delivery's time goes: hub CPU per delivery, stage by stage.

    python scripts/bench_breakdown.py [--events 10000] [--rounds 3]

Explains bench_delivery.py's saturation figure.  Everything eslhook does runs
on one core (one gevent hub), so its deliveries/s is about 1 / (hub CPU per
delivery).  Each line measures the main thread's CPU time (time.thread_time:
not wall time, so other processes on the machine count less) per delivery
for one piece run alone, on the same events as bench_delivery.py, best of
--rounds:

  parse            framing + decoding the event (in process, no socket)
  map              channel_payload (in process)
  bare loop        geventhttpclient HTTPClient.request to nginx (the baseline)
  HttpSender loop  eslhook's sender alone, signing headers included
  queue, instant   DeliveryQueue with a sender that answers at once: the
                   queue's own bookkeeping (lanes, attempt log, memory spool)
  queue + HTTP     DeliveryQueue + HttpSender + the SQLite spool on disk
  end to end       fake switch -> eslhook (ESL reader, mapping, matching,
                   open calls, queue, sender, spool) -> nginx

nginx is needed (Debian's nginx-light); without it the gevent receiver
process stands in.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_delivery as bench  # noqa: E402


def per_item_us(function, items) -> float:
    started = time.thread_time()
    for item in items:
        function(item)
    return (time.thread_time() - started) / len(items) * 1e6


def in_process_stages(count: int) -> dict[str, float]:
    from eslhook.accounts import AccountDirectory
    from eslhook.mapping import channel_payload
    from eslhook.source.framing import split_frames
    from eslhook.source.parsing import parse_event
    events = bench.channel_events(bench.capture_path())
    frames = [bench.stamped_frame(body, uid, 0) for body, uid in events]
    frames = [frames[i % len(frames)] for i in range(count)]
    parsed = [parse_event(split_frames(frame)[0]) for frame in frames]
    accounts = AccountDirectory(default_account_id=bench.ACCOUNT)
    return {
        "parse": per_item_us(lambda frame: parse_event(split_frames(frame)[0]), frames),
        "map": per_item_us(lambda event: channel_payload(
            event, switch="bench", accounts=accounts, channel_variables=("bench_*",)), parsed),
    }


class InstantSender:
    def send(self, request, extra_headers=None):
        from eslhook.delivery.policy import SUCCESS, Outcome
        gevent.sleep(0)         # an attempt yields at least once
        return Outcome(204, SUCCESS)

    def close(self):
        pass


def queue_alone(requests, port: int, sender, spool_path: str | None) -> float:
    """Hub CPU per delivery of DeliveryQueue fed the payloads directly."""
    import json
    from eslhook.config import DeliveryConfig
    from eslhook.delivery.queue import DeliveryQueue
    from eslhook.hooks.model import Hook
    payloads = [json.loads(request.body) for request in requests]
    hook = Hook(id=bench.HOOK_ID, account_id=bench.ACCOUNT, name="bench", hook="all",
                format="json", uri="http://127.0.0.1:%d/hook" % port, retries=0)
    config = DeliveryConfig(max_in_flight=bench.CONCURRENCY,
                            max_connections_per_host=bench.CONCURRENCY,
                            buffer_size=len(payloads) + 1)
    queue = DeliveryQueue(config, sender, spool_path=spool_path)
    queue.start()
    started = time.thread_time()
    for index, payload in enumerate(payloads):
        queue.submit(hook, payload)
        if index % 100 == 99:
            gevent.sleep(0)     # let attempts start, as the ESL reader does between reads
    if not queue.wait_idle(300) or queue.stats.delivered != len(payloads):
        raise SystemExit("queue run failed: %r" % (queue.stats,))
    cpu = time.thread_time() - started
    queue.stop(timeout=2)
    return cpu / len(payloads) * 1e6


def cpu_of(run, count: int) -> float:
    started = time.thread_time()
    run()
    return (time.thread_time() - started) / count * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("eslhook.reconcile").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    receiver = bench.start_nginx(work) or bench.start_gevent_receiver()
    n = args.events
    best: dict[str, float] = {}

    def keep(name, value):
        best[name] = min(best.get(name, value), value)

    try:
        requests = bench.baseline_requests(n, receiver.port)
        for round_ in range(args.rounds):
            for name, value in in_process_stages(n).items():
                keep(name, value)
            keep("bare loop", cpu_of(lambda: bench.run_baseline(requests, receiver.port), n))
            keep("HttpSender loop",
                 cpu_of(lambda: bench.run_sender_loop(requests, receiver.port), n))
            keep("queue, instant", queue_alone(requests, receiver.port, InstantSender(), None))
            keep("queue + HTTP", queue_alone(requests, receiver.port, None,
                                             str(work / ("spool-%d.db" % round_))))
            keep("end to end", cpu_of(lambda: bench.run_eslhook(receiver.port, n, 0, 300), n))
            print("round %d done" % (round_ + 1), flush=True)
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("hub CPU per delivery (us), best of %d rounds of %d events:" % (args.rounds, n))
    for name, value in best.items():
        print("  %-16s %6.0f" % (name, value))
    print("RESULT breakdown_end_to_end_us: %.0f (bare loop %.0f; saturation ratio is about "
          "their quotient)" % (best["end to end"], best["bare loop"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
