"""The compatibility suite models users' own clients."""

import pytest

from eslhook.fakeswitch.server import DEFAULT_SETTLE_SECONDS


@pytest.fixture
def switch_factory(switch_factory):
    """Users' clients: the switch settles before replaying, as ``eslhook fake-switch``."""
    def make(*captures, **options):
        return switch_factory(*captures, **{"settle_seconds": DEFAULT_SETTLE_SECONDS, **options})
    return make
