"""JoinGroup (key 11), v0-9: the first phase of a classic-protocol rebalance.

v1 adds the rebalance timeout (v0 uses the session timeout for both); v4+ requires a known member
id: a new member without ``group.instance.id`` gets MEMBER_ID_REQUIRED with its id (KIP-394); v5
adds ``group.instance.id`` (static membership, KIP-345); v6+ is flexible; v7 adds the protocol type
and makes the protocol name nullable in the response; v8 adds a reason; v9 adds SkipAssignment
(a static leader rejoining a stable group, KIP-814). The response waits until the rebalance's
join phase completes (``group_classic``); the connection keeps responses in request order. A
JoinGroup to a KIP-848 group with members makes the client a classic member hosted by that group
(``group_consumer.classic_join``): the broker assigns and answers at once.
"""

from __future__ import annotations

import asyncio

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_classic_join import JoinArgs
from kbroker.coordinator.group_coordinator import GroupCoordinator, await_offsets_topic, coordinator_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.join_group import JoinGroupRequest, JoinGroupResponse


def _coordinator_error(coordinator: GroupCoordinator | None, request: JoinGroupRequest) -> JoinGroupResponse | None:
    """Kafka's GroupCoordinatorService.joinGroup before the group: COORDINATOR_NOT_AVAILABLE
    (echoing the member id) without a coordinator, INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, then
    the partition's NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS (without the member id)."""
    if coordinator is None:
        return JoinGroupResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=request.member_id)
    if not request.group_id:
        return JoinGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID, member_id=request.member_id)
    config = coordinator.classic.config
    if not config.min_session_timeout_ms <= request.session_timeout_ms <= config.max_session_timeout_ms:
        return JoinGroupResponse(error_code=ErrorCode.INVALID_SESSION_TIMEOUT, member_id=request.member_id)
    code = coordinator_error(coordinator, request.group_id, create_topic=True)
    if code != ErrorCode.NONE:
        return JoinGroupResponse(error_code=code, member_id="")
    return None


class _Join(JoinArgs):
    """The join's arguments but the group id (classic groups and consumer groups take them alike)."""

    member_id: str
    require_known_member_id: bool


@api(JoinGroupRequest, JoinGroupResponse, 0, 9)
async def handle_join_group(ctx: RequestContext[GroupServices], request: JoinGroupRequest) -> JoinGroupResponse:
    if (refused := group_refused(ctx, request, JoinGroupResponse)) is not None:  # READ on the group (kbroker/security/acls.py)
        return refused
    version = ctx.api_version
    coordinator = ctx.broker.group_coordinator
    if request.group_id:
        await await_offsets_topic(coordinator)
    early = _coordinator_error(coordinator, request)
    if early is not None:
        response = early
    else:
        fut: asyncio.Future[JoinGroupResponse] = asyncio.get_running_loop().create_future()

        def respond(r: JoinGroupResponse) -> None:
            if not fut.done():
                fut.set_result(r)

        args = _Join(
            member_id=request.member_id,
            group_instance_id=request.group_instance_id if version >= 5 else None,
            protocol_type=request.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
            session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms if version >= 1 else -1,
            client_id=ctx.client_id or "", client_host="/" + ctx.peer.rsplit(":", 1)[0],
            require_known_member_id=version >= 4)
        coordinator = require(coordinator, "the group coordinator")  # (_coordinator_error: there is one)
        hosted = coordinator.hosting_group(request.group_id, non_empty=True)
        if hosted is not None:
            respond(require(coordinator.consumer, "the consumer group manager").classic_join(hosted, **args))
        else:
            coordinator.classic.join(group_id=request.group_id, respond=respond, **args)
        response = await fut
    if version < 7:
        if response.protocol_name is None:
            response.protocol_name = ""
    if response.leader is None:
        response.leader = ""
    if version < 9:
        response.skip_assignment = False
    return response


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(11)
def _join_group_error(request: JoinGroupRequest, version: int, code: int) -> JoinGroupResponse:
    return JoinGroupResponse(error_code=code, generation_id=-1,
                         protocol_name=None if version >= 7 else "",
                         leader="", member_id="", members=[])
