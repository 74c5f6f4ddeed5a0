"""DeleteGroups (key 42), v0-2.

Deletes empty groups with their offsets (tombstones in ``__consumer_offsets``). Per group:
INVALID_GROUP_ID for an empty id, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP while it has members.
v2+ is flexible.
"""

from __future__ import annotations

from kbroker.api.registry import api
from kbroker.coordinator.group_coordinator import coordinator_error
from protocol.errors import ErrorCode
from protocol.messages.delete_groups import DeleteGroupsResponse


@api(42, 0, 2)
def handle_delete_groups(ctx, request):
    coordinator = ctx.broker.group_coordinator
    R = DeleteGroupsResponse.DeletableGroupResult
    # Per group, the empty id included (Kafka sends it to its partition): COORDINATOR_NOT_AVAILABLE
    # without a coordinator, NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS from the partition.
    early = {g: coordinator_error(coordinator, g) for g in request.groups_names}
    ready = [g for g, code in early.items() if code == ErrorCode.NONE]
    deleted = dict(coordinator.delete_groups(ready)) if ready else {}
    results = [R(group_id=g, error_code=deleted.get(g, early[g])) for g in request.groups_names]
    return DeleteGroupsResponse(throttle_time_ms=0, results=results)
