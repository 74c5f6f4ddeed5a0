"""Hostile-client tests: they reuse the socket helpers of tests/integration (``wire``); a broker of
the default settings, one a module (a module with other settings defines its own ``broker``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread() as b:
        yield b


@pytest.fixture
def bootstrap(broker: BrokerThread) -> str:
    return broker.bootstrap_servers
