#!/usr/bin/env python3
"""Count the events reconciliation invents against a real, busy FreeSWITCH.

    python scripts/check_reconcile_live.py --switch 10.0.0.5:8021 --password SECRET \\
        [--seconds 60] [--interval 2] [--confirm 3] [--reconnect-every 0]

Run it while the switch carries load (e.g. ``sipp -sn uac -r 30 -l 900
-d 20000 SWITCH:5060``, 30 calls/s).  In this process: a real eslhook Bridge
(temp state_dir, every call assigned to one account through
``default_account_id``), reconciling every ``--interval`` s, and a loopback
HTTP receiver counting every webhook.  It only reads from the switch
(``show channels``, ``uuid_dump``, ``global_getvar``).

Without ``--reconnect-every`` nothing is lost, so every ``reconciled: true``
payload is invented: the check passes with 0 of them.  With it, the
connection is cut every N seconds; what the switch sent meanwhile is lost
for real, so synthetic events are expected then, but never two destroys for
one call.  Calls already up at start (listed by a ``show channels`` read just
before eslhook connects) are "born while away": their synthetic create is
expected and counted apart.

Figures are printed as ``RESULT`` lines; exit status 1 if the check failed.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import yaml  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eslhook.config import load_config  # noqa: E402
from eslhook.reconcile import parse_channels  # noqa: E402
from eslhook.service import Bridge  # noqa: E402
from eslhook.source.esl import EslConnection  # noqa: E402

ACCOUNT = "0123456789abcdef0123456789abcdef"


class Tally:
    """Per call, the (hook_event, reconciled) of every webhook received."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, bool]]] = defaultdict(list)

    def app(self, environ, start_response):
        body = environ["wsgi.input"].read()
        try:
            payload = json.loads(body)
            call = payload["call_id"]
            self.calls[call].append((payload["hook_event"], bool(payload.get("reconciled"))))
        except (ValueError, KeyError, TypeError):
            pass
        start_response("204 No Content", [])
        return []


def write_config(folder: Path, host: str, port: int, password: str, url: str,
                 interval: float, confirm: float) -> Path:
    (folder / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "live", "host": host, "port": port, "password": password}],
        "accounts": [{"id": ACCOUNT, "name": "check"}], "default_account_id": ACCOUNT,
        "reconcile": {"interval_seconds": interval, "confirm_seconds": confirm}}))
    (folder / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "count", "hook": "all",
        "format": "json", "uri": url}]}))
    return folder / "eslhook.yaml"


def channels_up(host: str, port: int, password: str) -> set[str]:
    conn = EslConnection(host, port, password)
    conn.connect()
    try:
        return set(parse_channels(conn.api("show channels as json").data))
    finally:
        conn.stop()


def figures(tally: Tally, up_at_start: set[str]) -> dict[str, int]:
    synthetic = Counter(kind for events in tally.calls.values() for kind, rec in events if rec)
    born_away = sum(1 for call, events in tally.calls.items()
                    if call in up_at_start and ("channel_create", True) in events)
    destroys = Counter(sum(1 for kind, _ in events if kind == "channel_destroy")
                       for events in tally.calls.values())
    return {"calls": len(tally.calls),
            "calls_with_two_or_more_destroys": sum(n for k, n in destroys.items() if k >= 2),
            "synthetic_destroys": synthetic["channel_destroy"],
            "synthetic_creates": synthetic["channel_create"] - born_away,
            "synthetic_creates_of_calls_up_at_start": born_away}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switch", default="127.0.0.1:8021", help="HOST:PORT of its ESL")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=2.0, help="reconcile.interval_seconds")
    parser.add_argument("--confirm", type=float, default=3.0, help="reconcile.confirm_seconds")
    parser.add_argument("--reconnect-every", type=float, default=0.0,
                        help="cut the ESL connection every N seconds (0: never)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to wait at the end for deliveries and a last run")
    args = parser.parse_args(argv)
    host, _, port = args.switch.rpartition(":")
    tally = Tally()
    receiver = WSGIServer(("127.0.0.1", 0), tally.app, log=None)
    receiver.start()
    with tempfile.TemporaryDirectory(prefix="check-reconcile-") as folder:
        config = write_config(Path(folder), host, int(port), args.password,
                              "http://127.0.0.1:%d/" % receiver.server_port,
                              args.interval, args.confirm)
        up_at_start = channels_up(host, int(port), args.password)
        bridge = Bridge(load_config(config))
        bridge.start()
        source, reconciler = bridge.sources[0], bridge.reconcilers["live"]
        deadline = time.monotonic() + args.seconds
        next_cut = time.monotonic() + args.reconnect_every if args.reconnect_every else None
        while time.monotonic() < deadline:
            gevent.sleep(0.5)
            if next_cut is not None and time.monotonic() >= next_cut and source.connection:
                source.connection.close("check_reconcile_live: cut on purpose")
                next_cut += args.reconnect_every
        gevent.sleep(args.settle)
        bridge.stop(drain_seconds=5)
    receiver.stop()
    result = figures(tally, up_at_start)
    result.update(runs=reconciler.runs, connects=source.state.connects)
    for name, value in result.items():
        print("RESULT %s %d" % (name, value))
    failed = result["calls_with_two_or_more_destroys"] > 0 or (
        not args.reconnect_every and (result["synthetic_destroys"] or result["synthetic_creates"]))
    print("RESULT check %s" % ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
