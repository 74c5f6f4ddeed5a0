"""A real broker for integration tests: one per module (fresh data dir), clients connect over TCP."""

from __future__ import annotations

import uuid

import pytest

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker():
    with BrokerThread() as b:
        yield b


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


