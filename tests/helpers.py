"""Small helpers shared by the test modules."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import gevent
import pytest

from eslhook.hooks.model import Hook
from eslhook.source.switch import ReconnectPolicy
from eslhook.timings import Timings

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"   # ecallmgr_Account-ID of the 1005 calls
HOOK_ID = "0123456789abcdef0123456789abcdef"

# A bridge that polls, reconnects and notices in tens of milliseconds: what a test
# waits for is the event, not production's interval (eslhook/timings.py).
FAST_TIMINGS = Timings(
    reconnect=ReconnectPolicy(first_seconds=0.05, cap_seconds=0.2),
    liveness_check_seconds=0.05, hooks_poll_seconds=0.05, hooks_empty_settle_seconds=0.2,
    open_calls_flush_seconds=0.05, spool_commit_retry_seconds=0.1)


def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` (yielding to the hub) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return bool(predicate())


def self_signed_certificate(folder: Path, name: str, subject_alt_name: str) -> tuple[str, str]:
    """(cert, key) files of a one-day certificate for ``name``; skips without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=%s" % name, "-addext", "subjectAltName=" + subject_alt_name,
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def make_hook(uri: str = "http://127.0.0.1:9/hook", **fields) -> Hook:
    """A valid hook for ``uri`` (all events, ACCOUNT); ``fields`` override."""
    return Hook(**{"id": HOOK_ID, "account_id": ACCOUNT, "name": "test", "uri": uri,
                   "hook": "all", **fields})


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- ESL frames built by hand ------------------------------------------------

def plain_frame(headers: list[tuple[str, str]], inner_body: bytes = b"") -> bytes:
    """A text/event-plain frame; values given already percent-encoded."""
    body = "".join("%s: %s\n" % kv for kv in headers).encode()
    if inner_body:
        body += b"Content-Length: %d\n\n" % len(inner_body) + inner_body
    else:
        body += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def channel_event(name: str, uuid: str, seq: int, extra=()) -> list[tuple[str, str]]:
    return [("Event-Name", name), ("Core-UUID", "c0de0000-0000-4000-8000-000000000001"),
            ("Event-Date-Timestamp", "1795908306887812"), ("Event-Sequence", str(seq)),
            ("Unique-ID", uuid), ("Call-Direction", "inbound"),
            ("Channel-Name", "sofia/internal/1000%40127.0.0.1")] + list(extra)
