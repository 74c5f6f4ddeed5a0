"""Share group tests: the raw-protocol helpers of tests/integration are importable here; a broker on
a manual clock (one a module: a module with other settings defines its own ``broker``) and a
connection to it (``wire``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wire import Wire

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(clock="manual") as b:
        yield b


@pytest.fixture
def wire(broker: BrokerThread) -> Iterator[Wire]:
    w = Wire(broker.bootstrap_servers)
    yield w
    w.close()
