#!/usr/bin/env python3
"""Ingest throughput: socket -> framing -> parsing -> mapping -> matching.

    python scripts/bench_ingest.py [--events 100000] [--formats plain,json]
                                   [--channel-variables GLOBS]

A server process (a second core) streams the same subscribed events of a real
capture, repeated to reach --events, to three consumers in turn, each over
loopback TCP with the real ESL handshake:

  ceiling     a raw socket reader that only splits frames (FrameReader)
  greenswitch bare greenswitch 0.0.19 InboundESL with a no-op handler (the
              baseline; it cannot read json, so it is measured on plain)
  eslhook     SwitchSource + Bridge.handle_event: parsing, payload mapping,
              account resolution and matching against 10,000 hooks across
              1,000 accounts; deliveries are discarded at the queue

Prints events/s per consumer and format, and the ratio eslhook/greenswitch
(target >= 2.5) measured in this same run.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_delivery import esl_commands  # noqa: E402
from eslhook.source.framing import FrameReader, split_frames
from eslhook.source.parsing import parse_event  # noqa: E402

EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")
SHARED = ROOT.parent / "shared" / "captures"


def capture_path(fmt: str) -> Path:
    big = SHARED / ("%s-sip-burst.esl" % fmt)
    if big.exists():
        return big
    return ROOT / "tests" / "captures" / ("%s-single-calls.esl" % fmt)


def event_frames(fmt: str) -> list[bytes]:
    """The raw bytes of each subscribed event frame, as recorded."""
    data = capture_path(fmt).read_bytes()
    out, start = [], 0
    for frame in split_frames(data):
        cut = data.index(b"\n\n", start) + 2
        end = cut + len(frame.body)
        event = parse_event(frame)
        if event is not None and event.get("Event-Name") in EVENTS:
            out.append(data[start:end])
        start = end
    return out


# -- the server (its own process) -----------------------------------------

def serve(fmt: str, count: int) -> None:
    frames = event_frames(fmt)
    blob = b"".join(frames[i % len(frames)] for i in range(count))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        gevent.spawn(serve_one, conn, fmt, blob)


def serve_one(conn, fmt: str, blob: bytes) -> None:
    conn.sendall(b"Content-Type: auth/request\n\n")
    for command in esl_commands(conn):
        if command.startswith(b"auth "):
            conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        elif command.startswith(b"event "):
            conn.sendall(b"Content-Type: command/reply\nReply-Text: "
                         b"+OK event listener enabled %s\n\n" % fmt.encode())
            conn.sendall(blob)
        else:
            conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    conn.close()


# -- consumers --------------------------------------------------------------

def consume_raw(port: int, fmt: str, count: int) -> float:
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.perf_counter()
    sock.sendall(b"auth ClueCon\n\nevent %s %s\n\n" % (fmt.encode(), " ".join(EVENTS).encode()))
    reader, seen = FrameReader(), 0
    while seen < count:
        data = sock.recv(256 * 1024)
        if not data:
            break
        reader.feed(data)
        for frame in reader.frames():
            if frame.content_type.startswith("text/event-"):
                seen += 1
    elapsed = time.perf_counter() - started
    sock.close()
    return seen / elapsed


def consume_greenswitch(port: int, fmt: str, count: int) -> float:
    from greenswitch.esl import InboundESL
    done, state = gevent.event.Event(), {"n": 0, "t0": None}

    def handler(event):
        state["n"] += 1
        if state["n"] >= count:
            done.set()

    esl = InboundESL("127.0.0.1", port, "ClueCon")
    esl.connect()
    for name in EVENTS:
        esl.register_handle(name, handler)
    state["t0"] = time.perf_counter()
    esl.send("event %s %s" % (fmt, " ".join(EVENTS)))
    done.wait(timeout=600)
    elapsed = time.perf_counter() - state["t0"]
    esl._run = False
    gevent.killall([esl._receive_events_greenlet, esl._process_events_greenlet])
    esl.sock_file.close()  # the makefile() keeps the socket open otherwise
    esl.sock.close()
    return state["n"] / elapsed


class DiscardingQueue:
    """Delivery stand-in: counts what the bridge submits, sends nothing."""

    def __init__(self):
        self.submitted = 0

    def submit(self, hook, payload, **options) -> bool:
        self.submitted += 1
        return True

    def start(self):
        pass

    def stop(self, timeout):
        pass


def write_config(work: Path, port: int, fmt: str, channel_variables=()) -> Path:
    accounts = ["%032x" % (i + 1) for i in range(1000)]
    hooks = [{"id": "%032x" % (0xA0000000 + i), "account_id": accounts[i % 1000],
              "name": "h%d" % i, "uri": "http://127.0.0.1:9/h%d" % i,
              "hook": ("all", "channel_create", "channel_answer", "channel_destroy")[i % 4]}
             for i in range(10_000)]
    (work / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": hooks}))
    config = {"switches": [{"name": "bench", "host": "127.0.0.1", "port": port, "format": fmt}],
              "hooks_file": "hooks.yaml", "state_dir": "state",
              "accounts": [{"id": a} for a in accounts], "default_account_id": accounts[7]}
    if channel_variables:
        config["payload"] = {"channel_variables": list(channel_variables)}
    (work / "eslhook.yaml").write_text(yaml.safe_dump(config))
    return work / "eslhook.yaml"


def consume_eslhook(port: int, fmt: str, count: int,
                    channel_variables=()) -> tuple[float, int]:
    from eslhook.config import load_config
    from eslhook.service import Bridge
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    bridge = Bridge(load_config(write_config(work, port, fmt, channel_variables)),
                    delivery=DiscardingQueue())
    bridge.hooks.load()
    source = bridge.sources[0]
    state = {"t0": None}
    inner = bridge.handle_event

    def timed(event, switch):
        state["t0"] = state["t0"] or time.perf_counter()
        inner(event, switch)

    source.sink = timed
    runner = gevent.spawn(source.run)
    deadline = time.monotonic() + 600
    while source.state.events < count and time.monotonic() < deadline:
        gevent.sleep(0.01)
    elapsed = time.perf_counter() - state["t0"]
    events, malformed = source.state.events, source.state.malformed
    source.stop()
    runner.join(timeout=5)
    if malformed:   # a handler that raised: the events were skipped, the rate is void
        raise SystemExit("eslhook counted %d of %d events malformed: the run measures "
                         "nothing (see the log)" % (malformed, events))
    return events / elapsed, bridge.delivery.submitted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--formats", default="plain,json")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per consumer, interleaved; the best counts (noisy machines)")
    ap.add_argument("--channel-variables", default="", metavar="GLOBS",
                    help="comma-separated payload.channel_variables globs for eslhook "
                         "(e.g. 'ecallmgr_*,sip_h_X-*'); none by default")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.events)
        return 0
    # this server answers api commands with +OK, not what eslhook's reconciler parses
    logging.getLogger("eslhook.reconcile").setLevel(logging.ERROR)
    globs = tuple(g for g in args.channel_variables.split(",") if g)
    print("nproc=%d events=%d captures=%s channel_variables=%s" % (
        os.cpu_count(), args.events, capture_path("plain").parent, ",".join(globs) or "-"))
    results = {}
    for fmt in args.formats.split(","):
        server = subprocess.Popen([sys.executable, __file__, "--serve", fmt,
                                   "--events", str(args.events)], stdout=subprocess.PIPE)
        try:
            port = int(server.stdout.readline())
            consumers = [("ceiling", consume_raw), ("greenswitch", consume_greenswitch),
                         ("eslhook", consume_eslhook)]
            for round_ in range(1, args.rounds + 1):
                for who, consume in consumers:
                    if who == "greenswitch" and fmt != "plain":
                        continue
                    if who == "eslhook":
                        rate, submitted = consume(port, fmt, args.events, globs)
                    else:
                        rate = consume(port, fmt, args.events)
                    results[who, fmt] = max(rate, results.get((who, fmt), 0))
                    print("round %d  %-12s %-5s %10.0f events/s" % (round_, who, fmt, rate),
                          flush=True)
        finally:
            server.kill()
            server.wait()
        print("eslhook %s: %.1f matching hooks per event (discarded at the queue)"
              % (fmt, submitted / args.events))
    for (who, fmt), rate in sorted(results.items()):
        print("best     %-12s %-5s %10.0f events/s" % (who, fmt, rate))
    baseline = results.get(("greenswitch", "plain"))
    for fmt in args.formats.split(","):
        if baseline and ("eslhook", fmt) in results:
            ratio = results["eslhook", fmt] / baseline
            print("RESULT ingest_%s_vs_greenswitch_plain: %.2fx (target 2.5x) %s"
                  % (fmt, ratio, "MET" if ratio >= 2.5 else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
