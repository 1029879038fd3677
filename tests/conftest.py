# gevent first: eslhook is one gevent process, and the tests drive it with
# blocking-style clients (requests, sockets) that must yield to the hub.
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # helpers: receiver.py, ...

CAPTURES = TESTS / "captures"

from receiver import receiver  # noqa: E402,F401  (the `receiver` fixture, for every test)


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


@pytest.fixture
def ops_world(tmp_path):
    """Running bridges for the operator's-view tests: ``make(**options)`` (tests/ops_harness.py)."""
    from ops_harness import OpsWorld

    worlds = []

    def make(**kwargs):
        worlds.append(OpsWorld(tmp_path, **kwargs))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()
