"""Fleet mode's foundation on a real PostgreSQL (tests/pg_support.py): a change
reaching another instance through LISTEN/NOTIFY, the versioned migrations, the
commands (migrate, hooks import/export, check-config) and the DSN's password
kept out of every message.  The stores' contracts are tests/contract/."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest
import yaml
from helpers import wait_until

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig, StorageConfig, load_config
from eslhook.hooks.model import Hook
from eslhook.supervise import Deadline

ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"     # base64 of 24 bytes
ROOT = Path(__file__).resolve().parent.parent


def storage(dsn: str) -> StorageConfig:
    return StorageConfig(backend="postgresql", dsn=dsn, pool_size=3)


def hook(n: int, **fields) -> Hook:
    return Hook(**{"id": "d0%030x" % n, "account_id": ACME, "name": "hook %d" % n,
                   "uri": "http://127.0.0.1:9/%d" % n, "hook": "channel_create", **fields})


@pytest.fixture
def databases(pg_dsn):
    from eslhook.pg.database import open_database
    opened = []

    def make():
        opened.append(open_database(storage(pg_dsn)))
        return opened[-1]
    yield make
    for database in opened:
        database.close()


def test_a_change_reaches_another_instance_through_notify_within_a_second(databases):
    from eslhook.pg.hooks import PgHookRepository
    accounts = AccountDirectory([AccountConfig(id=ACME)])
    watcher = PgHookRepository(databases(), accounts)
    writer = PgHookRepository(databases(), accounts)
    watcher.load(), writer.load()
    watcher.start_watching(interval=60)        # its poll alone would take a minute
    try:
        gevent.sleep(0.3)                      # LISTEN in effect
        for n in (1, 2):
            started = time.monotonic()
            writer.update(lambda hooks: (hooks + [hook(n)], None))
            assert wait_until(lambda: len(watcher.hooks) == n, timeout=1.0)
            assert time.monotonic() - started < 1.0
        assert watcher.hooks == writer.hooks == [hook(1), hook(2)]
    finally:
        watcher.stop(Deadline.after(1))


def test_migrations_apply_once_in_order_even_from_instances_starting_together(pg_dsn):
    from eslhook.pg.database import LATEST_VERSION, Database, migrate, schema_version
    pools = [Database(storage(pg_dsn)) for _ in range(3)]
    for pool in pools:
        pool.open()
    try:
        results = [gevent.spawn(migrate, pool) for pool in pools]
        gevent.joinall(results, timeout=30, raise_error=True)
        assert sorted(r.value for r in results) == (
            [(0, LATEST_VERSION)] + [(LATEST_VERSION, LATEST_VERSION)] * 2)
        assert migrate(pools[0]) == (LATEST_VERSION, LATEST_VERSION)
        with pools[0].connection() as connection:
            assert schema_version(connection) == LATEST_VERSION
            versions = connection.execute("SELECT version FROM schema_version ORDER BY 1")
            assert [v for (v,) in versions] == list(range(1, LATEST_VERSION + 1))
    finally:
        for pool in pools:
            pool.close()


def test_a_database_from_before_attempt_durations_keeps_its_attempts(pg_dsn, monkeypatch):
    from eslhook.delivery.rows import AttemptFilter
    from eslhook.pg import database as pg_database
    from eslhook.pg.deliveries_sql import attempts_page
    shipped = pg_database.migrations()
    old = pg_database.Database(storage(pg_dsn))
    old.open()
    try:
        monkeypatch.setattr(pg_database, "migrations", lambda: shipped[:2])   # as released
        assert pg_database.migrate(old) == (0, 2)
        with old.connection() as connection:
            connection.execute(
                "INSERT INTO attempts (account_id, hook_id, delivery_id, webhook_id, uri, "
                "method, attempt, result, reason, retries_left, timestamp) VALUES "
                "(%s, 'h', 1, 'w1', 'http://127.0.0.1:9/', 'POST', 1, 'success', 'ok', 0, "
                "1000.0)", (ACME,))
        monkeypatch.setattr(pg_database, "migrations", lambda: shipped)
        assert pg_database.migrate(old) == (2, pg_database.LATEST_VERSION)
        with old.connection() as connection:
            shown = attempts_page(connection, ACME, "h", 10, None, AttemptFilter()).attempts
        assert [(a["result"], a["duration_ms"]) for a in shown] == [("success", None)]
    finally:
        old.close()


def test_a_database_newer_than_this_eslhook_is_refused(databases):
    from eslhook.pg import DatabaseUnavailable
    from eslhook.pg.database import migrate
    database = databases()
    with database.connection() as connection:
        connection.execute("INSERT INTO schema_version (version, name) VALUES (999, 'x')")
    with pytest.raises(DatabaseUnavailable, match="999.*upgrade eslhook"):
        migrate(database)


# -- the commands ----------------------------------------------------------------------

def eslhook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eslhook", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def write_config(tmp_path: Path, dsn: str, **storage_options) -> Path:
    config = tmp_path / "eslhook.yaml"
    config.write_text(yaml.safe_dump({
        "switches": [{"name": "sw1"}], "accounts": [{"id": ACME}],
        "hooks_file": "unused-hooks.yaml", "state_dir": "state",
        "storage": {"backend": "postgresql", "dsn": dsn, **storage_options}}))
    return config


def test_migrate_import_export_and_check_config_round_trip(tmp_path, pg_dsn):
    from eslhook.pg.database import LATEST_VERSION
    config = write_config(tmp_path, pg_dsn)
    fresh = eslhook("check-config", "--config", str(config))
    assert fresh.returncode == 1 and "eslhook migrate" in fresh.stdout
    migrated = eslhook("migrate", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    assert "schema version %d (was 0)" % LATEST_VERSION in migrated.stdout
    source = tmp_path / "hooks.yaml"
    source.write_text(yaml.safe_dump({"webhooks": [
        hook(1).to_dict(), hook(2, secret=SECRET, enabled=False).to_dict()]}))
    imported = eslhook("hooks", "import", str(source), "--config", str(config))
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 hooks" in imported.stdout
    checked = eslhook("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stdout
    assert "2 hooks (1 enabled)" in checked.stdout
    out = tmp_path / "exported.yaml"
    exported = eslhook("hooks", "export", "--config", str(config), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    entries = yaml.safe_load(out.read_text())["webhooks"]
    assert entries == [hook(1).to_dict(), hook(2, secret=SECRET, enabled=False).to_dict()]
    assert not (tmp_path / "unused-hooks.yaml").exists()     # the hooks live in the database


def test_a_bad_hooks_file_is_not_imported(tmp_path, pg_dsn):
    config = write_config(tmp_path, pg_dsn)
    assert eslhook("migrate", "--config", str(config)).returncode == 0
    source = tmp_path / "hooks.yaml"
    source.write_text(yaml.safe_dump({"webhooks": [{**hook(1).to_dict(), "retires": 3}]}))
    refused = eslhook("hooks", "import", str(source), "--config", str(config))
    assert refused.returncode == 1 and "retires" in refused.stderr
    exported = eslhook("hooks", "export", "--config", str(config))
    assert exported.returncode == 0 and "webhooks: []" in exported.stdout


def test_the_dsn_password_is_never_shown(tmp_path, postgres):
    unreachable = "postgresql://eslhook:hunter2secret@127.0.0.1:1/fleet?connect_timeout=1"
    config = write_config(tmp_path, unreachable, connect_timeout_seconds=0.5)
    for args in (("check-config",), ("migrate",), ("hooks", "export")):
        result = eslhook(*args, "--config", str(config))
        assert result.returncode == 1
        shown = result.stdout + result.stderr
        assert "cannot connect to postgresql postgresql://eslhook:***@127.0.0.1:1/fleet" in shown
        assert "hunter2secret" not in shown
    assert "hunter2secret" not in repr(load_config(config))
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("postgresql://", "mysql://"))
    result = eslhook("check-config", "--config", str(bad))
    assert result.returncode == 1 and "storage.dsn: must start with postgresql://" in result.stdout
    assert "hunter2secret" not in result.stdout


def test_embedded_mode_never_imports_the_driver():
    code = ("import sys; from eslhook import cli, service, stores; cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('psycopg', 'pg8000'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_lease_settings_are_read_and_a_renewal_slower_than_the_lease_is_refused(tmp_path):
    from eslhook.config import ConfigError
    config = write_config(tmp_path, "postgresql://eslhook@127.0.0.1:1/fleet",
                          lease_seconds=30, renew_seconds=5)
    storage_config = load_config(config).storage
    assert (storage_config.lease_seconds, storage_config.renew_seconds) == (30, 5)
    slow = write_config(tmp_path, "postgresql://eslhook@127.0.0.1:1/fleet",
                        lease_seconds=4, renew_seconds=4)
    with pytest.raises(ConfigError, match="storage.renew_seconds: must be below lease_seconds"):
        load_config(slow)
