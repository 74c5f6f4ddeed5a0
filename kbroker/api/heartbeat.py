"""Heartbeat (key 12), v0-4: keeps a classic group member alive.

REBALANCE_IN_PROGRESS tells a member to rejoin; ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID /
FENCED_INSTANCE_ID that it is out. v3 adds ``group.instance.id``; v4+ is flexible. While the
group's offsets partition loads the answer is NONE (Kafka answers heartbeats "blindly" then);
NOT_COORDINATOR when this broker cannot coordinate the group (``coordinator_error``). As Kafka's
heartbeat is a coordinator write without records, an answer other than an error of the member
waits for the group partition's pending writes to be replicated (COORDINATOR_NOT_AVAILABLE /
NOT_COORDINATOR if they fail, see ``coordinator_writes``).
"""

from __future__ import annotations

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_coordinator import coordinator_error, group_write_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.heartbeat import HeartbeatRequest, HeartbeatResponse


@api(HeartbeatRequest, HeartbeatResponse, 0, 4)
async def handle_heartbeat(ctx: RequestContext[GroupServices], request: HeartbeatRequest) -> HeartbeatResponse:
    response = _heartbeat(ctx, request)
    if response.error_code in (ErrorCode.NONE, ErrorCode.REBALANCE_IN_PROGRESS):
        code = await group_write_error(ctx.broker.group_coordinator, request.group_id)
        if code != ErrorCode.NONE:
            return HeartbeatResponse(error_code=code)
    return response


def _heartbeat(ctx: RequestContext[GroupServices], request: HeartbeatRequest) -> HeartbeatResponse:
    if (refused := group_refused(ctx, request, HeartbeatResponse)) is not None:  # READ on the group (kbroker/security/acls.py)
        return refused
    coordinator = ctx.broker.group_coordinator
    if coordinator is not None and not request.group_id:
        return HeartbeatResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    code = coordinator_error(coordinator, request.group_id)
    if code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
        # Kafka's GroupCoordinatorService: "The group is still loading, so blindly respond".
        return HeartbeatResponse(error_code=ErrorCode.NONE)
    if code != ErrorCode.NONE:
        return HeartbeatResponse(error_code=code)
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)
    hosted = coordinator.hosting_group(request.group_id)
    if hosted is not None:
        consumer = require(coordinator.consumer, "the consumer group manager")
        return HeartbeatResponse(error_code=consumer.classic_heartbeat(
            hosted, member_id=request.member_id, generation=request.generation_id,
            group_instance_id=request.group_instance_id if ctx.api_version >= 3 else None))
    return coordinator.classic.heartbeat(
        group_id=request.group_id, member_id=request.member_id, generation=request.generation_id,
        group_instance_id=request.group_instance_id if ctx.api_version >= 3 else None)
