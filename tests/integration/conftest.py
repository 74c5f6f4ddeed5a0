"""A real broker for integration tests: one per module (fresh data dir), clients connect over TCP."""

from __future__ import annotations

import time
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


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)
