"""``eslhook record``: save the raw bytes of an ESL session to a capture file.

Connects to a switch (real or fake), authenticates, subscribes, and writes
exactly the bytes received, handshake included, until ``--duration``
passes, the switch closes the connection, or SIGINT/SIGTERM.  The result is
the ``.esl`` format ``eslhook fake-switch`` replays.

The capture is written to ``FILE.part`` and renamed to FILE at the end, so
a failed attempt (refused, wrong password) leaves an existing FILE alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from eslhook.events import subscription_names
from eslhook.fakeswitch.cli import host_port
from eslhook.source.framing import Frame, FrameReader, ProtocolError

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


class _Session:
    """The socket, the frame parser and the output file, fed together."""

    def __init__(self, sock: socket.socket, out) -> None:
        self.sock = sock
        self.out = out
        self.reader = FrameReader()
        self.bytes = 0
        self.events = 0
        self.eof = False

    def pump(self, timeout: float) -> list[Frame]:
        """Read once (waiting up to ``timeout``); record and parse the bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return []
        except OSError as exc:
            raise RecordError("connection lost: %s" % (exc.strerror or exc)) from None
        if not data:
            self.eof = True
            return []
        self.out.write(data)
        self.bytes += len(data)
        self.reader.feed(data)
        try:
            frames = list(self.reader.frames())
        except ProtocolError as exc:
            raise RecordError("the switch sent bytes that are not ESL: %s" % exc) from None
        self.events += sum(1 for f in frames if f.content_type.startswith("text/event-"))
        return frames

    def next_frame(self, what: str, pending: list[Frame]) -> Frame:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not pending:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                why = "connection closed" if self.eof else "timeout"
                if self.reader.buffered:
                    why += "; got %d bytes that are not an ESL frame, not an event socket?" % (
                        self.reader.buffered)
                raise RecordError("no %s from the switch (%s)" % (what, why))
            pending.extend(self.pump(min(left, POLL_SECONDS)))
        return pending.pop(0)


def _handshake(session: _Session, password: str, fmt: str, events: str) -> list[Frame]:
    pending: list[Frame] = []
    if session.next_frame("auth request", pending).content_type != "auth/request":
        raise RecordError("the peer did not ask for auth: not an event socket?")
    session.sock.sendall(b"auth %s\n\n" % password.encode("utf-8"))
    reply = session.next_frame("auth reply", pending).headers.get("Reply-Text", "")
    if not reply.startswith("+OK"):
        raise RecordError("authentication failed (%s): wrong --password?" % reply, EXIT_AUTH)
    session.sock.sendall(b"event %s %s\n\n" % (fmt.encode(), events.encode("utf-8")))
    reply = session.next_frame("event reply", pending).headers.get("Reply-Text", "")
    if not reply.startswith("+OK"):
        raise RecordError("subscription refused: %s" % reply)
    return pending


def _record(args, stop_requested) -> _Session:
    host, port = args.switch
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise RecordError("cannot connect to %s:%d: %s" % (host, port, exc.strerror or exc)) from None
    part = args.out.with_name(args.out.name + ".part")
    try:
        with sock, open(part, "wb") as out:
            session = _Session(sock, out)
            _handshake(session, args.password, args.format, " ".join(args.events.split()))
            deadline = None if args.duration is None else time.monotonic() + args.duration
            # Bounded by --duration, EOF or a signal; each read waits <= POLL_SECONDS.
            while not (session.eof or stop_requested()):
                left = POLL_SECONDS if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                session.pump(min(left, POLL_SECONDS))
        os.replace(part, args.out)
        return session
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    stop = []
    handler = lambda signum, frame: stop.append(signum)  # noqa: E731 - only sets a flag
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        session = _record(args, lambda: bool(stop))
    except RecordError as exc:
        print("eslhook record: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print("eslhook record: %s: %s" % (args.out, exc.strerror or exc), file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    print("recorded %d events (%d bytes) to %s" % (session.events, session.bytes, args.out))
    return EXIT_OK
