"""LeaveGroup (key 13), v0-5: members leave a classic group, which rebalances.

v0-2 name one member; its error is the top-level error. v3+ (KIP-345) carry a list of members,
each by member id and/or ``group.instance.id`` (an admin removing static members passes only the
instance id), answered one by one; v4+ is flexible; v5 adds a reason per member. As in Kafka
(a coordinator write), the answer waits until the group's records (a group left empty) and any
earlier pending writes of its partition are replicated; if that fails the top-level error is
COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR (see ``coordinator_writes``).
"""

from __future__ import annotations

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_coordinator import coordinator_error, group_write_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.leave_group import LeaveGroupRequest, LeaveGroupResponse


@api(LeaveGroupRequest, LeaveGroupResponse, 0, 5)
async def handle_leave_group(ctx: RequestContext[GroupServices], request: LeaveGroupRequest) -> LeaveGroupResponse:
    response = _leave_group(ctx, request)
    if response.error_code == ErrorCode.NONE:
        code = await group_write_error(ctx.broker.group_coordinator, request.group_id)
        if code != ErrorCode.NONE:
            return LeaveGroupResponse(error_code=code, members=[])
    return response


def _leave_group(ctx: RequestContext[GroupServices], request: LeaveGroupRequest) -> LeaveGroupResponse:
    if (refused := group_refused(ctx, request, LeaveGroupResponse)) is not None:  # READ on the group (kbroker/security/acls.py)
        return refused
    version = ctx.api_version
    coordinator = ctx.broker.group_coordinator
    if coordinator is not None and not request.group_id:
        return LeaveGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID, members=[])
    code = coordinator_error(coordinator, request.group_id)
    if code != ErrorCode.NONE:
        return LeaveGroupResponse(error_code=code, members=[])
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)
    hosted = coordinator.hosting_group(request.group_id)
    if hosted is not None:
        members: list[tuple[str, str | None]] = [(request.member_id, None)] if version < 3 else [
            (m.member_id, m.group_instance_id) for m in request.members]
        codes = require(coordinator.consumer, "the consumer group manager").classic_leave(hosted, members)
        if version < 3:
            return LeaveGroupResponse(error_code=codes[0], members=[])
        return LeaveGroupResponse(error_code=ErrorCode.NONE, members=[
            LeaveGroupResponse.MemberResponse(member_id=mid, group_instance_id=iid, error_code=code)
            for (mid, iid), code in zip(members, codes, strict=True)])
    if version < 3:
        response = coordinator.classic.leave(request.group_id, [(request.member_id, None)])
        if response.error_code == ErrorCode.NONE and response.members:
            response.error_code = response.members[0].error_code
        response.members = []
        return response
    members = [(m.member_id, m.group_instance_id) for m in request.members]
    return coordinator.classic.leave(request.group_id, members)
