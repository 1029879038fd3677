"""The processes of scripts/bench_fleet.py's whole-process scenarios: one PostgreSQL
(tests/pg_support.py), the paced recording switch (fleet_switch.py), the receiver
(fleet_receiver.py) and ``python -m eslhook --log-format json run`` instances, each
its own config, state_dir, API port and log file under the run's directory.

Every process is started with PR_SET_PDEATHSIG and ``Fleet.close`` ends each one the
bench started (kill, then wait), whatever happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

from bench_delivery import _die_with_parent, free_port  # noqa: E402
from pg_support import LocalPostgres, start_postgres  # type: ignore[import-not-found]  # noqa: E402

ACCOUNT = "f1ee7000000000000000000000000001"
HOOK_ID = "f1ee70000000000000000000000000aa"
CAPTURE = ROOT / "tests" / "captures" / "json-single-calls.esl"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of ``pid`` (+ its reaped children's), 0 when it is gone."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])       # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def child_pids(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc/%s/stat" % entry).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                found.append(int(entry))
    return found


class Helper:
    """A helper process that prints its port on its first line."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        assert self.popen.stdout is not None
        self.port = int(self.popen.stdout.readline())

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


class Fleet:
    """One scenario's processes (each scenario builds its own, on a fresh database)."""

    def __init__(self, work: Path, server: LocalPostgres, label: str) -> None:
        self.work = work / label
        self.work.mkdir(parents=True)
        self.server = server
        self.dsn = server.create_database("fleet")
        self.pids_file = self.work / "pids"
        self.pids_file.write_text("")
        self.arrived_path = self.work / "arrivals.jsonl"
        self.sent = self.work / "sent.txt"
        self.instances: dict[str, subprocess.Popen[bytes]] = {}
        self.api_ports: dict[str, int] = {}
        self.helpers: list[Helper] = []
        self.receiver = self._helper([sys.executable, str(ROOT / "scripts" / "fleet_receiver.py"),
                                      "--record", str(self.arrived_path),
                                      "--pids", str(self.pids_file)])
        self.switch: Helper | None = None

    def _helper(self, argv: list[str]) -> Helper:
        helper = Helper(argv)
        self.helpers.append(helper)
        return helper

    def start_switch(self, count: int, rate: float, subscribers: int) -> None:
        self.switch = self._helper([
            sys.executable, str(ROOT / "scripts" / "fleet_switch.py"), str(CAPTURE),
            "--count", str(count), "--rate", str(rate), "--subscribers", str(subscribers),
            "--record", str(self.sent)])

    # -- instances ------------------------------------------------------------------
    def config_path(self, name: str) -> Path:
        return self.work / name / "eslhook.yaml"

    def write_config(self, name: str) -> Path:
        assert self.switch is not None
        (self.work / name / "state").mkdir(parents=True, exist_ok=True)
        self.api_ports[name] = free_port()
        config = {
            "switches": [{"name": "fleet", "host": "127.0.0.1", "port": self.switch.port}],
            "state_dir": str(self.work / name / "state"),
            "hooks_file": str(self.work / "hooks.yaml"),
            "accounts": [{"id": ACCOUNT, "name": "Fleet"}], "default_account_id": ACCOUNT,
            "api": {"listen": "127.0.0.1:%d" % self.api_ports[name]},
            "storage": {"backend": "postgresql", "dsn": self.dsn, "pool_size": 4},
            "delivery": {"timeout_seconds": 5, "max_in_flight": 64,
                         "max_connections_per_host": 32}}
        self.config_path(name).write_text(yaml.safe_dump(config))
        return self.config_path(name)

    def import_hooks(self, name: str) -> None:
        """The one hook ("all" events, json) into the database, through the CLI."""
        (self.work / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [{
            "id": HOOK_ID, "account_id": ACCOUNT, "name": "fleet", "hook": "all",
            "uri": "http://127.0.0.1:%d/hook" % self.receiver.port, "format": "json",
            "retries": 10}]}))
        subprocess.run(self._eslhook("hooks", "import", str(self.work / "hooks.yaml"),
                                     "--config", str(self.config_path(name))),
                       check=True, env=self._env(), timeout=60, capture_output=True)

    def _eslhook(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "eslhook", "--log-format", "json", *args]

    @staticmethod
    def _env() -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(ROOT))

    def start_instance(self, name: str) -> int:
        if not self.config_path(name).exists():
            self.write_config(name)
        log = (self.work / name / "log.jsonl").open("ab")
        proc = subprocess.Popen(self._eslhook("run", "--config", str(self.config_path(name))),
                                stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                preexec_fn=_die_with_parent)
        log.close()
        self.instances[name] = proc
        with self.pids_file.open("a") as pids:
            pids.write("%d %s\n" % (proc.pid, name))
        return proc.pid

    def kill9(self, name: str) -> None:
        self.instances[name].send_signal(signal.SIGKILL)
        self.instances[name].wait(timeout=10)

    def healthz(self, name: str) -> tuple[int, dict[str, Any]]:
        """(status code, body) of the instance's /healthz; (0, {}) if it does not answer."""
        url = "http://127.0.0.1:%d/healthz" % self.api_ports[name]
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def wait_healthy(self, names: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.healthz(name)[0] == 200 for name in names):
                return
            for name in names:
                if self.instances[name].poll() is not None:
                    raise SystemExit("instance %s exited %s; log: %s" % (
                        name, self.instances[name].returncode, self.work / name / "log.jsonl"))
            time.sleep(0.2)
        raise SystemExit("instances %s not healthy within %gs" % (names, timeout))

    # -- measuring --------------------------------------------------------------------
    def arrived(self) -> int:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/count" % self.receiver.port,
                                        timeout=5) as answer:
                return int(answer.read())
        except OSError:
            return -1

    def postmaster_pid(self) -> int:
        return int((Path(self.server.server.pgdata) / "postmaster.pid").read_text().split()[0])

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process (PostgreSQL: the postmaster, its reaped and
        its live backends)."""
        out = {name: cpu_seconds(proc.pid) for name, proc in self.instances.items()}
        assert self.switch is not None
        out["switch"] = cpu_seconds(self.switch.popen.pid)
        out["receiver"] = cpu_seconds(self.receiver.popen.pid)
        try:
            postmaster = self.postmaster_pid()
            out["postgresql"] = cpu_seconds(postmaster, children=True) + sum(
                cpu_seconds(pid) for pid in child_pids(postmaster))
        except OSError:
            out["postgresql"] = 0.0
        return out

    def db_state(self, call_ids: list[str]) -> list[str]:
        """The database's rows of these calls (a lost webhook's diagnosis): each
        delivery in lane order with its enqueuer and its lane's lease."""
        import psycopg
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as connection:
                rows = connection.execute(
                    "SELECT d.call_id, d.hook_event, d.event_id, d.state, d.attempts, "
                    "(SELECT name FROM fleet_instances f WHERE f.number = d.id >> 40), "
                    "l.owner, round(extract(epoch FROM l.expires_at - now())::numeric, 1) "
                    "FROM deliveries d LEFT JOIN lanes l ON l.hook_id = d.hook_id "
                    "AND l.call_id = d.call_id WHERE d.call_id = ANY(%s) ORDER BY d.seq",
                    (call_ids,)).fetchall()
        except Exception as exc:           # psycopg's errors: the diagnosis is optional
            return ["db: not read (%s)" % exc]
        return ["db: call %s %s %s state=%s attempts=%s enqueued_by=%s lane_owner=%s "
                "lease_left_s=%s" % row for row in rows] or ["db: no rows for %s" % call_ids]

    def log_summary(self, name: str) -> str:
        """Warnings and errors in the instance's JSON log, by message (numbers as N)."""
        counts: dict[str, int] = {}
        path = self.work / name / "log.jsonl"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("warning", "error", "critical") and not str(
                    entry.get("message", "")).startswith("running as root"):
                key = "%s: %s" % (entry["level"], re.sub(r"\d+", "N", entry["message"])[:90])
                counts[key] = counts.get(key, 0) + 1
        return "; ".join("%dx %s" % (n, key) for key, n in sorted(counts.items())) or "clean"

    def close(self) -> None:
        for proc in self.instances.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for helper in self.helpers:
            helper.kill()
