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

from kbroker.api.registry import api
from protocol.errors import ErrorCode
from protocol.messages.join_group import JoinGroupResponse


@api(11, 0, 9)
async def handle_join_group(ctx, request):
    version = ctx.api_version
    coordinator = ctx.broker.group_coordinator
    if coordinator is None or not coordinator.loaded:
        response = JoinGroupResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=request.member_id)
    else:
        fut: asyncio.Future = asyncio.get_running_loop().create_future()

        def respond(r: JoinGroupResponse) -> None:
            if not fut.done():
                fut.set_result(r)

        args = dict(
            group_id=request.group_id, member_id=request.member_id,
            group_instance_id=request.group_instance_id if version >= 5 else None,
            protocol_type=request.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
            session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms if version >= 1 else -1,
            client_id=ctx.client_id or "", client_host="/" + ctx.peer.rsplit(":", 1)[0],
            require_known_member_id=version >= 4)
        hosted = coordinator.hosting_group(request.group_id, non_empty=True)
        if hosted is not None:
            del args["group_id"]
            respond(coordinator.consumer.classic_join(hosted, **args))
        else:
            coordinator.classic.join(respond=respond, **args)
        response = await fut
    if version < 7:
        if response.protocol_name is None:
            response.protocol_name = ""
    if response.leader is None:
        response.leader = ""
    if version < 9:
        response.skip_assignment = False
    return response
