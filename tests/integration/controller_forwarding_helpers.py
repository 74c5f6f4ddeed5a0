"""Two in-process nodes with the controller seam between them, shared by tests/integration/test_controller_forwarding.py and tests/security/test_client_quotas_forwarding.py (moved from test_controller_forwarding). The fixtures ``controller_apis`` and ``nodes`` are registered for both folders by their conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kbroker.api.envelope import CONTROLLER_APIS, error_response_for
from kbroker.api.registry import HANDLERS, ApiHandler
from kbroker.metadata.channel import ControllerChannel
from kbroker.metadata.remote import RemoteControllerClient
from kbroker.testing import EmbeddedBroker


@pytest.fixture
def controller_apis(monkeypatch):
    for key, lo, hi, fn in CONTROLLER_APIS:
        monkeypatch.setitem(HANDLERS, key, ApiHandler(key, lo, hi, fn, fn.__module__))


def address(node: EmbeddedBroker) -> tuple[str, int]:
    host, port = node.bootstrap_servers.split(",")[0].rsplit(":", 1)
    return host, int(port)


@asynccontextmanager
async def two_nodes(config: dict[str, str] | None = None) -> AsyncIterator[tuple[EmbeddedBroker, EmbeddedBroker]]:
    """Nodes 1 and 2 (``config`` on both), started, each its own controller; stopped on the way out."""
    a = EmbeddedBroker({"node.id": "1", **(config or {})})
    b = EmbeddedBroker({"node.id": "2", **(config or {})})
    await a.start()
    try:
        await b.start()
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


@pytest.fixture
async def nodes(controller_apis):
    async with two_nodes() as pair:
        yield pair


def forward_to(b: EmbeddedBroker, active: Callable[[], int | None], controllers: dict[int, tuple[str, int]],
               timeout_ms: int = 15_000) -> ControllerChannel:
    channel = ControllerChannel(active, controllers, client_id="node-2", request_timeout_ms=timeout_ms,
                                retry_backoff_ms=10)
    b.broker.controller_client = RemoteControllerClient(channel, error_response_for)
    return channel


async def send(node: EmbeddedBroker, api_key: int, request: Any) -> Any:
    """A client's request to ``node`` (over TCP, at the newest version both speak)."""
    client = ControllerChannel(lambda: 0, {0: address(node)}, client_id="admin", request_timeout_ms=15_000)
    try:
        return await client.send(api_key, request)
    finally:
        await client.close()
