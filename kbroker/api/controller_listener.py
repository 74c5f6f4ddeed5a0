"""The controller-listener APIs for a dispatcher that calls ``(header, body)`` itself (the Raft
driver's): :func:`install_controller_handlers` adds every handler registered with
``listeners=("controller",)`` (BrokerRegistration, BrokerHeartbeat, AlterPartition,
UnregisterBroker, AssignReplicasToDirs, the reassignments) to such a table, each given a
:class:`ControllerRequestContext`; :func:`connection_authorized` is the cluster check every API of
the controller listener makes of its connection's principal (:func:`cluster_action_refused`: the
brokers' requests to the controller).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from kbroker.api import load_handlers
from kbroker.api.context import HandlerContext
from kbroker.api.error_response import error_response_as
from kbroker.api.registry import CONTROLLER_LISTENER, Handler, Reply, handlers_for
from kbroker.api.services import Authorizing, ClusterControlling
from kbroker.controller.operations.host import Authorizing as AuthorizerHolder
from kbroker.metadata.client import Requester
from kbroker.raft.transport import request_identity
from kbroker.security.acls import CLUSTER, CLUSTER_ACTION, CLUSTER_NAME
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.primitives import Message

S_co = TypeVar("S_co", covariant=True)  # the services the context offers its handler
R = TypeVar("R", bound=Message)


class ControllerHeader(Protocol):
    """What a controller-listener handler reads of its request header (a ``RequestHeader``, or
    the one a forwarded request is given)."""

    @property
    def request_api_key(self) -> int: ...

    @property
    def request_api_version(self) -> int: ...

    @property
    def client_id(self) -> str | None: ...


class ControllerRequestContext(Generic[S_co]):
    """The part of RequestContext the controller-listener handlers use (a ``HandlerContext[S_co]``:
    each handler is typed on the services it uses)."""

    __slots__ = ("broker", "header", "api_version")

    def __init__(self, broker: S_co, header: ControllerHeader) -> None:
        self.broker = broker
        self.header = header if isinstance(header, RequestHeader) else RequestHeader(
            request_api_key=header.request_api_key, request_api_version=header.request_api_version,
            client_id=header.client_id)
        self.api_version = header.request_api_version


# the Raft driver's table of the other APIs of the controller listener (``RaftDriver.handlers``)
HandlerTable = dict[int, Callable[[ControllerHeader, Message], object]]


def install_controller_handlers(broker: object, handlers: HandlerTable) -> None:
    """Add the controller-listener APIs to ``handlers`` (api key -> ``(header, body) -> response``),
    each given a context on ``broker`` (the node: ``kbroker.wiring.handler_services`` checks that
    it provides the services of every controller-listener handler)."""
    load_handlers()
    for key, entry in handlers_for(CONTROLLER_LISTENER).items():
        handlers[key] = _bound(broker, entry.handler)


def _bound(broker: object, handler: Handler) -> Callable[[ControllerHeader, Message], Reply | Awaitable[Reply]]:
    return lambda header, body: handler(ControllerRequestContext(broker, header), body)


def controller_requester(header: ControllerHeader) -> Requester:
    """Who sent the request being served on the controller listener: its connection's principal
    and host (Kafka's ControllerApis authorizes ``request.context.principal``; a forwarded request
    comes in an Envelope, which names its own), for the operations that authorize it."""
    principal, host = request_identity()
    kind, _, name = principal.partition(":")
    if host:
        return Requester(client_id=header.client_id, client_host=host, principal_type=kind, principal_name=name)
    return Requester(client_id=header.client_id, principal_type=kind, principal_name=name)


def connection_authorized(broker: AuthorizerHolder, operation: int) -> bool:
    """Whether the connection's principal (:func:`request_identity`) may do ``operation`` on the
    cluster: Kafka's ControllerApis ``authHelper.authorizeClusterOperation(request, operation)``
    (``authorize(request.context, operation, CLUSTER, CLUSTER_NAME)``), always true without an
    authorizer. The brokers and controllers pass as super users (``super.users``) or with the ACL."""
    authorizer = broker.authorizer
    if not authorizer.enabled:
        return True
    principal, host = request_identity()
    return authorizer.authorize(principal, host, operation, CLUSTER, CLUSTER_NAME)


class ClusterControlNode(ClusterControlling, Authorizing, Protocol):
    """The node as the brokers' requests to the controller use it (BrokerRegistration,
    BrokerHeartbeat, AlterPartition, AssignReplicasToDirs): its controller, and the authorizer."""


def cluster_action_refused(ctx: HandlerContext[Authorizing], request: Message, response_type: type[R]) -> R | None:
    """None when the connection's principal may do CLUSTER_ACTION on the cluster (a broker's or a
    controller's: a super user, or the ACL); else the request's error response with
    CLUSTER_AUTHORIZATION_FAILED, as Kafka's ControllerApis answers the ClusterAuthorizationException
    of ``authorizeClusterOperation(request, CLUSTER_ACTION)`` (``getErrorResponse``), before the
    controller looks at the request."""
    if connection_authorized(ctx.broker, CLUSTER_ACTION):
        return None
    return error_response_as(response_type, request, ctx.api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
