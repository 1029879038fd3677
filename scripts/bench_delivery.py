#!/usr/bin/env python3
"""End-to-end delivery: fake switch -> eslhook -> an HTTP receiver, one hook per event.

    python scripts/bench_delivery.py [--events 20000] [--rounds 3] [--rates 500,2000]
                                     [--seconds 10] [--receiver auto|nginx|gevent]

Three processes on loopback:

  switch    (its own process) a minimal ESL server streaming the channel events
            of a real capture (../shared/captures/json-sip-burst.esl, else the
            test capture), looped with the call ids rewritten per pass, either
            as fast as eslhook reads or paced at a rate.  Each event carries the
            moment it was written (CLOCK_MONOTONIC ns, system-wide on Linux) in
            a channel variable that eslhook copies into the payload
            (payload.channel_variables: [bench_*]).
  eslhook   this process: a real Bridge (SwitchSource, mapping, matching,
            DeliveryQueue, HttpSender) with one json hook for the account.
  receiver  nginx answering 204 (Debian's nginx-light) when installed, else a
            minimal gevent HTTP/1.1 receiver process.  Latency runs always use
            the gevent receiver: it timestamps each arrival in microseconds
            (nginx's $msec is milliseconds).

Figures:
  saturation   deliveries/s with the switch unthrottled, vs the baseline: a bare
               loop of geventhttpclient's HTTPClient.request (the library
               HttpSender is built on) posting the same encoded requests with the
               same concurrency (connections per host), measured in the same run,
               rounds interleaved, best of N.  Also shown, for reference: the same
               loop through eslhook's HttpSender alone.
  latency      p50/p99/max from switch write to receiver arrival at each rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")
SHARED = ROOT.parent / "shared" / "captures"
ACCOUNT = "be0c0000000000000000000000000001"
HOOK_ID = "be0c00000000000000000000000000aa"
CONCURRENCY = 64          # delivery.max_in_flight = connections per host = baseline greenlets
STAMP_VARIABLE = "bench_sent_ns"


def capture_path() -> Path:
    big = SHARED / "json-sip-burst.esl"
    return big if big.exists() else ROOT / "tests" / "captures" / "json-single-calls.esl"


# -- the switch process (no gevent: plain blocking sockets) -------------------

def channel_events(path: Path) -> list[tuple[bytes, str]]:
    """(json body as recorded, Unique-ID) of each subscribed channel event."""
    from eslhook.fakeswitch.capture import load_capture
    from eslhook.fakeswitch.events import convert
    out = []
    for event in load_capture(path).events:
        if event.name in EVENTS and event.unique_id:
            out.append((convert(event.body, event.fmt, "json"), event.unique_id))
    return out


def stamped_frame(body: bytes, unique_id: str, loop: int) -> bytes:
    """The event with its call id made unique per loop pass and the write time added."""
    if loop:
        uid = unique_id.encode()
        body = body.replace(uid, uid[:-8] + b"%08x" % (loop & 0xFFFFFFFF))
    body = b'{"variable_%s":"%d",' % (STAMP_VARIABLE.encode(), time.monotonic_ns()) + body[1:]
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n%s" % (len(body), body)


def serve_switch(count: int, rate: float) -> None:
    """Accept one ESL client, then stream ``count`` events (rate 0: unthrottled)."""
    events = channel_events(capture_path())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(b"Content-Type: auth/request\n\n")
    subscribed, sending = threading.Event(), threading.Lock()
    threading.Thread(target=answer_commands, args=(conn, subscribed, sending),
                     daemon=True).start()
    if not subscribed.wait(30):
        return
    if rate:
        paced(conn, sending, events, count, rate)
    else:
        unthrottled(conn, sending, events, count)
    time.sleep(3600)   # stay connected until killed


def paced(conn, sending: threading.Lock, events, count: int, rate: float) -> None:
    """One event at a time on schedule, each stamped as it is written."""
    started = time.monotonic()
    for index in range(count):
        pause = started + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body, unique_id = events[index % len(events)]
        frame = stamped_frame(body, unique_id, index // len(events))
        with sending:
            conn.sendall(frame)


def unthrottled(conn, sending: threading.Lock, events, count: int) -> None:
    """As fast as eslhook reads, in writes of ~64 kB: a Python stand-in writing (and
    stamping) each 7 kB event on its own used a fifth of a core, which the 2-core
    machine then took from eslhook or nginx; FreeSWITCH writes from C."""
    batch, size = [], 0
    for index in range(count):
        body, unique_id = events[index % len(events)]
        frame = stamped_frame(body, unique_id, index // len(events))
        batch.append(frame)
        size += len(frame)
        if size >= 65536 or index == count - 1:
            with sending:
                conn.sendall(b"".join(batch))
            batch, size = [], 0


def esl_commands(conn):
    """Each command (blank-line terminated) an ESL client sends, until EOF."""
    buffered = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        buffered += data
        while b"\n\n" in buffered:
            command, buffered = buffered.split(b"\n\n", 1)
            yield command


def answer_commands(conn, subscribed: threading.Event, sending: threading.Lock) -> None:
    """auth, event: +OK; api commands (eslhook's reconciler asks on connect): -ERR, so
    reconciliation stays out of the figures."""
    for command in esl_commands(conn):
        if command.startswith(b"api "):
            text = b"-ERR not in this benchmark\n"
            reply = b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (
                len(text), text)
        else:
            reply = b"Content-Type: command/reply\nReply-Text: +OK\n\n"
        with sending:
            conn.sendall(reply)
        if command.startswith(b"event "):
            subscribed.set()


# -- the gevent receiver process ------------------------------------------------

STAMP = re.compile(rb'"%s"\s*:\s*"(\d+)"' % STAMP_VARIABLE.encode())


def serve_receiver() -> None:
    """A minimal HTTP/1.1 keep-alive server: 204 to every POST, recording
    arrival - write time from the payload's stamp; ``GET /stats`` hands the
    latencies over (and resets them).  Lighter than pywsgi, so the figures are
    eslhook's and not the receiver's."""
    from gevent import monkey
    monkey.patch_all()
    from gevent.server import StreamServer

    latencies_us: list[int] = []

    def handle(sock, _address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for head, body in http_requests(sock):
            if head.startswith(b"GET "):
                text = json.dumps(latencies_us).encode()
                latencies_us.clear()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(text), text))
                continue
            arrived = time.monotonic_ns()
            stamp = STAMP.search(body)
            if stamp:
                latencies_us.append((arrived - int(stamp.group(1))) // 1000)
            sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    print(server.server_port, flush=True)
    server.serve_forever()


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def http_requests(sock):
    """(head, body) of each HTTP/1.1 request on a keep-alive connection, until EOF."""
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            data = sock.recv(65536)
            if not data:
                return
            buffered += data
        head, buffered = buffered.split(b"\r\n\r\n", 1)
        length = CONTENT_LENGTH.search(head)
        length = int(length.group(1)) if length else 0
        while len(buffered) < length:
            data = sock.recv(65536)
            if not data:
                return
            buffered += data
        body, buffered = buffered[:length], buffered[length:]
        yield head, body


# -- nginx ------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 204; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, however it dies (Linux prctl)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Process:
    """A helper process that prints its port on its first line."""

    def __init__(self, argv: list[str], port: int | None = None):
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.port = port if port is not None else int(self.popen.stdout.readline())

    def stop(self) -> None:
        self.popen.terminate()      # nginx: its master stops the workers
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def start_nginx(work: Path) -> Process | None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                       else None)
    if binary is None:
        return None
    port = free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, port=port))
    proc = Process([binary, "-c", str(work / "nginx.conf"), "-p", str(work)], port=port)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    return None


def start_gevent_receiver() -> Process:
    return Process([sys.executable, __file__, "--serve-receiver"])


def start_switch(count: int, rate: float) -> Process:
    return Process([sys.executable, __file__, "--serve-switch", "--events", str(count),
                    "--rate", str(rate)])


# -- eslhook (this process, gevent) ----------------------------------------------

def write_config(work: Path, switch_port: int, receiver_port: int, buffer: int) -> Path:
    import yaml
    (work / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": HOOK_ID, "account_id": ACCOUNT, "name": "bench", "hook": "all",
        "uri": "http://127.0.0.1:%d/hook" % receiver_port, "format": "json",
        "retries": 0}]}))
    (work / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "bench", "host": "127.0.0.1", "port": switch_port,
                      "format": "json"}],
        "hooks_file": "hooks.yaml", "state_dir": "state",
        "accounts": [{"id": ACCOUNT, "name": "Bench"}], "default_account_id": ACCOUNT,
        "payload": {"channel_variables": ["bench_*"]},
        "delivery": {"max_in_flight": CONCURRENCY, "max_connections_per_host": CONCURRENCY,
                     "buffer_size": max(buffer, 1000)}}))
    return work / "eslhook.yaml"


def start_bridge(switch: Process, receiver_port: int, count: int):
    from eslhook.config import load_config
    from eslhook.service import Bridge
    work = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    bridge = Bridge(load_config(write_config(work, switch.port, receiver_port, count)))
    first = {}
    inner = bridge.handle_event

    def timed(event, name):
        first.setdefault("t0", time.perf_counter())
        inner(event, name)

    bridge.sources[0].sink = timed
    bridge.start()
    return bridge, first, work


def wait_finished(bridge, count: int, timeout: float) -> float | None:
    """perf_counter when all ``count`` deliveries finished (None on timeout).

    Waits on the queue's idle event instead of polling ``delivery.stats``, which
    walks every lane: polling it would slow down what is measured."""
    import gevent
    deadline = time.monotonic() + timeout
    ingest = bridge.stats
    while time.monotonic() < deadline:
        if bridge.delivery.wait_idle(min(0.1, max(0.0, deadline - time.monotonic()))):
            finished = time.perf_counter()
            if ingest.submitted + ingest.dropped >= count:
                return finished
            gevent.sleep(0.005)     # idle between two events: not finished yet
    return None


def run_eslhook(receiver_port: int, count: int, rate: float, timeout: float):
    switch = start_switch(count, rate)
    bridge, first, work = start_bridge(switch, receiver_port, count)
    try:
        finished = wait_finished(bridge, count, timeout)
        stats = bridge.delivery.stats
    finally:
        bridge.stop(drain_seconds=1)
        switch.stop()
        shutil.rmtree(work, ignore_errors=True)
    if finished is None or stats.delivered != count:
        raise SystemExit("eslhook run failed: %d of %d delivered (%d given up, %d dropped)"
                         % (stats.delivered, count, stats.given_up, stats.dropped))
    return count / (finished - first["t0"])


def baseline_requests(count: int, receiver_port: int):
    """The requests eslhook sends for the same events, encoded ahead."""
    from eslhook.accounts import AccountDirectory
    from eslhook.config import AccountConfig, Config, SwitchConfig
    from eslhook.delivery.request import build_request
    from eslhook.hooks.model import Hook
    from eslhook.mapping import channel_payload
    from eslhook.source.framing import split_frames
    from eslhook.source.parsing import parse_event
    config = Config(path=Path("x"), switches=(SwitchConfig(name="bench"),),
                    hooks_file=Path("h"), state_dir=Path("s"),
                    accounts=(AccountConfig(id=ACCOUNT),), default_account_id=ACCOUNT)
    accounts = AccountDirectory.from_config(config)
    hook = Hook(id=HOOK_ID, account_id=ACCOUNT, name="bench", hook="all", format="json",
                uri="http://127.0.0.1:%d/hook" % receiver_port)
    requests = []
    for body, unique_id in channel_events(capture_path()):
        frame = stamped_frame(body, unique_id, 0)
        event = parse_event(next(iter(split_frames(frame))))
        payload = channel_payload(event, switch="bench", accounts=accounts,
                                  channel_variables=("bench_*",))
        if payload is not None:
            requests.append(build_request(hook, payload, user_agent="eslhook/bench"))
    return [requests[i % len(requests)] for i in range(count)]


def run_baseline(requests, receiver_port: int) -> float:
    import gevent
    from geventhttpclient import HTTPClient
    client = HTTPClient("127.0.0.1", receiver_port, concurrency=CONCURRENCY,
                        connection_timeout=5, network_timeout=10)
    position = iter(range(len(requests)))

    def post_loop():
        for index in position:
            request = requests[index]
            response = client.request(request.method, "/hook", body=request.body,
                                      headers=dict(request.headers))
            response.read()
            response.release()

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(post_loop) for _ in range(CONCURRENCY)], raise_error=True)
    elapsed = time.perf_counter() - started
    client.close()
    return len(requests) / elapsed


def run_sender_loop(requests, receiver_port: int) -> float:
    """The same loop through eslhook's own HttpSender (signing headers included): what
    the HTTP part of a delivery costs when nothing else runs.  Shown for reference."""
    import gevent
    from eslhook.config import DeliveryConfig
    from eslhook.delivery.http import HttpSender
    sender = HttpSender(DeliveryConfig(max_in_flight=CONCURRENCY,
                                       max_connections_per_host=CONCURRENCY))
    position = iter(range(len(requests)))
    signed = {"webhook-id": "bench_" + HOOK_ID, "webhook-timestamp": str(int(time.time()))}

    def post_loop():
        for index in position:
            outcome = sender.send(requests[index], signed)
            if outcome.status is None or outcome.status >= 300:
                raise RuntimeError("sender loop: %s" % (outcome,))

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(post_loop) for _ in range(CONCURRENCY)], raise_error=True)
    elapsed = time.perf_counter() - started
    sender.close()
    return len(requests) / elapsed


def fetch_latencies(receiver_port: int) -> list[int]:
    from geventhttpclient import HTTPClient
    client = HTTPClient("127.0.0.1", receiver_port, network_timeout=30)
    try:
        response = client.get("/stats")
        return json.loads(response.read())
    finally:
        client.close()


def percentile(sorted_values: list[int], fraction: float) -> int:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000, help="events per saturation round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="saturation rounds, baseline and eslhook interleaved; best counts")
    ap.add_argument("--rates", default="500,2000", help="events/s of the latency runs")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    ap.add_argument("--latency-rounds", type=int, default=2,
                    help="runs per rate; the one with the lowest p99 counts")
    ap.add_argument("--receiver", choices=["auto", "nginx", "gevent"], default="auto")
    ap.add_argument("--serve-switch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_switch:
        serve_switch(args.events, args.rate)
        return 0
    if args.serve_receiver:
        serve_receiver()
        return 0
    from gevent import monkey
    monkey.patch_all()
    return measure(args)


def measure(args) -> int:
    import logging
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("eslhook.reconcile").setLevel(logging.ERROR)   # the switch says -ERR
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    nginx = start_nginx(work) if args.receiver in ("auto", "nginx") else None
    if args.receiver == "nginx" and nginx is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    timer = start_gevent_receiver()
    fast = nginx or timer
    print("nproc=%d capture=%s concurrency=%d" % (os.cpu_count(), capture_path(), CONCURRENCY))
    print("receiver: %s for saturation, gevent receiver process for latency"
          % ("nginx (204)" if nginx else "gevent receiver process (204)"), flush=True)
    try:
        saturation, baseline, sender_loop = 0.0, 0.0, 0.0
        requests = baseline_requests(args.events, fast.port)
        for round_ in range(1, args.rounds + 1):
            rate = run_baseline(requests, fast.port)
            baseline = max(baseline, rate)
            print("round %d  bare client loop   %8.0f posts/s" % (round_, rate), flush=True)
            rate = run_sender_loop(requests, fast.port)
            sender_loop = max(sender_loop, rate)
            print("round %d  HttpSender loop    %8.0f posts/s" % (round_, rate), flush=True)
            rate = run_eslhook(fast.port, args.events, 0, timeout=300)
            saturation = max(saturation, rate)
            print("round %d  eslhook end to end %8.0f deliveries/s" % (round_, rate), flush=True)
        fetch_latencies(timer.port)   # drop what an earlier run may have left
        latency = {}
        for rate in [float(r) for r in args.rates.split(",")]:
            count = int(rate * args.seconds)
            for round_ in range(1, args.latency_rounds + 1):
                run_eslhook(timer.port, count, rate, timeout=args.seconds + 120)
                values = sorted(fetch_latencies(timer.port))
                if len(values) != count:
                    raise SystemExit("latency run: %d of %d stamps arrived" % (len(values), count))
                figures = tuple(v / 1000 for v in (percentile(values, 0.5),
                                                    percentile(values, 0.99), values[-1]))
                print("round %d  %5.0f events/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms"
                      % ((round_, rate) + figures), flush=True)
                if rate not in latency or figures[1] < latency[rate][1]:
                    latency[rate] = figures
    finally:
        for proc in (nginx, timer):
            if proc is not None:
                proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    ratio = saturation / baseline
    print("RESULT delivery_saturation: %.0f deliveries/s (bare client loop %.0f posts/s)"
          % (saturation, baseline))
    print("RESULT delivery_saturation_vs_bare_client: %.2fx (target 0.6x) %s"
          % (ratio, verdict(ratio >= 0.6)))
    print("RESULT delivery_saturation_vs_httpsender_loop: %.2fx (eslhook's own sender alone: "
          "%.0f posts/s; for reference)" % (saturation / sender_loop, sender_loop))
    for rate, (p50, p99, worst) in sorted(latency.items()):
        target = " (target 10 ms) %s" % verdict(p99 <= 10) if rate == 500 else ""
        print("RESULT delivery_latency_p50_at_%d: %.2f ms" % (rate, p50))
        print("RESULT delivery_latency_p99_at_%d: %.2f ms%s" % (rate, p99, target))
        print("RESULT delivery_latency_max_at_%d: %.2f ms" % (rate, worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
