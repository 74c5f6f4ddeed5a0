"""An admin API served on the controller listener by the active controller, as Kafka 4.4's
``ControllerApis`` serves the ones a broker forwards (AlterPartitionReassignments,
ListPartitionReassignments): :func:`served_by_active_controller`.

The connection's principal is authorized on the cluster first (``authHelper.authorizeClusterOperation``:
refused, the request's error response with CLUSTER_AUTHORIZATION_FAILED, even from a controller
that is not the active one); a controller that is not active answers NOT_CONTROLLER (the client
looks for the active one); a controller refusal raised while the operation runs (leadership lost)
is answered with its code. Each refusal is the request's error response (its ``getErrorResponse``,
:func:`kbroker.api.error_response.error_response_as`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from kbroker.api.context import HandlerContext
from kbroker.api.controller_listener import connection_authorized
from kbroker.api.error_response import error_response_as
from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import Authorizing, ControllerHolder
from kbroker.metadata.client import controller_active
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.primitives import Message

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class ActiveControllerGate(ControllerHolder, Authorizing, Protocol):
    """The node as :func:`served_by_active_controller` reads it: the authorizer of the connection's
    check, and its controller (whether it is the active one)."""


async def served_by_active_controller(ctx: HandlerContext[ActiveControllerGate], request: Req, response_type: type[Resp],
                                      operation: int, serve: Callable[[], Awaitable[Resp]]) -> Resp:
    """``serve()`` (the controller's operation on the node, for the connection's principal) when the
    connection may do ``operation`` (ALTER, DESCRIBE...) on the cluster and this node's controller is
    the active one; else, or when the operation raises a controller refusal, ``request``'s error
    response of ``response_type`` with CLUSTER_AUTHORIZATION_FAILED, NOT_CONTROLLER or the refusal's code."""
    # Kafka's ControllerApis: the cluster operation for the connection's principal before the controller
    # is asked (an inactive controller refuses an unauthorized request too, not with NOT_CONTROLLER)
    if not connection_authorized(ctx.broker, operation):
        return error_response_as(response_type, request, ctx.api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    if not controller_active(ctx.broker.controller):
        return error_response_as(response_type, request, ctx.api_version, int(ErrorCode.NOT_CONTROLLER))
    try:
        return await serve()
    except ControllerError as exc:  # leadership lost while the operation ran
        return error_response_as(response_type, request, ctx.api_version, int(exc.code))
