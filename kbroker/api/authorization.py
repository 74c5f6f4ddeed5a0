"""Authorization checks shared by the API handlers (the decision itself: kbroker/security/acls.py).

A request refused as a whole is answered with the request type's error response carrying the
authorization error, as Kafka's KafkaApis answers it (``request.getErrorResponse``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from kbroker.api.error_response import error_response_as
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, GROUP, READ, TOPIC, AuthContext, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.api.context import BrokerServices
    from kbroker.controller.client import Requester

R = TypeVar("R", bound=Message)


class RequestAuthContext(AuthContext, Protocol):
    """A request's context as a refusal reads it: who asks (:class:`AuthContext`), and the
    request's version (the error response's shape)."""

    @property
    def api_version(self) -> int: ...


class OperationSubject:
    """The principal and address a controller operation authorizes: what ``authorized`` reads from a
    request context (``ctx.broker``, ``ctx.connection.principal``/``peer``), built from the
    forwarded request's requester (Kafka's ControllerApis authorizes the Envelope's principal)."""

    __slots__ = ("broker", "connection", "principal", "peer", "internal")

    def __init__(self, broker: BrokerServices, requester: Requester | None) -> None:
        self.broker = broker
        self.connection = self
        # no requester: the broker's own work (auto-creation, internal topics), never refused
        self.internal = requester is None
        if requester is None:
            self.principal, self.peer = "User:ANONYMOUS", "127.0.0.1:0"
        else:
            self.principal = f"{requester.principal_type}:{requester.principal_name}"
            self.peer = f"{requester.client_host}:0"


def operation_subject(broker: BrokerServices, requester: Requester | None) -> OperationSubject:
    """A context for ``authorized`` in a controller operation; allows everything when there is no
    requester (work the broker asks of the controller for itself)."""
    return OperationSubject(broker, requester)


def group_refused(ctx: RequestAuthContext, request: Message, response_type: type[R]) -> R | None:
    """JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat: READ on the group, else
    the request's error response (a ``response_type``) with GROUP_AUTHORIZATION_FAILED; None when
    allowed."""
    if authorized(ctx, READ, GROUP, request.group_id):
        return None
    return error_response_as(response_type, request, ctx.api_version, int(ErrorCode.GROUP_AUTHORIZATION_FAILED))


def refused(ctx: RequestAuthContext, request: Message, response_type: type[R],
            checks: list[tuple[int, int, str | None, ErrorCode]]) -> R | None:
    """The request's error response (a ``response_type``) with the first failing check's code
    ((operation, resource type, name, error) in Kafka's order); None when every check passes."""
    for operation, resource_type, name, code in checks:
        if name is not None and not authorized(ctx, operation, resource_type, name):
            return error_response_as(response_type, request, ctx.api_version, int(code))
    return None


def config_refused(ctx: AuthContext, operation: int, resource_type: int, name: str) -> ErrorCode | None:
    """DescribeConfigs/AlterConfigs/IncrementalAlterConfigs, per resource as Kafka: a topic (2) needs
    ``operation`` on it (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger on the cluster
    (CLUSTER_AUTHORIZATION_FAILED); None when allowed."""
    if resource_type == 2:
        return None if authorized(ctx, operation, TOPIC, name) else ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return None if authorized(ctx, operation, CLUSTER, CLUSTER_NAME) else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
