"""A running bridge for the operator's-view tests (metrics, health, logs).

``OpsWorld``: fake switches, a real receiver and a Bridge built from real
YAML files, with its REST API on a free loopback port: ``get`` asks the real
``/metrics`` and ``/healthz`` routes over HTTP.
"""

from __future__ import annotations

import uuid

import requests
import yaml
from receiver import Receiver

from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge

ACME = "ac000000000000000000000000000001"
ACME_REALM = "acme.example.com"


class OpsWorld:
    def __init__(self, tmp_path, *, switches=("fs1",), hooks=(), delivery=None,
                 dead_switches=(), passwords=None, extra=None):
        self.tmp = tmp_path
        self.receiver = Receiver()
        # passwords: {switch name: (the switch's password, the one in eslhook's config)}
        passwords = passwords or {}
        self.fakes = {name: FakeSwitch([], heartbeat_seconds=None,
                                       password=passwords.get(name, ("ClueCon",))[0])
                      for name in switches}
        switch_configs = []
        for name, fake in self.fakes.items():
            host, port = fake.start()
            switch_configs.append({"name": name, "host": host, "port": port, "format": "json",
                                   "password": passwords.get(name, ("", "ClueCon"))[1]})
        for name, port in dead_switches:   # nothing listens there
            switch_configs.append({"name": name, "host": "127.0.0.1", "port": port})
        config = {"switches": switch_configs, "hooks_file": "hooks.yaml", "state_dir": "state",
                  "accounts": [{"id": ACME, "name": "Acme", "realms": [ACME_REALM]}],
                  "delivery": delivery or {"timeout_seconds": 2},
                  "api": {"listen": "127.0.0.1:0"}, **(extra or {})}
        (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump(config))
        self.write_hooks(hooks)
        self.bridge = Bridge(load_config(tmp_path / "eslhook.yaml"))

    def write_hooks(self, hooks) -> None:
        (self.tmp / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": list(hooks)}))

    def hook(self, path, **fields):
        return {"id": uuid.uuid4().hex, "account_id": ACME, "name": path, "hook": "all",
                "uri": self.receiver.url(path), "format": "json", "retries": 0, **fields}

    def start(self, subscribers=True):
        self.bridge.start()
        if subscribers:
            for fake in self.fakes.values():
                assert fake.wait_for_subscribers(1, timeout=5)
        return self

    def call(self, switch="fs1", realm=ACME_REALM, events=None, call_id=None):
        """One call's events at a fake switch; returns its call id."""
        call_id = call_id or str(uuid.uuid4())
        extra = [("Unique-ID", call_id), ("Call-Direction", "inbound"),
                 ("Channel-Name", "sofia/internal/1000@x"), ("variable_domain_name", realm)]
        for name in events or ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
            more = [("Hangup-Cause", "NORMAL_CLEARING")] if name.endswith("COMPLETE") else []
            self.fakes[switch].publish_generated(name, extra + more)
        return call_id

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
