#!/usr/bin/env python3
"""Fleet mode's delivery throughput (issue 14): DeliveryQueue -> real HTTP receiver,
its store the SQLite spool or PostgreSQL, measured in the same run.

    python scripts/bench_fleet.py [--deliveries 20000] [--calls 500] [--rounds 3]

A PostgreSQL is started for the run in a temporary directory (tests/pg_support.py,
pgserver) and stopped at the end; the receiver is bench_delivery.py's gevent HTTP/1.1
receiver process answering 204.  Each round submits ``--deliveries`` deliveries
spread over ``--calls`` calls (lanes) of one hook and times until every one is
delivered and committed (nothing pending, the store's backlog 0); a 1 ms ticker
greenlet records the longest hub gap (a database call blocking the hub shows as a
gap as long as it).  Rounds alternate the backends; best of N counts.

Figures (RESULT lines):
  deliveries_per_s_sqlite / _postgresql, and their ratio
  two_writers_per_s_postgresql: two processes, each its own queue and instance
      name, on the one database, each delivering its own calls (disjoint: lanes
      are not yet claimed across instances, so both delivering the same events
      would deliver each twice) -- the database's capacity for two instances.
Not measured yet: one vs two instances on the SAME events (needs lane claiming),
kill -9 failover, the database away for 30 s (docs/fleet.md, what is next).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

from bench_delivery import start_gevent_receiver  # noqa: E402
from bench_pg_driver import HubWatch  # noqa: E402
from pg_support import start_postgres  # type: ignore[import-not-found]  # noqa: E402

from eslhook.config import DeliveryConfig, StorageConfig  # noqa: E402
from eslhook.delivery.queue import DeliveryQueue  # noqa: E402
from eslhook.delivery.store import DeliveryStore  # noqa: E402
from eslhook.hooks.model import Hook  # noqa: E402

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
CONFIG = DeliveryConfig(timeout_seconds=5.0, connect_timeout_seconds=2.0, max_in_flight=64,
                        buffer_size=100_000, max_connections_per_host=64)


def hook(port: int) -> Hook:
    return Hook(id="b0" + "0" * 30, account_id=ACCOUNT, name="bench",
                uri="http://127.0.0.1:%d/hook" % port, hook="all", format="json")


def run_round(store: DeliveryStore, port: int, count: int, calls: int,
              prefix: str) -> tuple[float, float]:
    """(deliveries/s, longest hub gap in s) of one queue delivering ``count``."""
    queue = DeliveryQueue(CONFIG, store=store)
    queue.start()
    target = hook(port)
    watch = HubWatch()
    started = time.perf_counter()
    for n in range(count):
        call = "%s-call-%d" % (prefix, n % calls)
        payload: Any = {"call_id": call, "event_id": "%s-e-%d" % (prefix, n),
                        "hook_event": "channel_create", "n": n}
        queue.submit(target, payload)
        if n % 50 == 49:
            time.sleep(0)            # an ESL reader yields between reads
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (queue.wait_idle(0.05) and store.backlog == 0):
        pass
    elapsed = time.perf_counter() - started
    gap = watch.stop()
    stats = queue.stats
    queue.stop(timeout=10)
    if stats.delivered != count:
        raise SystemExit("only %d of %d delivered: %s" % (stats.delivered, count, stats))
    return count / elapsed, gap


def sqlite_store(work: Path, n: int) -> DeliveryStore:
    from eslhook.stores import embedded_delivery_store
    return embedded_delivery_store(str(work / ("spool-%d.sqlite3" % n)), CONFIG)


def pg_store(dsn: str, instance: str) -> DeliveryStore:
    from eslhook.pg.database import open_database
    from eslhook.pg.deliveries import PgDeliveryStore
    database = open_database(StorageConfig(backend="postgresql", dsn=dsn, pool_size=4))
    return PgDeliveryStore(database, instance, memory_limit=CONFIG.buffer_size)


def child(args: argparse.Namespace) -> int:
    """One of the two writer processes: prints its deliveries/s."""
    rate, gap = run_round(pg_store(args.dsn, args.instance), args.port, args.deliveries,
                          args.calls, args.instance)
    print("%.1f %.4f" % (rate, gap), flush=True)
    return 0


def two_writers(dsn: str, port: int, count: int, calls: int) -> float:
    """Both processes' deliveries over the wall time of the slower (each gets half)."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", "--dsn", dsn,
                               "--port", str(port), "--instance", "writer-%d" % n,
                               "--deliveries", str(count // 2), "--calls", str(calls // 2)],
                              stdout=subprocess.PIPE, text=True) for n in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit("a writer failed: %s" % out)
    return (count // 2 * 2) / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deliveries", type=int, default=20_000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dsn", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--instance", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    work.chmod(0o755)          # PostgreSQL runs as pgserver's own user
    server = start_postgres(work / "pg")
    receiver = start_gevent_receiver()
    try:
        best: dict[str, tuple[float, float]] = {"sqlite": (0.0, 0.0), "postgresql": (0.0, 0.0)}
        for n in range(args.rounds):
            for name in ("sqlite", "postgresql"):
                store = sqlite_store(work, n) if name == "sqlite" else pg_store(
                    server.create_database("bench"), "bench-%d" % n)
                rate, gap = run_round(store, receiver.port, args.deliveries, args.calls,
                                      "r%d" % n)
                print("round %d %s: %.0f deliveries/s, longest hub gap %.1f ms"
                      % (n, name, rate, gap * 1000), flush=True)
                if rate > best[name][0]:
                    best[name] = (rate, gap)
        two = max(two_writers(server.create_database("bench"), receiver.port,
                              args.deliveries, args.calls) for _ in range(args.rounds))
    finally:
        receiver.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    sqlite, pg = best["sqlite"], best["postgresql"]
    print("RESULT deliveries_per_s_sqlite=%.0f longest_hub_gap_ms=%.1f" % (sqlite[0],
                                                                            sqlite[1] * 1000))
    print("RESULT deliveries_per_s_postgresql=%.0f longest_hub_gap_ms=%.1f" % (pg[0],
                                                                                pg[1] * 1000))
    print("RESULT postgresql_vs_sqlite=%.2fx" % (pg[0] / sqlite[0]))
    print("RESULT two_writers_per_s_postgresql=%.0f vs_one=%.2fx (disjoint calls)"
          % (two, two / pg[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
