"""``eslhook fake-switch CAPTURE... [--listen H:P] [--password] [--speed] [--loop] [--settle]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import gevent

from eslhook.fakeswitch.capture import CaptureError
from eslhook.fakeswitch.server import DEFAULT_SETTLE_SECONDS, FakeSwitch, parse_speed

log = logging.getLogger(__name__)


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8021`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def _speed(text: str) -> str:
    try:
        parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds, got %r" % text) from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("expected seconds >= 0, got %r" % text)
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fake-switch", help="run a fake FreeSWITCH replaying ESL captures",
        description="Listen like FreeSWITCH's event socket and replay captured events "
                    "to clients that subscribe. The replay starts --settle seconds after "
                    "the last subscription change (event, nixevent, noevents, myevents, "
                    "filter), so a client that sends several of them in a row loses "
                    "no event; it pauses while nobody is subscribed.")
    parser.add_argument("captures", nargs="+", metavar="CAPTURE",
                        help="capture file(s) (.esl, as written by 'eslhook record')")
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 8021),
                        metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8021)")
    parser.add_argument("--password", default="ClueCon", help="ESL password (default ClueCon)")
    parser.add_argument("--speed", type=_speed, default="max",
                        help="max, realtime, or a factor (2.0 = twice as fast); default max")
    parser.add_argument("--loop", action="store_true", help="replay forever, with fresh ids")
    parser.add_argument("--heartbeat", type=float, default=20.0, metavar="SECONDS",
                        help="generate HEARTBEAT every SECONDS (0: never; default 20)")
    parser.add_argument("--settle", type=_seconds, default=DEFAULT_SETTLE_SECONDS,
                        metavar="SECONDS",
                        help="start (or resume) the replay this long after the last "
                             "subscription change (default %(default)s)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        switch = FakeSwitch(args.captures, host=args.listen[0], port=args.listen[1],
                            password=args.password, speed=args.speed, loop=args.loop,
                            heartbeat_seconds=args.heartbeat, settle_seconds=args.settle)
        host, port = switch.start()
    except CaptureError as exc:
        print("eslhook fake-switch: %s" % exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print("eslhook fake-switch: cannot listen on %s:%d: %s"
              % (args.listen[0], args.listen[1], exc.strerror or exc), file=sys.stderr)
        return 2
    print("fake FreeSWITCH listening on %s:%d (password %s, speed %s%s)"
          % (host, port, "set" if args.password else "empty", args.speed,
             ", looping" if args.loop else ""), flush=True)
    stop = []
    handler = lambda signum, frame: stop.append(signum)  # noqa: E731 - only sets a flag
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop:  # runs until a signal; each wait is one second
            gevent.sleep(1.0)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        switch.stop()
    print("fake FreeSWITCH stopped (%d event frames sent)" % switch.events_sent, flush=True)
    return 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m eslhook.fakeswitch")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fake-switch", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)
