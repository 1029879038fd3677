"""A real PostgreSQL for tests and benchmarks, started in a temporary directory.

pgserver (PyPI, test extra) ships PostgreSQL's binaries in a wheel and runs
initdb and the server as the current user (root too), listening on a unix socket
under the directory only: no port.  Each test gets its own database
(``create_database``: a CREATE DATABASE from template0 takes ~0.05 s), so tests
never see each other's rows, and under xdist all workers share one server
(``SharedPostgres``): started by the first worker that needs it, stopped by the
controller at the end (or, if the controller is killed, by a watchdog).
"""

from __future__ import annotations

import atexit
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator


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

    def skip_disk_syncs(self) -> None:
        """No fsync at commit: the tests' databases need not outlive a crash of the
        machine, and the workers' commits then wait on no disk (the shared server)."""
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                connection.execute("ALTER SYSTEM SET %s = off" % setting)
            connection.execute("SELECT pg_reload_conf()")

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
            atexit.unregister(self.server._cleanup)     # done: not again at exit
            shutil.rmtree(self.directory.parent if self.directory.parent.name.startswith(
                "eslhook-pg-") else self.directory, ignore_errors=True)

    def _pg_ctl(self, action: str) -> None:
        from pgserver._commands import pg_ctl
        pg_ctl(["-w", "-m", "fast", action], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=30)


def start_postgres(directory: Path, cleanup_mode: str | None = "stop") -> LocalPostgres:
    """Start a server with its data and socket in ``directory`` (a fresh one), or
    attach to the one running there.  ``cleanup_mode`` None: this process never
    stops it (pgserver would at exit otherwise)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(directory.parent))   # pgserver warns without
    try:
        import pgserver
    except ImportError as exc:
        raise NoPostgres("pgserver is not installed (pip install '.[test]')") from exc
    directory.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(str(directory), cleanup_mode=cleanup_mode)
    except Exception as exc:          # pgserver raises its own and subprocess errors
        raise NoPostgres("pgserver could not start PostgreSQL: %s" % exc) from exc
    return LocalPostgres(directory, server, str(server.get_uri()))


class SharedPostgres:
    """One server for all xdist workers of a run, in ``directory`` (the controller's).

    The controller makes the directory (``begin``: its path goes to the workers in
    the environment) and starts a watchdog; the first worker asking for the server
    starts it under a file lock, the others attach.  The controller stops it after
    the workers are done (``end``); the watchdog stops it if the controller dies
    first (it waits for the end of a pipe only the controller holds)."""

    ENVIRON = "ESLHOOK_TEST_SHARED_POSTGRES"

    def __init__(self, directory: Path):
        self.directory = directory

    @classmethod
    def begin(cls) -> tuple["SharedPostgres", subprocess.Popen[bytes]]:
        # not under pytest's tmp: pgserver runs PostgreSQL as its own user, which
        # pytest-of-root's 0700 directories shut out
        shared = cls(Path(tempfile.mkdtemp(prefix="eslhook-pg-")))
        os.environ[cls.ENVIRON] = str(shared.directory)
        # pgserver's lock file, for every server of the run's workers (a server's own
        # directory would be removed at its stop, and made again by the next lock): a
        # directory of its own, as pgserver opens the data directory's parent to its
        # user (platformdirs warns then)
        runtime = shared.directory / "runtime"
        runtime.mkdir(mode=0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        watchdog = subprocess.Popen([sys.executable, __file__, "--watch", str(shared.directory)],
                                    stdin=subprocess.PIPE, start_new_session=True)
        return shared, watchdog

    @classmethod
    def of_this_worker(cls) -> "SharedPostgres | None":
        """The run's shared server in an xdist worker, None elsewhere."""
        directory = os.environ.get(cls.ENVIRON)
        if not (directory and os.environ.get("PYTEST_XDIST_WORKER")):
            return None
        return cls(Path(directory))

    def attach(self) -> LocalPostgres:
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)       # released when the file closes
            server = start_postgres(self.directory / "pg", cleanup_mode=None)
            server.skip_disk_syncs()
        # pgserver's exit handler would only take its lock again, in a directory
        # that may be gone by then (and so made again)
        atexit.unregister(server.server._cleanup)
        return server

    def end(self, watchdog: subprocess.Popen[bytes] | None = None) -> None:
        """Stop the server if one runs and remove the directory."""
        pgdata = self.directory / "pg"
        if (pgdata / "postmaster.pid").exists():
            package = importlib.util.find_spec("pgserver")   # not imported: it warns
            assert package is not None and package.origin is not None
            binary = Path(package.origin).parent / "pginstall" / "bin" / "pg_ctl"
            subprocess.run([str(binary), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
                           user="pgserver" if os.geteuid() == 0 else None,
                           capture_output=True, timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)
        if watchdog is not None and watchdog.stdin is not None:
            watchdog.stdin.close()                 # nothing left to watch
            watchdog.wait(timeout=30)


# -- pytest fixtures (imported by tests/conftest.py) -----------------------------------

def _pytest_fixtures() -> tuple[Any, Any, Any]:
    import pytest

    def started(start: Callable[[], LocalPostgres]) -> LocalPostgres:
        """``start()``; cannot: the test is skipped, and fails under CI=true (CI must
        test the PostgreSQL backends)."""
        try:
            return start()
        except NoPostgres as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))

    def own_server() -> LocalPostgres:
        # not under pytest's tmp: pgserver runs PostgreSQL as its own user, which
        # pytest-of-root's 0700 directories shut out
        return start_postgres(Path(tempfile.mkdtemp(prefix="eslhook-pg-")) / "pg")

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[LocalPostgres]:
        """The run's server: under xdist the one all workers share (never stopped or
        restarted by a test: a test that needs that takes ``private_postgres``), else
        one of this process's own, stopped at the end of the session whatever happened."""
        shared = SharedPostgres.of_this_worker()
        server = started(shared.attach if shared else own_server)
        try:
            yield server
        finally:
            if not shared:
                server.stop()

    @pytest.fixture
    def pg_dsn(postgres: LocalPostgres) -> Iterator[str]:
        """A fresh empty database of its own for one test; dropped after it."""
        dsn = postgres.create_database()
        yield dsn
        postgres.drop_database(dsn)

    @pytest.fixture
    def private_postgres() -> Iterator[LocalPostgres]:
        """A server of the test's own, which it may stop and start (the database away),
        stopped and removed after it."""
        server = started(own_server)
        try:
            yield server
        finally:
            server.stop()

    return postgres, pg_dsn, private_postgres


postgres, pg_dsn, private_postgres = _pytest_fixtures()


def _watch(directory: Path) -> None:
    """The watchdog's life: wait for the controller's end of the pipe to close
    (it exited, however), then stop what is left."""
    sys.stdin.buffer.read()
    SharedPostgres(directory).end()


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    _watch(Path(sys.argv[2]))
