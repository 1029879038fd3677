"""``eslhook run`` as a real process: a critical greenlet's death ends it with exit
status 4; SIGTERM with a receiver that hangs ends it within the one shutdown
deadline, and what was not delivered is in the spool for the next run."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import yaml
from helpers import wait_until
from receiver import Receiver, Reply

from eslhook.cli import EXIT_CRITICAL
from eslhook.fakeswitch import FakeSwitch

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")
# `eslhook run` with a fault in the spool's commit path, armed when the file named by
# argv[2] exists: a bug (not a disk error), which kills the critical spool flusher.
FAULTY_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from eslhook import cli
    from eslhook.delivery.spool import SpoolDb
    armed, real = Path(sys.argv[2]), SpoolDb.apply_what_fits
    def apply_what_fits(self, batch):
        if armed.exists():
            raise RuntimeError("commit path bug")
        return real(self, batch)
    SpoolDb.apply_what_fits = apply_what_fits
    sys.exit(cli.main(["run", "--config", sys.argv[1], "--drain-seconds", "2"]))
""")


def write_config(tmp_path, switch_port, receiver, **delivery):
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "host": "127.0.0.1", "port": switch_port}],
        "accounts": [{"id": ACCOUNT, "name": "Acme"}], "default_account_id": ACCOUNT,
        "delivery": delivery}))
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
        "id": uuid.uuid4().hex, "account_id": ACCOUNT, "name": "all", "hook": "all",
        "format": "json", "retries": 0, "uri": receiver.url("/all")}]}))
    return tmp_path / "eslhook.yaml"


def publish_call(fake, call_id):
    for name in EVENTS:
        more = [("Hangup-Cause", "NORMAL_CLEARING")] if name.endswith("COMPLETE") else []
        fake.publish_generated(name, [("Unique-ID", call_id), ("Call-Direction", "inbound"),
                                      ("Channel-Name", "sofia/internal/1000@x")] + more)


def pending_rows(spool: Path) -> int:
    with sqlite3.connect(spool, timeout=5) as db:
        return db.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"
                          ).fetchone()[0]


def start(*argv):
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=20):
    try:
        return process.communicate(timeout=timeout)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)


def test_a_dead_critical_greenlet_stops_eslhook_run_with_exit_status_4(tmp_path):
    receiver, fake = Receiver(), FakeSwitch([], heartbeat_seconds=None)
    _, port = fake.start()
    config = write_config(tmp_path, port, receiver)
    armed = tmp_path / "armed"
    process = start("-c", FAULTY_RUN, str(config), str(armed))
    try:
        assert fake.wait_for_subscribers(1, timeout=20)
        armed.touch()
        publish_call(fake, "doomed")
        stderr = finish(process)
    finally:
        fake.stop()
        receiver.stop()
    assert process.returncode == EXIT_CRITICAL == 4, stderr[-3000:]
    assert "critical greenlet 'spool flusher' died" in stderr
    assert "RuntimeError: commit path bug" in stderr          # its traceback
    assert "a critical greenlet died, stopping" in stderr and "eslhook stopped" in stderr


def test_sigterm_with_a_hanging_receiver_exits_by_the_deadline_and_the_next_run_delivers(
        tmp_path):
    receiver, fake = Receiver(), FakeSwitch([], heartbeat_seconds=None)
    receiver.default_reply = Reply(delay=60)          # answers nothing for a minute
    _, port = fake.start()
    config = write_config(tmp_path, port, receiver, timeout_seconds=30)
    spool = tmp_path / "state" / "delivery.sqlite3"
    drain = 1.5
    try:
        process = start("-m", "eslhook", "run", "--config", str(config),
                        "--drain-seconds", str(drain))
        assert fake.wait_for_subscribers(1, timeout=20)
        publish_call(fake, "held")
        receiver.wait_for(1, timeout=10)              # the first attempt hangs
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        stderr = finish(process)
        took = time.monotonic() - signalled
        assert process.returncode == 0, stderr[-3000:]
        # one deadline for the whole shutdown (+ interpreter exit), not one per part
        assert took < drain + 1.5, (took, stderr[-3000:])
        assert "killing 1 delivery attempts still running" in stderr
        assert pending_rows(spool) == 3                # kept for the next run
        receiver.default_reply = Reply()
        before = len(receiver.requests)
        process = start("-m", "eslhook", "run", "--config", str(config))
        assert wait_until(lambda: len(receiver.requests) - before >= 3, timeout=20)
        process.send_signal(signal.SIGTERM)
        stderr = finish(process)
        assert process.returncode == 0, stderr[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        fake.stop()
        receiver.stop()
    again = receiver.requests[before:]
    assert [r.json["hook_event"] for r in again] == [
        "channel_create", "channel_answer", "channel_destroy"]
    assert {r.json["call_id"] for r in again} == {"held"}
    assert pending_rows(spool) == 0
