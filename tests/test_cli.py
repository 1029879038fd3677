"""The ``eslhook`` command as a user runs it: real processes, real signals."""

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from receiver import Receiver

from eslhook.fakeswitch import FakeSwitch

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"


def eslhook(*args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-m", "eslhook", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.mark.parametrize("command", [(), ("run",), ("check-config",), ("fake-switch",),
                                     ("record",), ("demo",)])
def test_every_command_has_help(command):
    result = eslhook(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: eslhook")


def test_demo_replays_the_sample_and_every_webhook_arrives():
    result = eslhook("demo", timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("demo ok: ")
    got, _, expected = last.split(": ")[1].split()[:3]
    assert got == expected and int(got) > 0
    assert result.stdout.count('"hook_event": "channel_destroy"') >= 1


def test_run_refuses_a_bad_config_and_names_file_and_key(tmp_path):
    config = tmp_path / "eslhook.yaml"
    config.write_text("switches:\n  - name: fs1\n    port: not-a-port\n")
    result = eslhook("run", "--config", str(config))
    assert result.returncode == 1
    assert "eslhook.yaml" in result.stderr and "switches[0].port" in result.stderr
    assert "refusing to start" in result.stderr


def test_run_delivers_then_stops_cleanly_on_sigterm(tmp_path, captures):
    receiver = Receiver()
    fake = FakeSwitch([captures / "json-sip-burst-20calls.esl"], speed=5.0)
    host, port = fake.start()
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "host": host, "port": port, "password": "ClueCon"}],
        "accounts": [{"id": ACCOUNT, "name": "Acme"}], "default_account_id": ACCOUNT}))
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "all", "hook": "all",
        "format": "json", "uri": receiver.url("/all")}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "eslhook", "run", "--config", str(tmp_path / "eslhook.yaml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        receiver.wait_for(5, timeout=20)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
        fake.stop()
        receiver.stop()
    assert process.returncode == 0, stderr[-3000:]
    assert "signal received, stopping" in stderr and "eslhook stopped" in stderr
    assert "ClueCon" not in stderr  # the switch password never reaches the log
    calls = {r.json["call_id"] for r in receiver.requests}
    assert calls and all(r.json["account_id"] == ACCOUNT for r in receiver.requests)
    assert (tmp_path / "state").is_dir()


def test_check_config_accepts_the_shipped_samples():
    result = eslhook("check-config", "--config", "conf/eslhook.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")
