"""The controller-listener APIs for a dispatcher that calls ``(header, body)`` itself (the Raft
driver's): :func:`install_controller_handlers` adds every handler registered with
``listeners=("controller",)`` (BrokerRegistration, BrokerHeartbeat, AlterPartition,
UnregisterBroker) to such a table, each given a :class:`ControllerRequestContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kbroker.api import load_handlers
from kbroker.api.context import BrokerServices
from kbroker.api.registry import CONTROLLER_LISTENER, handlers_for
from kbroker.metadata.client import Requester
from kbroker.raft.transport import request_identity
from kbroker_protocol.messages import RequestHeader


class ControllerHeader(Protocol):
    """What a controller-listener handler reads of its request header (a ``RequestHeader``, or
    the one a forwarded request is given)."""

    @property
    def request_api_key(self) -> int: ...

    @property
    def request_api_version(self) -> int: ...

    @property
    def client_id(self) -> str | None: ...


class ControllerRequestContext:
    """The part of RequestContext the controller-listener handlers use (a ``HandlerContext``)."""

    __slots__ = ("broker", "header", "api_version")

    def __init__(self, broker: BrokerServices, header: ControllerHeader) -> None:
        self.broker = broker
        self.header = header if isinstance(header, RequestHeader) else RequestHeader(
            request_api_key=header.request_api_key, request_api_version=header.request_api_version,
            client_id=header.client_id)
        self.api_version = header.request_api_version


# the Raft driver's table of the other APIs of the controller listener (``RaftDriver.handlers``)
HandlerTable = dict[int, Callable[[Any, Any], Any]]


def install_controller_handlers(broker: BrokerServices, handlers: HandlerTable) -> None:
    """Add the controller-listener APIs to ``handlers`` (api key -> ``(header, body) -> response``)."""
    load_handlers()
    for key, entry in handlers_for(CONTROLLER_LISTENER).items():
        handlers[key] = (lambda fn: lambda header, body: fn(ControllerRequestContext(broker, header), body))(
            entry.handler)


def controller_requester(header: ControllerHeader) -> Requester:
    """Who sent the request being served on the controller listener: its connection's principal
    and host (Kafka's ControllerApis authorizes ``request.context.principal``; a forwarded request
    comes in an Envelope, which names its own), for the operations that authorize it."""
    principal, host = request_identity()
    kind, _, name = principal.partition(":")
    if host:
        return Requester(client_id=header.client_id, client_host=host, principal_type=kind, principal_name=name)
    return Requester(client_id=header.client_id, principal_type=kind, principal_name=name)
