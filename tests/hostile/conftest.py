"""Hostile input at the wire: a broker per module, the wire helpers of tests/integration."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))

from kbroker.testing import BrokerThread  # noqa: E402


@pytest.fixture(scope="module")
def broker():
    with BrokerThread() as b:
        yield b


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic_name() -> str:
    return f"h-{uuid.uuid4().hex[:10]}"
