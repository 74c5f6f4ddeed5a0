"""Authorization checks shared by the API handlers (the decision itself: kbroker/security/acls.py).

A request refused as a whole is answered with the request type's error response carrying the
authorization error, as Kafka's KafkaApis answers it (``request.getErrorResponse``)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from kbroker.api.error_response import error_response_as
from kbroker.security.acls import GROUP, READ, AuthContext, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.join_group import JoinGroupRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest
from kbroker_protocol.messages.streams_group_topology_description_update import (
    StreamsGroupTopologyDescriptionUpdateRequest,
)
from kbroker_protocol.messages.sync_group import SyncGroupRequest
from kbroker_protocol.primitives import Message

R = TypeVar("R", bound=Message)
GroupRequest = (JoinGroupRequest | SyncGroupRequest | HeartbeatRequest | LeaveGroupRequest
                | ConsumerGroupHeartbeatRequest | StreamsGroupHeartbeatRequest
                | StreamsGroupTopologyDescriptionUpdateRequest)
"""The requests :func:`group_refused` checks (each names its group)."""


class RequestAuthContext(AuthContext, Protocol):
    """A request's context as a refusal reads it: who asks (:class:`AuthContext`), and the
    request's version (the error response's shape)."""

    @property
    def api_version(self) -> int: ...


def group_refused(ctx: RequestAuthContext, request: GroupRequest, response_type: type[R]) -> R | None:
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

