"""``eslhook record``: save the raw bytes of an ESL session to a capture file.

Connects to a switch (real or fake), authenticates, subscribes, and writes
exactly the bytes received, handshake included, until ``--duration``
passes, the switch closes the connection, or SIGINT/SIGTERM.  The result is
the ``.esl`` format ``eslhook fake-switch`` replays.

It reads through ``EslConnection``, the client eslhook itself runs on,
which hands over every chunk before framing it.

The capture is written to ``FILE.part`` and renamed to FILE at the end, so
a failed attempt (refused, wrong password) leaves an existing FILE alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from eslhook.events import subscription_names
from eslhook.fakeswitch.cli import host_port
from eslhook.source.esl import AuthenticationError, EslConnection, NotConnectedError

log = logging.getLogger(__name__)

DEFAULT_EVENTS = " ".join(subscription_names())   # what eslhook itself subscribes to
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0
POLL_SECONDS = 0.25
EXIT_OK, EXIT_FAILED, EXIT_AUTH = 0, 1, 2


class RecordError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "record", help="record raw ESL events from a switch to a capture file",
        description="Record the raw bytes of an event-socket session (handshake "
                    "included) for 'eslhook fake-switch' to replay.")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="capture file to write")
    parser.add_argument("--switch", type=host_port, default=("127.0.0.1", 8021),
                        metavar="HOST:PORT", help="event socket address (default 127.0.0.1:8021)")
    parser.add_argument("--password", default="ClueCon", help="ESL password (default ClueCon)")
    parser.add_argument("--format", choices=("plain", "json"), default="plain",
                        help="event format to ask for (default plain)")
    parser.add_argument("--events", default=DEFAULT_EVENTS,
                        help="space-separated event names (default: %s)" % DEFAULT_EVENTS)
    parser.add_argument("--duration", type=_positive_seconds, default=None, metavar="SECONDS",
                        help="stop after SECONDS (default: until EOF or Ctrl-C)")
    parser.set_defaults(run=run)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError("expected a number of seconds > 0, got %r" % text)
    return value


class _Recording:
    """What came: the bytes (written as received) and how many events."""

    def __init__(self, out) -> None:
        self.out = out
        self.bytes = 0
        self.events = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.bytes += len(data)

    def count(self, _event: object) -> None:
        self.events += 1


def _subscribe(conn: EslConnection, fmt: str, events: str) -> None:
    reply = conn.send("event %s %s" % (fmt, events))
    if not reply.ok:
        raise RecordError("subscription refused: %s" % reply.data)


def _record(args, stop_requested) -> _Recording:
    host, port = args.switch
    part = args.out.with_name(args.out.name + ".part")
    try:
        with open(part, "wb") as out:
            recording = _Recording(out)
            # The event socket client eslhook runs on, with every chunk
            # written before it is framed: the file holds exactly what came.
            conn = EslConnection(host, port, args.password, timeout=CONNECT_TIMEOUT,
                                 command_timeout=REPLY_TIMEOUT, on_bytes=recording.write,
                                 on_event=recording.count,
                                 on_malformed=lambda reason: recording.count(None))
            try:
                _connect(conn)
                _subscribe(conn, args.format, " ".join(args.events.split()))
                deadline = None if args.duration is None else time.monotonic() + args.duration
                # Bounded by --duration, EOF or a signal; each wait <= POLL_SECONDS.
                while not (conn.closed.is_set() or stop_requested()):
                    left = POLL_SECONDS if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        break
                    conn.closed.wait(min(left, POLL_SECONDS))
            except NotConnectedError as exc:
                raise RecordError(str(exc)) from None
            finally:
                conn.close("recording done")
        os.replace(part, args.out)
        return recording
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _connect(conn: EslConnection) -> None:
    try:
        conn.connect()
    except AuthenticationError as exc:
        raise RecordError(str(exc), EXIT_AUTH) from None


def run(args: argparse.Namespace) -> int:
    stop = []
    handler = lambda signum, frame: stop.append(signum)  # noqa: E731 - only sets a flag
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        recording = _record(args, lambda: bool(stop))
    except RecordError as exc:
        print("eslhook record: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print("eslhook record: %s: %s" % (args.out, exc.strerror or exc), file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    print("recorded %d events (%d bytes) to %s" % (recording.events, recording.bytes,
                                                   args.out))
    return EXIT_OK
