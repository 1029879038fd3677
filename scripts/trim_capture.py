#!/usr/bin/env python3
"""Cut a capture down to the frames a test needs, bytes unchanged.

    scripts/trim_capture.py IN OUT [--events A,B] [--uuids U1,U2] [--max N]

Keeps every non-event frame (handshake, replies, disconnect notice) and the
events whose Event-Name is in --events (default: what eslhook subscribes to,
from eslhook/events.py), optionally only those of the given Unique-IDs.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from eslhook.events import subscription_names  # noqa: E402
from eslhook.source.framing import FrameReader
from eslhook.source.parsing import parse_event  # noqa: E402

DEFAULT_EVENTS = ",".join(subscription_names())


def raw_frames(data: bytes):
    """(frame, raw bytes) pairs, so kept frames are copied byte for byte."""
    reader, start = FrameReader(), 0
    reader.feed(data)
    for frame in reader.frames():
        # Re-find each frame's extent: header block + blank line + body.
        cut = data.index(b"\n\n", start) + 2
        end = cut + len(frame.body)
        yield frame, data[start:end]
        start = end


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--events", default=DEFAULT_EVENTS)
    ap.add_argument("--uuids", default="")
    ap.add_argument("--max", type=int, default=0, help="max events kept (0: all)")
    args = ap.parse_args()
    names = set(args.events.split(","))
    uuids = set(filter(None, args.uuids.split(",")))
    out, kept = [], 0
    for frame, raw in raw_frames(args.src.read_bytes()):
        event = parse_event(frame)
        if event is not None:
            if event.get("Event-Name") not in names:
                continue
            if uuids and event.get("Unique-ID") not in uuids:
                continue
            if args.max and kept >= args.max:
                continue
            kept += 1
        out.append(raw)
    args.dst.write_bytes(b"".join(out))
    print("%s: %d events, %d bytes" % (args.dst, kept, sum(map(len, out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
