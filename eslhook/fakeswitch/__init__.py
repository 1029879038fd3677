"""A fake FreeSWITCH speaking the ESL inbound protocol, replaying captures.

Part of the product: point a webhook receiver setup at it to test without a
switch.  See ``server`` for the replay semantics.
"""

from eslhook.fakeswitch.capture import Capture, CaptureError, load_capture, parse_capture
from eslhook.fakeswitch.server import FakeSwitch, ReplayPolicy, parse_speed

__all__ = ["Capture", "CaptureError", "FakeSwitch", "ReplayPolicy", "load_capture",
           "parse_capture", "parse_speed"]
