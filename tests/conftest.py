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


@pytest.fixture
def captures() -> Path:
    return CAPTURES
