from __future__ import annotations

import pytest

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker():
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0", "offsets.topic.num.partitions": "1",
                       "transaction.state.log.num.partitions": "1"}) as b:
        yield b


@pytest.fixture(scope="module")
def base(broker) -> str:
    return broker.broker.metrics.http.url
