"""The controller-listener APIs for a dispatcher that calls ``(header, body)`` itself (the Raft
driver's): :func:`install_controller_handlers` adds every handler registered with
``listeners=("controller",)`` (BrokerRegistration, BrokerHeartbeat, AlterPartition,
UnregisterBroker) to such a table, each given a :class:`ControllerRequestContext`.
"""

from __future__ import annotations

from typing import Any

from kbroker.api import load_handlers
from kbroker.api.registry import CONTROLLER_LISTENER, handlers_for


class ControllerRequestContext:
    """The part of RequestContext the controller-listener handlers use."""

    __slots__ = ("broker", "header", "api_version")

    def __init__(self, broker: Any, header: Any) -> None:
        self.broker = broker
        self.header = header
        self.api_version = header.request_api_version


def install_controller_handlers(broker: Any, handlers: dict[int, Any]) -> None:
    """Add the controller-listener APIs to ``handlers`` (api key -> ``(header, body) -> response``)."""
    load_handlers()
    for key, entry in handlers_for(CONTROLLER_LISTENER).items():
        handlers[key] = (lambda fn: lambda header, body: fn(ControllerRequestContext(broker, header), body))(
            entry.handler)
