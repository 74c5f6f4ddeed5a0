"""A real broker for integration tests: one per module (fresh data dir), clients connect over TCP
(``wire``: a raw connection speaking the generated codec, see wire.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from tests.integration.controller_forwarding_helpers import controller_apis, nodes  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def broker():
    with BrokerThread() as b:
        yield b


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    w = Wire(bootstrap)
    yield w
    w.close()


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


