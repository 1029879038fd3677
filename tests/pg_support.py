"""A real PostgreSQL for tests and benchmarks, started in a temporary directory.

pgserver (PyPI, test extra) ships PostgreSQL's binaries in a wheel and runs
initdb and the server as the current user (root too), listening on a unix socket
under the directory only: no port, so xdist workers each run their own server
without clashing.  Each test gets its own database (``create_database``: a
CREATE DATABASE from template0 takes ~0.1 s), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


class NoPostgres(Exception):
    """No PostgreSQL can be started here (pgserver missing or failing)."""


@dataclass
class LocalPostgres:
    """One running server; ``stop()`` stops it (always call it)."""
    directory: Path
    server: Any              # pgserver's PostgresServer
    dsn_at_start: str = ""   # its socket, known while it runs (pgserver reads its pid file)

    def dsn(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database))

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its DSN."""
        import psycopg
        name = "%s_%s" % (prefix, uuid.uuid4().hex[:12])
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute('CREATE DATABASE "%s" TEMPLATE template0' % name)
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg
        name = dsn.split("/")[3].split("?", 1)[0]
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def restart(self) -> None:
        """Stop and start the server on the same data (connections are cut)."""
        self._pg_ctl("restart")

    def stop_server(self) -> None:
        """Stop the server and keep its data: the database away until ``start_server``."""
        self._pg_ctl("stop")

    def start_server(self) -> None:
        """Start what ``stop_server`` stopped: the same data, the same socket."""
        from urllib.parse import parse_qs, urlsplit

        from pgserver._commands import pg_ctl
        socket_dir = parse_qs(urlsplit(self.dsn_at_start).query)["host"][0]
        pg_ctl(["-w", "-o", '-h ""', "-o", "-k %s" % socket_dir, "-l", str(self.server.log),
                "start"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def stop(self) -> None:
        """Stop the server (whichever postmaster runs now: pgserver knows only the
        first one, not one ``restart`` started) and remove its directory."""
        try:
            self._pg_ctl("stop")
        except subprocess.CalledProcessError:
            pass                       # not running
        finally:
            self.server.cleanup()      # pgserver's bookkeeping of this process
            shutil.rmtree(self.directory.parent if self.directory.parent.name.startswith(
                "eslhook-pg-") else self.directory, ignore_errors=True)

    def _pg_ctl(self, action: str) -> None:
        from pgserver._commands import pg_ctl
        pg_ctl(["-w", "-m", "fast", action], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=30)


def start_postgres(directory: Path) -> LocalPostgres:
    """Start a server with its data and socket in ``directory`` (a fresh one)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(directory.parent))   # pgserver warns without
    try:
        import pgserver
    except ImportError as exc:
        raise NoPostgres("pgserver is not installed (pip install '.[test]')") from exc
    directory.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(str(directory), cleanup_mode="stop")
    except Exception as exc:          # pgserver raises its own and subprocess errors
        raise NoPostgres("pgserver could not start PostgreSQL: %s" % exc) from exc
    return LocalPostgres(directory, server, str(server.get_uri()))


# -- pytest fixtures (imported by tests/conftest.py) -----------------------------------

def _pytest_fixtures() -> tuple[Any, Any]:
    import pytest

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[LocalPostgres]:
        """One server per test process (each xdist worker its own), stopped at the end
        of the session whatever happened.  Cannot start one: the test is skipped,
        and fails under CI=true (CI must test the PostgreSQL backends)."""
        # not under pytest's tmp: pgserver runs PostgreSQL as its own user, which
        # pytest-of-root's 0700 directories shut out
        try:
            server = start_postgres(Path(tempfile.mkdtemp(prefix="eslhook-pg-")) / "pg")
        except NoPostgres as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def pg_dsn(postgres: LocalPostgres) -> Iterator[str]:
        """A fresh empty database of its own for one test; dropped after it."""
        dsn = postgres.create_database()
        yield dsn
        postgres.drop_database(dsn)

    return postgres, pg_dsn


postgres, pg_dsn = _pytest_fixtures()
