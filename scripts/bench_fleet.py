#!/usr/bin/env python3
"""Fleet mode on PostgreSQL (issue 14): whole-process scenarios and the queue alone.

    python scripts/bench_fleet.py [--scenario throughput|failover|db-away|queue|all]
        [--events 12000] [--rounds 1] [--throughput-rate 0]  (throughput)
        [--rate 200] [--seconds 40] [--kill-at 10] [--restart-after 15]   (failover)
        [--outage-at 10] [--outage 30] [--db-seconds 50] [--drain-timeout 120]  (db-away)
        [--deliveries 10000] [--calls 200] [--queue-rounds 2]  (queue)
        [--quick] [--slow-statement-ms MS]

One PostgreSQL for the run (tests/pg_support.py, pgserver, unix socket in a temp
dir), each scenario its own database.  The whole-process scenarios
(scripts/fleet_scenarios.py) run real ``python -m eslhook --log-format json run``
instances (storage: postgresql, each its own state_dir and API port), the paced
recording fake switch (fleet_switch.py: tests/captures/json-single-calls.esl looped,
fresh call ids per pass, so calls start and end throughout) and a receiver process
(fleet_receiver.py) on 127.0.0.1.  "Expected" is what the switch wrote; each arrival
is judged against it (fleet_analysis.py): lost, invented, repeated with the same or
a different webhook-id, per-call order (the switch's Event-Sequence).

  throughput  one, then two instances attached to the same switch, the switch as
              fast as they read (--throughput-rate 0; a rate caps both at it, so
              the ratio says nothing; before eslhook kept a connection whose api
              reply came late, the starved switch's replies made both drop it):
              deliveries/s from the first event written to the last arrival, and
              the cores each process used meanwhile (/proc stat; PostgreSQL: the
              postmaster and its backends).
  failover    two instances at --rate events/s; instance b is killed -9 at
              --kill-at and started again --restart-after seconds later (0: never).
  db-away     two instances at --rate; PostgreSQL stopped (pg_ctl -m fast) at
              --outage-at for --outage seconds, then started on the same data:
              delivered/expected, drain time, each instance's /healthz meanwhile.
  queue       DeliveryQueue alone -> receiver, the SQLite spool vs PostgreSQL, and
              two writer processes with disjoint calls (the database's capacity).

The run's directory (instance logs, sent.txt, arrivals.jsonl) is kept and printed.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
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
        # channel_bridge: keyed per event (create/answer/destroy are once per call)
        payload: Any = {"call_id": call, "event_id": "%s-e-%d" % (prefix, n),
                        "hook_event": "channel_bridge", "n": n}
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
    # its own directory: the spool makes its directory 0700, which would shut
    # PostgreSQL's own user out of the run's directory
    directory = work / ("sqlite-%d" % n)
    directory.mkdir()
    return embedded_delivery_store(str(directory / "spool.sqlite3"), CONFIG)


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


def queue_scenario(args: argparse.Namespace, work: Path, server: Any) -> list[str]:
    """The queue alone: SQLite vs PostgreSQL, and two writers with disjoint calls."""
    receiver = start_gevent_receiver()
    try:
        best: dict[str, tuple[float, float]] = {"sqlite": (0.0, 0.0), "postgresql": (0.0, 0.0)}
        for n in range(args.queue_rounds):
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
                              args.deliveries, args.calls) for _ in range(args.queue_rounds))
    finally:
        receiver.stop()
    sqlite, pg = best["sqlite"], best["postgresql"]
    return ["RESULT deliveries_per_s_sqlite=%.0f longest_hub_gap_ms=%.1f"
            % (sqlite[0], sqlite[1] * 1000),
            "RESULT deliveries_per_s_postgresql=%.0f longest_hub_gap_ms=%.1f"
            % (pg[0], pg[1] * 1000),
            "RESULT postgresql_vs_sqlite=%.2fx" % (pg[0] / sqlite[0]),
            "RESULT two_writers_per_s_postgresql=%.0f vs_one=%.2fx (disjoint calls)"
            % (two, two / pg[0])]


def log_slow_statements(server: Any, milliseconds: int) -> None:
    import psycopg
    with psycopg.connect(server.dsn(), autocommit=True) as connection:
        connection.execute("ALTER SYSTEM SET log_min_duration_statement = %d" % milliseconds)
        connection.execute("SELECT pg_reload_conf()")


def keep_server_logs(server: Any, work: Path) -> None:
    """PostgreSQL's logs (pgserver's, and db-away's restart's) into the run's directory:
    server.stop() removes the data directory."""
    data = Path(server.server.pgdata)
    for source in (Path(server.server.log), data / "restart.log"):
        if source.exists():
            shutil.copy(source, work / ("postgresql-" + source.name))


ORDER = ("throughput", "failover", "queue", "db-away")   # db-away stops the server: last


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--scenario", choices=ORDER + ("all",), default="all")
    ap.add_argument("--events", type=int, default=12000, help="throughput: events sent")
    ap.add_argument("--rounds", type=int, default=1, help="throughput: rounds, best counts")
    ap.add_argument("--throughput-rate", type=float, default=0.0,
                    help="throughput: events/s the switch sends (0: as fast as read)")
    ap.add_argument("--rate", type=float, default=200.0, help="failover, db-away: events/s")
    ap.add_argument("--seconds", type=float, default=40.0, help="failover: sending time")
    ap.add_argument("--kill-at", type=float, default=10.0)
    ap.add_argument("--restart-after", type=float, default=15.0, help="0: never")
    ap.add_argument("--db-seconds", type=float, default=50.0, help="db-away: sending time")
    ap.add_argument("--outage-at", type=float, default=10.0)
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--slow-statement-ms", type=int, default=0,
                    help="PostgreSQL logs statements slower than this (0: off); the "
                         "server's log is copied into the run's directory")
    ap.add_argument("--deliveries", type=int, default=10_000, help="queue")
    ap.add_argument("--calls", type=int, default=200, help="queue")
    ap.add_argument("--queue-rounds", type=int, default=2, help="queue")
    ap.add_argument("--quick", action="store_true",
                    help="shorter runs (~4 min for all): --events 6000 --seconds 30 "
                         "--kill-at 8 --restart-after 14 --db-seconds 45 --deliveries 3000 "
                         "--queue-rounds 1 --drain-timeout 60")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dsn", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--instance", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.events, args.seconds, args.kill_at, args.restart_after = 6000, 30.0, 8.0, 14.0
        args.db_seconds, args.deliveries, args.queue_rounds = 45.0, 3000, 1
        args.drain_timeout = 60.0
    if args.outage_at + args.outage >= args.db_seconds:
        ap.error("db-away: the outage must end before the switch stops sending")
    if args.kill_at + args.restart_after >= args.seconds:
        ap.error("failover: the restart must come before the switch stops sending")
    return args


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args)
    from fleet_scenarios import run_scenarios
    names = list(ORDER) if args.scenario == "all" else [args.scenario]
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    work.chmod(0o755)          # PostgreSQL runs as pgserver's own user
    server = start_postgres(work / "pg")
    results: list[str] = []
    try:
        if args.slow_statement_ms:
            log_slow_statements(server, args.slow_statement_ms)
        whole = [name for name in names if name != "queue"]
        if "queue" in names:
            results += queue_scenario(args, work, server)
        results += run_scenarios(whole, args, work, server)
    finally:
        keep_server_logs(server, work)
        server.stop()
    print("nproc=%d; logs and records kept in %s" % (os.cpu_count() or 0, work))
    print("\n".join(line for line in results if line.startswith("RESULT")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
