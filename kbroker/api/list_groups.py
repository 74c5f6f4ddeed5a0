"""ListGroups (key 16), v0-5.

Every group this broker coordinates (all of them: one node). v1 adds throttle time; v3+ is
flexible; v4 filters by state (case-insensitive) and returns it; v5 filters by type (``classic``,
``consumer``) and returns it. As Kafka, the groups of the offsets partitions this broker leads:
COORDINATOR_LOAD_IN_PROGRESS for the whole request while one of them loads.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_views import reading_committed
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, DESCRIBE, GROUP, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.list_groups import ListGroupsRequest, ListGroupsResponse


@api(ListGroupsRequest, ListGroupsResponse, 0, 5)
def handle_list_groups(ctx: RequestContext[GroupServices], request: ListGroupsRequest) -> ListGroupsResponse:
    # Kafka reads the groups at the last committed offset of their partition (group_views).
    with reading_committed(ctx.broker.group_coordinator):
        return _list_groups(ctx, request)


def _list_groups(ctx: RequestContext[GroupServices], request: ListGroupsRequest) -> ListGroupsResponse:
    version = ctx.api_version
    coordinator = ctx.broker.group_coordinator
    if coordinator is None:
        return ListGroupsResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, groups=[])
    # Kafka reads every coordinator context of this broker: one still loading fails the whole
    # request (COORDINATOR_LOAD_IN_PROGRESS), partitions it does not lead are left out.
    active, loading = coordinator.active_partitions()
    if loading:
        return ListGroupsResponse(error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, groups=[])
    states = list(request.states_filter) if version >= 4 else []
    types = list(request.types_filter) if version >= 5 else []
    groups = [
        ListGroupsResponse.ListedGroup(group_id=gid, protocol_type=ptype, group_state=state, group_type=gtype)
        for gid, ptype, state, gtype in coordinator.list_groups(states, types)
        if coordinator.partition_for(gid) in active
    ]
    # Kafka: all groups with DESCRIBE on the cluster, else those the principal may describe
    if not authorized(ctx, DESCRIBE, CLUSTER, CLUSTER_NAME):
        groups = [g for g in groups if authorized(ctx, DESCRIBE, GROUP, g.group_id)]
    return ListGroupsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, groups=groups)
