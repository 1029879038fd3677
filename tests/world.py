"""The end-to-end world: fake switches --TCP--> Bridge --HTTP--> a real receiver.

``World`` builds every part from real YAML files loaded the way ``eslhook run``
loads them, with the fast internal timings of ``helpers.FAST_TIMINGS`` (polls,
reconnects and liveness checks in tens of milliseconds; the configured
intervals are the test's own), and ``close()`` stops all of it.  Tests get one
through the ``world`` / ``ops_world`` fixtures (tests/conftest.py), which close
it even when the test fails.

``OpsWorld`` is the same world as the operator's-view tests (metrics, health,
logs) see it: the REST API on, one Acme account, hooks without retries.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import requests
import yaml
from helpers import ACCOUNT, FAST_TIMINGS
from receiver import Receiver

from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge
from eslhook.timings import Timings

ACME = ACCOUNT                                  # ecallmgr_Account-ID of the 1005 calls
ACME_REALM = "acme.example.com"
BETA = "b0000000000000000000000000000001"
BETA_CHILD = "b0000000000000000000000000000002"
FALLBACK = "f0000000000000000000000000000001"
ACCOUNTS = [{"id": ACME, "name": "Acme", "realms": [ACME_REALM]},
            {"id": BETA, "name": "Beta", "realms": ["beta.example.com"]},
            {"id": BETA_CHILD, "name": "Beta child", "parent_id": BETA,
             "realms": ["child.beta.example.com"]},
            {"id": FALLBACK, "name": "Fallback"}]
FAST_DELIVERY = {"timeout_seconds": 2, "retry_schedule_seconds": [0.05, 0.1]}


class World:
    """Fake switches (the first replays ``captures``), a receiver and a Bridge."""

    def __init__(self, tmp_path: Path, captures=(), *, fmt="json", hooks=(), accounts=None,
                 default_account_id=None, extra=None, switches=("fs1",), dead_switches=(),
                 passwords=None, heartbeat_seconds: float | None = 0.5,
                 delivery=None, timings: Timings = FAST_TIMINGS):
        self.tmp = tmp_path
        self.receiver = Receiver()
        # passwords: {switch name: (the switch's password, the one in eslhook's config)}
        passwords = passwords or {}
        self.fakes = {name: FakeSwitch(captures if i == 0 else (),
                                       heartbeat_seconds=heartbeat_seconds,
                                       password=passwords.get(name, ("ClueCon",))[0])
                      for i, name in enumerate(switches)}
        self.fake = self.fakes[switches[0]]
        switch_configs = []
        for name, fake in self.fakes.items():
            host, port = fake.start()
            switch_configs.append({"name": name, "host": host, "port": port, "format": fmt,
                                   "password": passwords.get(name, ("", "ClueCon"))[1]})
        for name, port in dead_switches:   # nothing listens there
            switch_configs.append({"name": name, "host": "127.0.0.1", "port": port})
        config = {"switches": switch_configs, "hooks_file": "hooks.yaml", "state_dir": "state",
                  "accounts": accounts if accounts is not None else ACCOUNTS,
                  "default_account_id": default_account_id,
                  "delivery": delivery or FAST_DELIVERY, **(extra or {})}
        (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump(config))
        self.write_hooks(hooks)
        self.bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=timings)

    def write_hooks(self, hooks) -> None:
        (self.tmp / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": list(hooks)}))

    def hook(self, account, path, **fields):
        return {"id": uuid.uuid4().hex, "account_id": account, "name": path, "hook": "all",
                "uri": self.receiver.url(path), "format": "json", **fields}

    def start(self, subscribers=True):
        self.bridge.start()
        if subscribers:
            for fake in self.fakes.values():
                assert fake.wait_for_subscribers(1, timeout=5)
        return self

    def call(self, uuid_, *events, **variables):
        """Generate one call's events at the first fake switch."""
        extra = [("Unique-ID", uuid_), ("Call-Direction", "inbound"),
                 ("Channel-Name", variables.pop("channel", "sofia/internal/1000@x"))]
        extra += [("variable_" + k, v) for k, v in variables.items()]
        for name in events or ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
            more = [("Hangup-Cause", "NORMAL_CLEARING")] if name.endswith("COMPLETE") else []
            self.fake.publish_generated(name, extra + more)

    def by_path(self):
        got = defaultdict(list)
        for request in self.receiver.requests:
            got[request.path].append(request.json)
        return got

    def url(self, path: str) -> str:
        """``path`` on the bridge's API (started with the bridge)."""
        assert self.bridge.api is not None, "start() the bridge first: it serves the API"
        return self.bridge.api.url(path)

    def get(self, path, **kwargs) -> requests.Response:
        return requests.get(self.url(path), timeout=5, **kwargs)

    def close(self):
        self.bridge.stop(drain_seconds=1)
        for fake in self.fakes.values():
            fake.stop()
        self.receiver.stop()


class OpsWorld(World):
    """The world with its API on a free port, one account, hooks that do not retry."""

    def __init__(self, tmp_path: Path, *, delivery=None, extra=None, **options):
        super().__init__(tmp_path, heartbeat_seconds=None,
                         accounts=[{"id": ACME, "name": "Acme", "realms": [ACME_REALM]}],
                         delivery=delivery or FAST_DELIVERY,
                         extra={"api": {"listen": "127.0.0.1:0"}, **(extra or {})}, **options)

    def hook(self, path, **fields):   # type: ignore[override]  # one account here
        return super().hook(ACME, path, **{"retries": 0, **fields})

    def call(self, switch="fs1", realm=ACME_REALM, events=None,   # type: ignore[override]
             call_id=None):
        """One call's events at a fake switch; returns its call id."""
        call_id = call_id or str(uuid.uuid4())
        extra = [("Unique-ID", call_id), ("Call-Direction", "inbound"),
                 ("Channel-Name", "sofia/internal/1000@x"), ("variable_domain_name", realm)]
        for name in events or ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
            more = [("Hangup-Cause", "NORMAL_CLEARING")] if name.endswith("COMPLETE") else []
            self.fakes[switch].publish_generated(name, extra + more)
        return call_id
