#!/usr/bin/env python3
"""REST API create latency with 1,000 hooks in the file vs 10 (baseline, same run).

    python scripts/bench_api.py [--creates 200] [--rounds 10] [--big 1000] [--small 10]

Two API servers, each its own process on 127.0.0.1 with its own hooks.yaml (a
real HookStore and ApiServer, the REST API as eslhook serves it): one file holds
``--big`` hooks of the account, the other ``--small``.  This process is the
client (http.client, one keep-alive connection per server, no gevent), and
times each ``PUT /v2/accounts/{A}/webhooks`` from request to parsed response;
each created hook is deleted again (untimed) so the files keep their size.
Rounds alternate between the servers so both see the same machine load.

RESULT lines: median and p95 create latency for each size, their ratio, and
whether the target (a create at most 30 ms with 1,000 hooks) is met.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT = "a0000000000000000000000000000001"
TOKEN = "bench-admin-token"
TARGET_MS = 30.0
NEW_HOOK = {"name": "New Calls", "uri": "http://127.0.0.1:9/calls/new.php",
            "http_verb": "post", "hook": "channel_create", "retries": 3}


def hooks_text(count: int) -> str:
    """A hand-written-looking file: a comment, then ``count`` hooks."""
    entries = "".join(
        "  - id: %032x\n    account_id: %s\n    name: hook %d   # by hand\n"
        "    uri: http://127.0.0.1:9/hooks/%d\n    hook: all\n    retries: 3\n"
        "    custom_data:\n      crm: 'c%d'\n\n" % (0xb0000 + n, ACCOUNT, n, n, n)
        for n in range(count))
    return "# bench hooks\nwebhooks:\n" + entries if count else "webhooks: []\n"


def serve(count: int) -> None:
    """The server process: HookStore + ApiServer on a file of ``count`` hooks."""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from eslhook.accounts import AccountDirectory
    from eslhook.api import ApiContext, ApiServer, create_app
    from eslhook.config import AccountConfig, ApiConfig
    from eslhook.hooks.store import HookStore

    folder = Path(tempfile.mkdtemp(prefix="bench_api_"))
    path = folder / "hooks.yaml"
    path.write_text(hooks_text(count))
    accounts = AccountDirectory([AccountConfig(id=ACCOUNT)])
    store = HookStore(path, accounts)
    store.load()
    config = ApiConfig(host="127.0.0.1", port=0, admin_tokens=(TOKEN,))
    server = ApiServer(create_app(ApiContext(store, accounts, config)), "127.0.0.1", 0)
    server.start()
    print(server.url(), flush=True)
    gevent.get_hub().threadpool.spawn(sys.stdin.read).get()   # until the parent closes it
    server.stop(timeout=1)


class Client:
    """One keep-alive connection.  ``quick_ack``: acknowledge at once (Linux
    TCP_QUICKACK, set again before each read as the kernel drops it).  The API
    server sends a response's head and body as two segments without
    TCP_NODELAY, so Nagle holds the body until the client acknowledges the head,
    and a client's delayed ACK makes that ~40 ms per request whatever the store
    does; with quick_ack the figure is the server's own work."""

    def __init__(self, url: str, quick_ack: bool = True):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.quick_ack = quick_ack and hasattr(socket, "TCP_QUICKACK")
        self.headers = {"X-Auth-Token": TOKEN, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        self._ack_at_once()
        self.connection.request(method, path, json.dumps(body) if body else None,
                                self.headers)
        self._ack_at_once()
        reply = self.connection.getresponse()
        return reply.status, json.loads(reply.read())

    def _ack_at_once(self) -> None:
        if self.quick_ack:
            self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def timed_create(self) -> float:
        started = time.perf_counter()
        status, body = self.call("PUT", "/v2/accounts/%s/webhooks" % ACCOUNT,
                                 {"data": NEW_HOOK})
        elapsed = (time.perf_counter() - started) * 1000
        if status != 201:
            raise SystemExit("create failed: %d %s" % (status, body))
        status, _ = self.call("DELETE", "/v2/accounts/%s/webhooks/%s"
                              % (ACCOUNT, body["data"]["id"]))
        if status != 200:
            raise SystemExit("delete failed: %d" % status)
        return elapsed


def start_server(count: int) -> tuple[subprocess.Popen, Client]:
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(count)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, Client(process.stdout.readline().strip())


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--creates", type=int, default=200, help="timed creates per size")
    ap.add_argument("--rounds", type=int, default=10, help="alternations between sizes")
    ap.add_argument("--big", type=int, default=1000)
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    servers = {size: start_server(size) for size in (args.big, args.small)}
    timings: dict[int, list[float]] = {size: [] for size in servers}
    delayed_ack: dict[int, list[float]] = {}
    try:
        for _, client in servers.values():      # warm up: connections, caches
            for _ in range(5):
                client.timed_create()
        per_round = max(1, args.creates // args.rounds)
        for _ in range(args.rounds):
            for size, (_, client) in servers.items():
                timings[size] += [client.timed_create() for _ in range(per_round)]
        for size, (_, client) in servers.items():   # as an ordinary client sees it
            client.quick_ack = False
            delayed_ack[size] = [client.timed_create() for _ in range(20)]
    finally:
        for process, client in servers.values():
            client.connection.close()
            process.stdin.close()
            process.wait(timeout=10)
    big, small = timings[args.big], timings[args.small]
    for size, values in timings.items():
        print("create with %5d hooks: median %.2f ms, p95 %.2f ms, max %.2f ms (%d creates)"
              % (size, statistics.median(values), p95(values), max(values), len(values)))
    median_big, median_small = statistics.median(big), statistics.median(small)
    print("RESULT create_ms_%d=%.2f create_ms_%d=%.2f ratio=%.2f" % (
        args.big, median_big, args.small, median_small, median_big / median_small))
    print("RESULT create_p95_ms_%d=%.2f create_p95_ms_%d=%.2f" % (
        args.big, p95(big), args.small, p95(small)))
    print("RESULT create_ms_delayed_ack_client_%d=%.2f create_ms_delayed_ack_client_%d=%.2f "
          "(a client with the usual delayed ACK: the server's Nagle stall included)" % (
              args.big, statistics.median(delayed_ack[args.big]), args.small,
              statistics.median(delayed_ack[args.small])))
    print("RESULT create_target_%.0fms_with_%d_hooks: %s (median %.2f ms, p95 %.2f ms)" % (
        TARGET_MS, args.big, "met" if p95(big) <= TARGET_MS else "MISSED",
        median_big, p95(big)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
