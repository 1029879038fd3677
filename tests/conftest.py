# gevent first: eslhook is one gevent process, and the tests drive it with
# blocking-style clients (requests, sockets) that must yield to the hub.
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# With PYTHONDONTWRITEBYTECODE set (this machine's environment sets it) every xdist
# worker rewrites the asserts of every test module again, and every `python -m
# eslhook` a test starts compiles eslhook again: the suite keeps the bytecode in
# the (git-ignored) __pycache__ directories, for its workers and subprocesses.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # helpers: receiver.py, ...

CAPTURES = TESTS / "captures"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # an xdist worker waits for its next test on an Event that execnet's receiver
    # (a real OS thread) sets: with nothing else scheduled that wait would be a
    # LoopExit, so a timer keeps this thread's hub running between tests
    import gevent  # noqa: E402

    _HUB_KEEPALIVE = gevent.get_hub().loop.timer(3600.0, 3600.0)
    _HUB_KEEPALIVE.start(lambda: None)

from receiver import receiver  # noqa: E402,F401  (the `receiver` fixture, for every test)
from pg_support import SharedPostgres, pg_dsn, postgres, private_postgres  # noqa: E402,F401  (a real PostgreSQL, per test a database)


def pytest_configure(config):
    """The xdist controller: one PostgreSQL for all workers (tests/pg_support.py)."""
    distributing = config.getoption("dist", "no") != "no" and not config.option.collectonly
    if distributing and not hasattr(config, "workerinput"):
        config.stash[SHARED_POSTGRES] = SharedPostgres.begin()


def pytest_unconfigure(config):
    if SHARED_POSTGRES in config.stash:
        shared, watchdog = config.stash[SHARED_POSTGRES]
        shared.end(watchdog)


SHARED_POSTGRES = pytest.StashKey[tuple]()


@pytest.fixture
def captures() -> Path:
    return CAPTURES


@pytest.fixture
def switch_factory():
    """Start fake switches (stopped after the test): ``make(*captures, **options)``."""
    from eslhook.fakeswitch import FakeSwitch

    started = []

    def make(*captures, **options):
        options.setdefault("heartbeat_seconds", None)
        # eslhook's own client subscribes with one command: no settle wait
        # (tests modelling other clients, tests/compat, ask for the real one)
        options.setdefault("settle_seconds", 0.0)
        switch = FakeSwitch(captures, **options)
        switch.start()
        started.append(switch)
        return switch

    yield make
    for switch in started:
        switch.stop()


@pytest.fixture
def queues():
    """Builds started DeliveryQueues (``queues(config, **kwargs)``) and stops those the
    test did not stop itself."""
    from eslhook.delivery.queue import DeliveryQueue

    made = []

    def build(config, **kwargs):
        queue = DeliveryQueue(config, **kwargs)
        queue.start()
        made.append(queue)
        return queue

    yield build
    for queue in made:
        if not queue._stopping:
            queue.stop(timeout=1.0)


def _worlds(tmp_path, kind):
    worlds = []

    def make(*args, **kwargs):
        worlds.append(kind(tmp_path, *args, **kwargs))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()


@pytest.fixture
def world(tmp_path):
    """End-to-end worlds, closed after the test: ``make(captures, **options)`` (tests/world.py)."""
    from world import World

    yield from _worlds(tmp_path, World)


@pytest.fixture
def ops_world(tmp_path):
    """Worlds for the operator's-view tests: ``make(**options)`` (tests/world.py, OpsWorld)."""
    from world import OpsWorld

    yield from _worlds(tmp_path, OpsWorld)
