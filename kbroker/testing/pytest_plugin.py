"""pytest plugin (registered by the package): real kbroker fixtures for any test suite.

- ``kbroker_bootstrap``: bootstrap servers of a broker shared by the session (fresh data dir);
- ``kbroker_factory``: start brokers with your own ``server.properties`` keys, stopped after the test;
  it takes the test controls of :class:`~kbroker.testing.BrokerThread` too
  (``kbroker_factory(faults=[{"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1}],
  control=True, trace=path)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from kbroker.testing import BrokerThread


@pytest.fixture(scope="session")
def kbroker_session() -> Iterator[BrokerThread]:
    with BrokerThread() as broker:
        yield broker


@pytest.fixture(scope="session")
def kbroker_bootstrap(kbroker_session: BrokerThread) -> str:
    return kbroker_session.bootstrap_servers


@pytest.fixture
def kbroker_factory() -> Iterator[Callable[..., BrokerThread]]:
    started: list[BrokerThread] = []

    def start(config: Mapping[str, str] | None = None, data_dir: str | None = None, **controls: Any
              ) -> BrokerThread:
        broker = BrokerThread(config, data_dir, **controls).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()
