#!/usr/bin/env python3
"""The fake switch process of scripts/bench_fleet.py: a FakeSwitch whose replay

- waits until ``--subscribers`` ESL clients are subscribed (so every instance of the
  fleet hears the same events from the first on),
- publishes the capture's channel events (looped, fresh call ids per pass) at a fixed
  ``--rate`` events/s (0: as fast as the clients read) until ``--count`` were sent,
- appends one line per published event to ``--record``: "monotonic_ns Event-Name
  Unique-ID Core-UUID Event-Sequence clients" (clients: how many connections it was
  written to).  That file is the bench's "expected": what the switch really sent.

    python scripts/fleet_switch.py CAPTURE --count N --rate R --subscribers K --record F
        [--format json]

Renders every event before it listens (--format: the instances' event format; an
event in another is rendered when sent).  Prints its port on the first line.  Stops
itself 600 s after the last event.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import IO  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eslhook.fakeswitch.capture import load_capture  # noqa: E402
from eslhook.fakeswitch.server import FakeSwitch, Outgoing  # noqa: E402

CHANNEL_EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE",
                  "CHANNEL_HANGUP_COMPLETE")
SUBSCRIBE_WAIT_SECONDS = 120
LINGER_SECONDS = 600


class PacedSwitch(FakeSwitch):
    def __init__(self, capture: Path, count: int, rate: float, subscribers: int,
                 record: IO[str]) -> None:
        # heartbeats (not recorded as expected: no webhook) keep the instances'
        # liveness check quiet once the replay has ended
        super().__init__([capture], heartbeat_seconds=20)
        self.count, self.rate, self.wanted = count, rate, subscribers
        self.record = record
        self.channel_events = [e for e in self._captures[0].events if e.name in CHANNEL_EVENTS]
        self.prepared: list[Outgoing] = []

    def _run_timeline(self) -> None:
        self.wait_for_subscribers(self.wanted, timeout=SUBSCRIBE_WAIT_SECONDS)
        self._wait_for_settle()
        started = time.monotonic()
        for sent, outgoing in enumerate(self.prepared):
            if self.rate:
                pause = started + sent / self.rate - time.monotonic()
                if pause > 0:
                    gevent.sleep(pause)
            elif sent % 64 == 63:
                gevent.sleep(0)
            self._wait_for_subscriber()
            self._publish(outgoing)
        self.record.flush()
        self.replay_done.set()

    def prepare(self, fmt: str) -> None:
        """Every event to send, rendered (frames in ``fmt``, headers decoded) before
        the instances start: a loop's rewriting costs the switch about 0.6 ms of CPU
        an event, which would otherwise be what the throughput scenario measures
        (the switch beside two instances on two cores)."""
        self.prepared = []
        for index in range(self.count):
            iteration, position = divmod(index, len(self.channel_events))
            outgoing = Outgoing(self.channel_events[position], iteration, self._shift,
                                self.core_uuid, self._converted)
            outgoing.headers()
            outgoing.frame(fmt)
            self.prepared.append(outgoing)

    def _publish(self, outgoing: Outgoing) -> None:
        before = self.events_sent
        super()._publish(outgoing)
        headers = outgoing.headers()
        self.record.write("%d %s %s %s %s %d\n" % (
            time.monotonic_ns(), outgoing.name, headers.get("Unique-ID", "-"),
            headers.get("Core-UUID", "-"), headers.get("Event-Sequence", "-"),
            self.events_sent - before))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--subscribers", type=int, default=1)
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--format", default="json", help="the instances' event format")
    args = ap.parse_args()
    with args.record.open("w") as record:
        switch = PacedSwitch(args.capture, args.count, args.rate, args.subscribers, record)
        switch.prepare(args.format)
        host, port = switch.start()
        print(port, flush=True)
        switch.replay_done.wait(timeout=SUBSCRIBE_WAIT_SECONDS + args.count / max(args.rate, 1)
                                + 60)
        record.flush()
        gevent.sleep(LINGER_SECONDS)   # stay connected: the bench kills it
        switch.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
