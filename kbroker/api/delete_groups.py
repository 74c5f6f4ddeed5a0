"""DeleteGroups (key 42), v0-3.

Deletes empty groups with their offsets (tombstones in ``__consumer_offsets``). A name given twice
is answered once, as Kafka's KafkaApis does. Per group: INVALID_GROUP_ID for an empty id,
GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP while it has members. v2+ is flexible. v3 adds a per-group
ErrorMessage; Kafka 4.4 fills it only for GROUP_DELETION_FAILED (a share or streams group whose
state could not be cleaned up, which kbroker has no such state to fail on), so it is null here as
it is in Kafka for the errors above.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_coordinator import coordinator_error
from kbroker.security.acls import DELETE, GROUP, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest, DeleteGroupsResponse


@api(DeleteGroupsRequest, DeleteGroupsResponse, 0, 3)
def handle_delete_groups(ctx: RequestContext[GroupServices], request: DeleteGroupsRequest) -> DeleteGroupsResponse:
    coordinator = ctx.broker.group_coordinator
    R = DeleteGroupsResponse.DeletableGroupResult
    names = list(dict.fromkeys(request.groups_names))
    # Per group, the empty id included (Kafka sends it to its partition): COORDINATOR_NOT_AVAILABLE
    # without a coordinator, NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS from the partition.
    early = {g: coordinator_error(coordinator, g) if authorized(ctx, DELETE, GROUP, g)
             else ErrorCode.GROUP_AUTHORIZATION_FAILED for g in names}  # Kafka: DELETE on each group
    ready = [g for g, code in early.items() if code == ErrorCode.NONE]
    # (a group is ready only with a coordinator: coordinator_error answers COORDINATOR_NOT_AVAILABLE)
    deleted = dict(require(coordinator, "the group coordinator").delete_groups(ready)) if ready else {}
    results = [R(group_id=g, error_code=deleted.get(g, early[g]), error_message=None) for g in names]
    return DeleteGroupsResponse(throttle_time_ms=0, results=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(42)
def _delete_groups_error(request: DeleteGroupsRequest, version: int, code: int) -> DeleteGroupsResponse:
    R = DeleteGroupsResponse
    return R(results=[R.DeletableGroupResult(group_id=group_id, error_code=code)
                      for group_id in request.groups_names])
