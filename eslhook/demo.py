"""``eslhook demo``: the whole pipeline on loopback, no FreeSWITCH needed.

Starts the fake switch on the bundled sample capture (real FreeSWITCH 1.10
events), a tiny receiver that pretty-prints every webhook it gets, and the
bridge, each on a free 127.0.0.1 port; exits 0 once every webhook the capture
should produce has arrived.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from .accounts import AccountDirectory
from .config import AccountConfig, Config, SwitchConfig
from .mapping import channel_payload
from .source.framing import split_frames
from .source.parsing import parse_event

SAMPLE_CAPTURE = Path(__file__).resolve().parent / "data" / "sample.esl"
DEMO_ACCOUNT = "0123456789abcdef0123456789abcdef"
DEMO_HOOK = "fedcba9876543210fedcba9876543210"


class PrintingReceiver:
    """Answers 204 to every request and prints its JSON body."""

    def __init__(self, out=sys.stdout):
        self.out = out
        self.received: list[dict] = []
        self.changed = Event()
        self.server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)

    def _app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
        self.received.append(payload)
        print("--> %s %s  webhook #%d: %s" % (
            environ["REQUEST_METHOD"], environ["PATH_INFO"], len(self.received),
            payload.get("hook_event")), file=self.out)
        print(json.dumps(payload, indent=2, sort_keys=True), file=self.out, flush=True)
        self.changed.set()
        start_response("204 No Content", [])
        return [b""]

    def start(self) -> str:
        self.server.start()
        port = self.server.server_port
        assert port is not None     # a started server is bound
        return "http://127.0.0.1:%d/webhooks" % port

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            self.changed.wait(min(remaining, 0.5))
        return True


def expected_webhooks(capture: Path, accounts: AccountDirectory) -> int:
    """How many webhooks one 'all' hook gets from a capture."""
    count = 0
    for frame in split_frames(capture.read_bytes()):
        event = parse_event(frame)
        if event is not None and channel_payload(event, switch="demo", accounts=accounts):
            count += 1
    return count


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run the pipeline on the built-in fake switch",
        description=__doc__.splitlines()[0])
    p.add_argument("--capture", type=Path, default=SAMPLE_CAPTURE,
                   help="capture to replay (default: the bundled sample)")
    p.add_argument("--format", choices=["json", "plain"], default="json",
                   help="event format eslhook asks the switch for")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="give up after this many seconds (default %(default)s)")


def run(args) -> int:
    from .fakeswitch import FakeSwitch
    from .service import Bridge

    work = Path(tempfile.mkdtemp(prefix="eslhook-demo-"))
    receiver = PrintingReceiver()
    uri = receiver.start()
    switch = FakeSwitch([args.capture])
    host, port = switch.start()
    (work / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": DEMO_HOOK, "account_id": DEMO_ACCOUNT, "name": "Demo: every call event",
        "uri": uri, "http_verb": "post", "format": "json", "hook": "all"}]}))
    config = Config(
        path=work / "eslhook.yaml",
        switches=(SwitchConfig(name="demo", host=host, port=port, format=args.format),),
        hooks_file=work / "hooks.yaml", state_dir=work / "state",
        accounts=(AccountConfig(id=DEMO_ACCOUNT, name="Demo"),),
        default_account_id=DEMO_ACCOUNT)
    expected = expected_webhooks(args.capture, AccountDirectory.from_config(config))
    print("fake switch on %s:%d replaying %s; receiver at %s; expecting %d webhooks"
          % (host, port, args.capture.name, uri, expected), flush=True)
    bridge = Bridge(config)
    bridge.start()
    try:
        ok = receiver.wait_for(expected, args.timeout)
    finally:
        bridge.stop(drain_seconds=2)
        switch.stop()
        receiver.server.stop(timeout=1)
    got = len(receiver.received)
    print("demo %s: %d of %d webhooks arrived" % ("ok" if ok else "FAILED", got, expected))
    return 0 if ok and got == expected else 1
