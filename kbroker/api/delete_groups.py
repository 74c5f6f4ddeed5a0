"""DeleteGroups (key 42), v0-2.

Deletes empty groups with their offsets (tombstones in ``__consumer_offsets``). Per group:
INVALID_GROUP_ID for an empty id, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP while it has members.
v2+ is flexible.
"""

from __future__ import annotations

from kbroker.api.registry import api
from protocol.errors import ErrorCode
from protocol.messages.delete_groups import DeleteGroupsResponse


@api(42, 0, 2)
def handle_delete_groups(ctx, request):
    coordinator = ctx.broker.group_coordinator
    R = DeleteGroupsResponse.DeletableGroupResult
    if coordinator is None:
        return DeleteGroupsResponse(throttle_time_ms=0, results=[
            R(group_id=g, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE) for g in request.groups_names])
    results = [R(group_id=g, error_code=code) for g, code in coordinator.delete_groups(list(request.groups_names))]
    return DeleteGroupsResponse(throttle_time_ms=0, results=results)
