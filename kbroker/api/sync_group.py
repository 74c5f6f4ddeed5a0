"""SyncGroup (key 14), v0-5: the second phase of a classic-protocol rebalance.

The leader sends the assignment of every member; everyone gets its own once the leader's arrives
(the response waits in CompletingRebalance). v3 adds ``group.instance.id``; v4+ is flexible; v5
adds the protocol type and name, checked against the group's (INCONSISTENT_GROUP_PROTOCOL) and
echoed in the response.
"""

from __future__ import annotations

import asyncio

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_coordinator import GroupCoordinator, coordinator_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.sync_group import SyncGroupRequest, SyncGroupResponse


@api(SyncGroupRequest, SyncGroupResponse, 0, 5)
async def handle_sync_group(ctx: RequestContext[GroupServices], request: SyncGroupRequest) -> SyncGroupResponse:
    if (refused := group_refused(ctx, request, SyncGroupResponse)) is not None:  # READ on the group (kbroker/security/acls.py)
        return refused
    version = ctx.api_version
    coordinator = ctx.broker.group_coordinator
    # Kafka: COORDINATOR_NOT_AVAILABLE without a coordinator, INVALID_GROUP_ID, then the partition's
    # NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS.
    if coordinator is not None and not request.group_id:
        return SyncGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID, assignment=b"")
    code = coordinator_error(coordinator, request.group_id)
    if code != ErrorCode.NONE:
        return SyncGroupResponse(error_code=code, assignment=b"")
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)

    hosted = coordinator.hosting_group(request.group_id)
    if hosted is not None:
        response = require(coordinator.consumer, "the consumer group manager").classic_sync(
            hosted, member_id=request.member_id, generation=request.generation_id,
            group_instance_id=request.group_instance_id if version >= 3 else None,
            protocol_type=request.protocol_type if version >= 5 else None,
            protocol_name=request.protocol_name if version >= 5 else None)
        if version < 5:
            response.protocol_type = response.protocol_name = None
        return await _replicated(coordinator, request.group_id, response, version)
    fut: asyncio.Future[SyncGroupResponse] = asyncio.get_running_loop().create_future()

    def respond(r: SyncGroupResponse) -> None:
        if not fut.done():
            fut.set_result(r)

    coordinator.classic.sync(
        group_id=request.group_id, member_id=request.member_id, generation=request.generation_id,
        group_instance_id=request.group_instance_id if version >= 3 else None,
        protocol_type=request.protocol_type if version >= 5 else None,
        protocol_name=request.protocol_name if version >= 5 else None,
        assignments=[(a.member_id, bytes(a.assignment)) for a in request.assignments], respond=respond)
    response = await fut
    if version < 5:
        response.protocol_type = None
        response.protocol_name = None
    return await _replicated(coordinator, request.group_id, response, version)


async def _replicated(coordinator: GroupCoordinator, group_id: str, response: SyncGroupResponse, version: int) -> SyncGroupResponse:
    """Answer once the group's records (the leader's assignment) are replicated: Kafka's coordinator
    writes them with acks=all and completes a write when its partition's high watermark passes the
    last written offset; a failure answers COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR."""
    if response.error_code != ErrorCode.NONE:
        return response
    code = await coordinator.wait_for_replication(group_id)
    if code == ErrorCode.NONE:
        return response
    failed = SyncGroupResponse(error_code=code, assignment=b"")
    if version < 5:
        failed.protocol_type = failed.protocol_name = None
    return failed


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(14)
def _sync_group_error(request: SyncGroupRequest, version: int, code: int) -> SyncGroupResponse:
    return SyncGroupResponse(error_code=code, assignment=b"")
