"""Logs: one line per significant happening, with its ids; JSON for log shippers;
and no secret in logs, /metrics, /healthz or the API's hook listing."""

import base64
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import requests
import yaml
from helpers import wait_until
from world import ACME, OpsWorld
from receiver import Reply

from eslhook.fakeswitch import FakeSwitch
from eslhook.hooks.model import Hook
from eslhook.logs import JsonFormatter, make_formatter, setup_logging

ROOT = Path(__file__).resolve().parent.parent
SWITCH_PASSWORD = "pw-Vq8s-right-one"
WRONG_PASSWORD = "pw-Jm3k-wrong-one"
ACCOUNT_TOKEN = "tok-acct-7f2c9e1d"
ADMIN_TOKEN = "tok-admin-b41e88a0"
HOOK_SECRET = "whsec_" + base64.b64encode(b"hook-secret-32-bytes-long-000000").decode()


class Captured(logging.Handler):
    """Every record of every logger, formatted by the real formatters."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.json_lines: list[str] = []
        self.text_lines: list[str] = []
        self._json, self._text = make_formatter("json"), make_formatter("text")

    def emit(self, record):
        self.json_lines.append(self._json.format(record))
        self.text_lines.append(self._text.format(record))

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.json_lines]

    def find(self, logger: str, *words: str) -> list[dict]:
        return [r for r in self.records()
                if r["logger"] == logger and all(w in r["message"] for w in words)]


@pytest.fixture
def captured():
    handler = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_json_lines_carry_time_level_logger_extra_and_exception():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("eslhook.test_logs.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("switch %s: %d", "fs1", 3, extra={"switch": "fs1", "call_id": "c-1"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("crashed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "switch fs1: 3"
    assert (first["level"], first["logger"]) == ("warning", "eslhook.test_logs.json")
    assert (first["switch"], first["call_id"]) == ("fs1", "c-1")
    assert abs(time.mktime(time.strptime(first["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
               - time.mktime(time.gmtime())) < 60
    assert first["ts"].endswith("Z") and "exception" not in first
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]


def test_bad_format_or_level_is_refused_by_name():
    with pytest.raises(ValueError, match="log format: must be one of text, json"):
        make_formatter("xml")
    with pytest.raises(ValueError, match="log level: must be one of"):
        setup_logging("loud", "text", stream=io.StringIO())


def hooks_with_secrets(w):
    has_secret = "secret" in {f.name for f in fields(Hook)}
    extra = {"secret": HOOK_SECRET} if has_secret else {}
    return [w.hook("/gone", hook="channel_create", **extra),
            w.hook("/410", hook="channel_create")]


def test_happenings_are_logged_once_each_with_ids_and_no_secret_leaks(tmp_path, captured):
    w = OpsWorld(tmp_path, switches=("fs1", "fs2"),
                 passwords={"fs1": (SWITCH_PASSWORD, SWITCH_PASSWORD),
                            "fs2": (SWITCH_PASSWORD, WRONG_PASSWORD)},
                 extra={"accounts": [{"id": ACME, "name": "Acme",
                                      "realms": ["acme.example.com"],
                                      "auth_tokens": [ACCOUNT_TOKEN]}],
                        "api": {"listen": "127.0.0.1:0", "admin_tokens": [ADMIN_TOKEN]}})
    try:
        hooks = hooks_with_secrets(w)
        w.write_hooks(hooks)
        w.receiver.responder = lambda request: Reply(410 if request.path == "/410" else 404)
        w.bridge.start()
        assert w.fakes["fs1"].wait_for_subscribers(1, timeout=5)
        # auth failure (fs2 has the wrong password)
        assert wait_until(lambda: captured.find("eslhook.source.switch", "fs2",
                                                "authentication failed"))
        # delivery given up: 404 is final
        call_id = w.call(events=["CHANNEL_CREATE"])
        assert wait_until(lambda: captured.find("eslhook.delivery.queue", "giving up"))
        # hook disabled: 410 Gone disables it at once
        assert wait_until(lambda: captured.find("eslhook.delivery.queue", "disabling hook"))
        # hooks file: a good edit is reloaded, a bad one rejected
        time.sleep(0.05)   # a new mtime for the poller
        w.write_hooks(hooks + [w.hook("/second")])
        assert wait_until(lambda: captured.find("eslhook.hooks.store", "reloaded"), timeout=5)
        (tmp_path / "hooks.yaml").write_text("webhooks: [{id: nope}]\n")
        assert wait_until(lambda: captured.find("eslhook.hooks.store", "rejected"), timeout=5)
        # disconnect, then a reconnect after a delay
        w.fakes["fs1"].disconnect_all()
        assert wait_until(lambda: captured.find("eslhook.source.switch", "fs1", "disconnected"))
        assert wait_until(lambda: len(captured.find("eslhook.source.switch", "fs1",
                                                    "connected (")) == 2, timeout=5)
        listing = requests.get(w.bridge.api.url("/v2/accounts/%s/webhooks" % ACME),
                               headers={"X-Auth-Token": ADMIN_TOKEN}, timeout=5).json()
        # The envelope echoes the caller's own token back (Crossbar's "auth_token");
        # the listing itself is what must hold no secret.
        exposed = [w.get("/metrics").text, w.get("/healthz").text, json.dumps(listing["data"])]
    finally:
        w.close()

    connected = captured.find("eslhook.source.switch", "fs1", "connected (")
    assert len(connected) == 2
    assert len(captured.find("eslhook.source.switch", "fs2", "authentication failed")) >= 1
    given_up = captured.find("eslhook.delivery.queue", "giving up", hooks[0]["id"])
    assert len(given_up) == 1 and call_id in given_up[0]["message"]
    assert given_up[0]["level"] == "warning"
    disabled = captured.find("eslhook.delivery.queue", "disabling hook")
    assert len(disabled) == 1 and hooks[1]["id"] in disabled[0]["message"]
    assert len(captured.find("eslhook.source.switch", "fs1", "disconnected")) == 1
    reconnecting = captured.find("eslhook.source.switch", "fs1", "reconnecting in")
    assert reconnecting and reconnecting[0]["message"].endswith("s")
    assert len(captured.find("eslhook.hooks.store", "reloaded")) == 1
    rejected = captured.find("eslhook.hooks.store", "rejected")
    assert len(rejected) == 1 and rejected[0]["level"] == "error"
    assert ADMIN_TOKEN not in exposed[2] and hooks[0]["id"] in exposed[2]   # listed, no token

    secrets = [SWITCH_PASSWORD, WRONG_PASSWORD, ACCOUNT_TOKEN, ADMIN_TOKEN, HOOK_SECRET,
               HOOK_SECRET[len("whsec_"):]]
    everything = captured.json_lines + captured.text_lines + exposed
    assert len(captured.json_lines) > 10
    for secret in secrets:
        assert not [line for line in everything if secret in line], secret


def test_cli_json_logs_every_line_and_never_the_password(tmp_path):
    fake = FakeSwitch([], heartbeat_seconds=None, password=SWITCH_PASSWORD)
    host, port = fake.start()
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": []}))
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "pbx1", "host": host, "port": port, "password": SWITCH_PASSWORD}],
        "hooks_file": "hooks.yaml", "state_dir": "state"}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "eslhook", "--log-format", "json", "--log-level", "debug",
         "run", "--config", str(tmp_path / "eslhook.yaml"), "--drain-seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(tmp_path))
    try:
        assert fake.wait_for_subscribers(1, timeout=15)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
        fake.stop()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert any(r["logger"] == "eslhook.source.switch" and "pbx1 connected" in r["message"]
               for r in lines)
    assert any(r["message"] == "eslhook stopped" for r in lines)
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    assert SWITCH_PASSWORD.encode() not in out + err
