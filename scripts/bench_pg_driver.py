#!/usr/bin/env python3
"""psycopg 3 vs pg8000 under gevent: throughput and behaviour under faults.

    python scripts/bench_pg_driver.py [--greenlets 8] [--seconds 3]

Starts a real PostgreSQL (pgserver, in a temporary directory, stopped at the end
whatever happens) and, after ``gevent.monkey.patch_all()``, runs for each driver:

- throughput: N greenlets, each on its own connection, doing round trips of one
  INSERT and one SELECT by key (autocommit), for ``--seconds``; also the longest
  the hub went without running a 1 ms ticker (a driver that blocks the hub shows
  a gap as long as its queries);
- a greenlet killed mid-query (``pg_sleep(5)``): is its connection usable after?
- a server restart: what does the next query on an old connection raise, and
  does a new connection work?

RESULT lines at the end, one per driver and measure.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402
from urllib.parse import parse_qs, urlsplit  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg_support import LocalPostgres, start_postgres  # noqa: E402

Connect = Callable[[], Any]


def psycopg_connect(dsn: str) -> Connect:
    import psycopg
    return lambda: psycopg.connect(dsn, autocommit=True)


def pg8000_connect(dsn: str) -> Connect:
    import pg8000.dbapi
    parts = urlsplit(dsn)
    socket_dir = parse_qs(parts.query)["host"][0]
    database = parts.path.lstrip("/")

    def connect() -> Any:
        connection = pg8000.dbapi.connect(
            user="postgres", database=database, unix_sock=socket_dir + "/.s.PGSQL.5432")
        connection.autocommit = True
        return connection
    return connect


def execute(connection: Any, sql: str, params: tuple = ()) -> list:
    cursor = connection.cursor()
    cursor.execute(sql, params)
    rows = cursor.fetchall() if cursor.description else []
    cursor.close()
    return [tuple(row) for row in rows]    # pg8000 gives lists


class HubWatch:
    """The longest gap between runs of a 1 ms ticker greenlet."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._greenlet = gevent.spawn(self._tick)

    def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            gevent.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def stop(self) -> float:
        self._greenlet.kill()
        return self.longest


def throughput(connect: Connect, greenlets: int, seconds: float) -> tuple[float, float]:
    setup = connect()
    execute(setup, "DROP TABLE IF EXISTS bench")
    execute(setup, "CREATE TABLE bench (id bigint PRIMARY KEY, body text)")
    setup.close()
    done = [0] * greenlets
    until = time.monotonic() + seconds

    def worker(n: int) -> None:
        connection = connect()
        key = n * 10_000_000
        while time.monotonic() < until:
            key += 1
            execute(connection, "INSERT INTO bench VALUES (%s, %s)", (key, "x" * 200))
            assert execute(connection, "SELECT body FROM bench WHERE id = %s", (key,))
            done[n] += 1
        connection.close()

    watch = HubWatch()
    started = time.monotonic()
    workers = [gevent.spawn(worker, n) for n in range(greenlets)]
    gevent.joinall(workers, timeout=seconds + 30, raise_error=True)
    elapsed = time.monotonic() - started
    return sum(done) / elapsed, watch.stop()


def killed_mid_query(connect: Connect) -> str:
    connection = connect()
    runner = gevent.spawn(execute, connection, "SELECT pg_sleep(5)")
    gevent.sleep(0.3)
    runner.kill(timeout=5)
    try:
        with gevent.Timeout(10):
            rows = execute(connection, "SELECT 42")
        return "%s (SELECT 42 returned %r)" % (
            "usable" if rows == [(42,)] else "WRONG ANSWER", rows)
    except BaseException as exc:       # gevent.Timeout is a BaseException
        return "unusable: %s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:100])
    finally:
        try:
            connection.close()
        except Exception:
            pass


def after_restart(connect: Connect, postgres: LocalPostgres) -> str:
    connection = connect()
    execute(connection, "SELECT 1")
    postgres.restart()
    try:
        with gevent.Timeout(10):
            execute(connection, "SELECT 1")
        old = "no error"
    except BaseException as exc:
        old = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:100])
    fresh = connect()
    ok = execute(fresh, "SELECT 1") == [(1,)]
    fresh.close()
    return "old connection: %s; new connection works: %s" % (old, ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--greenlets", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    results: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eslhook-pg-bench-") as tmp:
        postgres = start_postgres(Path(tmp) / "pg")
        try:
            dsn = postgres.create_database("bench")
            for name, connect in (("psycopg", psycopg_connect(dsn)),
                                  ("pg8000", pg8000_connect(dsn))):
                rate, gap = throughput(connect, args.greenlets, args.seconds)
                results.append("RESULT %s round_trips_per_s=%.0f greenlets=%d "
                               "longest_hub_gap_ms=%.1f" % (name, rate, args.greenlets,
                                                            gap * 1000))
                results.append("RESULT %s killed_greenlet_mid_query: %s"
                               % (name, killed_mid_query(connect)))
                results.append("RESULT %s server_restart: %s"
                               % (name, after_restart(connect, postgres)))
                print(*results[-3:], sep="\n", flush=True)
        finally:
            postgres.stop()
    print("\n".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
