"""Hostile-client tests: they reuse the socket helpers of tests/integration (``wire``); a broker of
the default settings, one a module (a module with other settings defines its own ``broker``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread() as b:
        yield b


@pytest.fixture
def bootstrap(broker: BrokerThread) -> str:
    return broker.bootstrap_servers
