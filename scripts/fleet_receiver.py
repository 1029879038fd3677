#!/usr/bin/env python3
"""The webhook receiver process of scripts/bench_fleet.py: HTTP/1.1 keep-alive on
127.0.0.1, 204 to every POST, one JSON line per request appended to ``--record``:

    [arrival monotonic_ns, instance, webhook-id, call_id, hook_event, event_id,
     sequence, reconciled]

eslhook sends no header naming its instance (every instance's User-Agent is
``eslhook/<version>``), so the instance is found from the TCP connection: at accept,
the peer's port is looked up in /proc/net/tcp and its socket inode among the fds of
the pids listed in ``--pids`` (lines "pid name", rewritten by the bench whenever it
starts an instance).  ``GET /count`` answers the number of records so far.

    python scripts/fleet_receiver.py --record FILE --pids FILE
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from gevent.server import StreamServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_delivery import http_requests  # noqa: E402

WEBHOOK_ID = re.compile(rb"(?i)\r\nwebhook-id:\s*([^\r\n]+)")


def socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the 127.0.0.1 socket bound to ``local_port`` connected to ours."""
    wanted_local, wanted_remote = ":%04X" % local_port, ":%04X" % remote_port
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted_local) and fields[2].endswith(wanted_remote):
            return fields[9]
    return None


def owner(pids_file: Path, inode: str | None) -> str:
    """The instance name whose process holds the socket ``inode`` ("?" if none)."""
    if inode is None or not pids_file.exists():
        return "?"
    target = "socket:[%s]" % inode
    for line in pids_file.read_text().splitlines():
        pid, name = line.split()
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue                      # that process is gone
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    return name
            except OSError:
                continue
    return "?"


def record_line(instance: str, head: bytes, body: bytes) -> str:
    found = WEBHOOK_ID.search(head)
    payload = json.loads(body)
    return json.dumps([time.monotonic_ns(), instance,
                       found.group(1).decode() if found else None,
                       payload.get("call_id"), payload.get("hook_event"),
                       payload.get("event_id"), payload.get("sequence"),
                       bool(payload.get("reconciled"))]) + "\n"


def serve(record: Path, pids_file: Path) -> None:
    out = record.open("a", buffering=1)
    count = [0]

    def handle(sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        instance = owner(pids_file, socket_inode(address[1], int(server.server_port or 0)))
        try:
            for head, body in http_requests(sock):
                if head.startswith(b"GET "):
                    text = str(count[0]).encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(text), text))
                    continue
                out.write(record_line(instance, head, body))
                count[0] += 1
                sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        except OSError:
            pass            # a killed instance resets its connections

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    print(server.server_port, flush=True)
    server.serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--pids", type=Path, required=True)
    args = ap.parse_args()
    serve(args.record, args.pids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
