#!/usr/bin/env python3
"""A receiver outage under steady load: does every webhook arrive, in order?

    python scripts/bench_outage.py [--rate 500] [--seconds 60] [--outage-at 10]
                                   [--outage 30] [--drain-timeout 300]

Three processes on loopback, built from bench_delivery.py's parts:

  switch    streams real channel events (json-sip-burst, looped with fresh
            call ids) at --rate events/s for --seconds;
  eslhook   this process: a real Bridge with its SQLite spool under a temp
            state_dir, one hook (retries 10, the default retry schedule);
  receiver  a small gevent HTTP server answering 204 and appending
            "call_id sequence" per request to a file.  It is killed at
            --outage-at seconds and started again on the same port --outage
            seconds later.

Figures: delivered/expected (distinct (call, sequence) pairs that arrived,
over events sent), per-call order violations (a call whose sequences did not
first arrive in increasing order), duplicates (allowed: same webhook-id), and
the time from the receiver's return until the backlog is drained.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_delivery as parts  # noqa: E402

ACCOUNT, HOOK_ID = parts.ACCOUNT, parts.HOOK_ID


def serve_receiver(port: int, record: Path) -> None:
    """HTTP/1.1 keep-alive, 204 to every POST, one "call_id sequence" line each."""
    from gevent.server import StreamServer
    out = record.open("a", buffering=1)

    def handle(sock, _address):
        for _head, body in parts.http_requests(sock):
            payload = json.loads(body)
            out.write("%s %d\n" % (payload["call_id"], payload["sequence"]))
            sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = StreamServer(("127.0.0.1", port), handle)
    server.start()
    print(port, flush=True)
    server.serve_forever()


def start_receiver(port: int, record: Path) -> "parts.Process":
    return parts.Process([sys.executable, __file__, "--serve-receiver", str(port),
                          "--record", str(record)])


def write_config(work: Path, switch_port: int, receiver_port: int) -> Path:
    (work / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": HOOK_ID, "account_id": ACCOUNT, "name": "outage", "hook": "all",
        "uri": "http://127.0.0.1:%d/hook" % receiver_port, "format": "json",
        "retries": 10}]}))
    (work / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "bench", "host": "127.0.0.1", "port": switch_port}],
        "accounts": [{"id": ACCOUNT, "name": "Bench"}], "default_account_id": ACCOUNT,
        "delivery": {"timeout_seconds": 5}}))
    return work / "eslhook.yaml"


def analyse(record: Path) -> tuple[int, int, int]:
    """(distinct deliveries, calls out of order, duplicates) from the receiver's lines."""
    seen, first_order, duplicates = set(), {}, 0
    for line in record.read_text().splitlines():
        call_id, sequence = line.split()
        key = (call_id, int(sequence))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        first_order.setdefault(call_id, []).append(int(sequence))
    violations = sum(1 for seqs in first_order.values() if seqs != sorted(seqs))
    return len(seen), violations, duplicates


def run(args) -> int:
    from eslhook.config import load_config
    from eslhook.service import Bridge
    work = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    record = work / "arrivals.txt"
    count = int(args.rate * args.seconds)
    port = parts.free_port()
    receiver = start_receiver(port, record)
    switch = parts.start_switch(count, args.rate)
    bridge = Bridge(load_config(write_config(work, switch.port, port)))
    bridge.start()
    started = time.monotonic()
    try:
        gevent.sleep(max(0.0, started + args.outage_at - time.monotonic()))
        receiver.stop()
        print("receiver down at %.1fs" % (time.monotonic() - started), flush=True)
        gevent.sleep(max(0.0, started + args.outage_at + args.outage - time.monotonic()))
        receiver = start_receiver(port, record)
        back = time.monotonic()
        print("receiver up again at %.1fs" % (back - started), flush=True)
        deadline = back + args.drain_timeout
        drained = None
        while time.monotonic() < deadline:
            if bridge.stats.submitted >= count and bridge.delivery.wait_idle(0.5):
                drained = time.monotonic()
                break
            gevent.sleep(0.2)
        stats = bridge.delivery.stats
    finally:
        bridge.stop(drain_seconds=2)
        switch.stop()
        receiver.stop()
    delivered, violations, duplicates = analyse(record)
    print("nproc=%d rate=%g/s events=%d outage=%gs at %gs; submitted=%d given_up=%d "
          "dropped=%d duplicates=%d" % (os.cpu_count(), args.rate, count, args.outage,
                                        args.outage_at, bridge.stats.submitted,
                                        stats.given_up, stats.dropped, duplicates))
    ratio = delivered / count if count else 0.0
    print("RESULT delivered_over_expected: %.4f (%d of %d) (target 1.0) %s"
          % (ratio, delivered, count, "MET" if delivered == count else "MISSED"))
    print("RESULT order_violations: %d (target 0) %s" % (violations,
                                                         "MET" if violations == 0 else "MISSED"))
    if drained is None:
        print("RESULT drain_seconds: not drained within %gs (target: drained) MISSED"
              % args.drain_timeout)
    else:
        print("RESULT drain_seconds: %.1f (target: drained) MET" % (drained - back))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the switch sends")
    ap.add_argument("--outage-at", type=float, default=10.0)
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_receiver is not None:
        serve_receiver(args.serve_receiver, args.record)
        return 0
    if args.outage_at + args.outage > args.seconds:
        ap.error("the outage must end before the switch stops sending")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
