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


def run_then_sigterm(config_path, ready, *cleanups) -> tuple[int, str]:
    """``eslhook run`` until ``ready()`` returns, then SIGTERM: (exit status, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "eslhook", "run", "--config", str(config_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
        for cleanup in cleanups:
            cleanup()
    return process.returncode, stderr


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
    returncode, stderr = run_then_sigterm(tmp_path / "eslhook.yaml",
                                          lambda: receiver.wait_for(5, timeout=20),
                                          fake.stop, receiver.stop)
    assert returncode == 0, stderr[-3000:]
    assert "signal received, stopping" in stderr and "eslhook stopped" in stderr
    assert "ClueCon" not in stderr  # the switch password never reaches the log
    calls = {r.json["call_id"] for r in receiver.requests}
    assert calls and all(r.json["account_id"] == ACCOUNT for r in receiver.requests)
    assert (tmp_path / "state").is_dir()


def test_check_config_accepts_the_shipped_samples():
    result = eslhook("check-config", "--config", "conf/eslhook.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")


def write_config(tmp_path, host="127.0.0.1", port=1):
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "host": host, "port": port}],
        "accounts": [{"id": ACCOUNT, "name": "Acme"}], "default_account_id": ACCOUNT}))
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": []}))
    return tmp_path / "eslhook.yaml"


def corrupt_garbage(path):
    path.write_bytes(bytes(range(256)) * 64)


def corrupt_truncated(path):
    from eslhook.delivery.rows import Delivery
    from eslhook.delivery.spool_sql import Batch, SpoolDb
    from eslhook.hooks.model import Hook
    hook = Hook(id=uuid.uuid4().hex, account_id=ACCOUNT, name="h", uri="http://127.0.0.1:9/",
                hook="all", format="json")
    db = SpoolDb(str(path))
    db.apply(Batch(inserts=[Delivery(i, hook, {"call_id": "c%d" % i, "pad": "x" * 500},
                                      "c%d" % i, "e%d" % i, "channel_create", "w%d" % i,
                                      1000.0).row() for i in range(1, 2001)]))
    db.close()
    with open(path, "r+b") as spool:
        spool.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("corrupt", [corrupt_garbage, corrupt_truncated])
def test_run_with_a_corrupt_spool_says_which_file_how_to_recover_and_exits_3(tmp_path, corrupt):
    spool = tmp_path / "state" / "delivery.sqlite3"
    spool.parent.mkdir()
    corrupt(spool)
    result = eslhook("run", "--config", str(write_config(tmp_path)), timeout=30)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]     # after the log lines, if any
    assert message.startswith("eslhook: refusing to start: the delivery spool %s is corrupt ("
                              % spool), message
    assert ("database disk image is malformed" in message) or (
        "file is not a database" in message)
    assert "mv %s %s.corrupt" % (spool, spool) in message
    assert "loses the deliveries pending in it and the attempt log" in message
    assert "3 a corrupt file in state_dir" in " ".join(eslhook("run", "--help").stdout.split())


def test_run_as_root_says_so_at_start(tmp_path):
    import os
    fake = FakeSwitch([], heartbeat_seconds=None)
    host, port = fake.start()
    returncode, stderr = run_then_sigterm(write_config(tmp_path, host, port),
                                          lambda: fake.wait_for_subscribers(1, timeout=20),
                                          fake.stop)
    assert returncode == 0, stderr[-3000:]
    warned = [line for line in stderr.splitlines() if "running as root" in line]
    # this sandbox and CI run as root; elsewhere the warning must stay away
    assert len(warned) == (1 if os.geteuid() == 0 else 0), stderr[-3000:]
    if warned:
        assert "WARNING" in warned[0] and "its own user" in warned[0]


def test_the_root_warning_is_for_root_only():
    from eslhook.service import root_warning
    assert root_warning(1000) is None
    assert "running as root" in root_warning(0)
