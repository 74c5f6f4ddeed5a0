"""ShareGroupHeartbeat (key 76), v1: KIP-932 share group membership.

Join (epoch 0, with the subscribed topic names), heartbeat and leave (-1); the broker assigns with
the simple assignor (see ``kbroker.coordinator.share_group``). As Kafka's ``KafkaApis``: refused
with UNSUPPORTED_VERSION while the finalized ``share.version`` is 0; a missing, empty or longer
than 36 characters member id is INVALID_REQUEST; both without a message (Kafka answers them with
``getErrorResponse``, which carries the code only).
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker.api.services import ShareGroupServices
from kbroker.coordinator.group_coordinator import coordinator_error, group_write_error, offsets_topic_created
from kbroker.coordinator.share_coordinator import share_groups_enabled
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.share_group_heartbeat import (
    ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
)


def _error(code: ErrorCode, message: str | None = None) -> ShareGroupHeartbeatResponse:
    return ShareGroupHeartbeatResponse(error_code=code, error_message=message, member_id=None, member_epoch=0,
                                       heartbeat_interval_ms=0, assignment=None)


def member_id_valid(member_id: str | None) -> bool:
    """Kafka's ``KafkaApis.isMemberIdValid``."""
    return member_id is not None and 0 < len(member_id) <= 36


@api(ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, 1, 1)
async def handle_share_group_heartbeat(ctx: RequestContext[ShareGroupServices], request: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse:
    # Answered once the group partition's records are replicated (Kafka's coordinator runtime
    # completes a write, with or without records, when the high watermark passes its last
    # written offset): COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR if that fails (issue 17).
    response = _share_group_heartbeat(ctx, request)
    if (response.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and request.group_id
            and await offsets_topic_created(ctx.broker.group_coordinator)):
        response = _share_group_heartbeat(ctx, request)  # __consumer_offsets was being created
    if response.error_code == ErrorCode.NONE:
        code = await group_write_error(ctx.broker.group_coordinator, request.group_id)
        if code != ErrorCode.NONE:
            return _error(code, default_message(code))
    return response


def _share_group_heartbeat(ctx: RequestContext[ShareGroupServices], request: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse:
    broker = ctx.broker
    # Refused in KafkaApis: getErrorResponse carries the code only.
    if not share_groups_enabled(broker):
        return _error(ErrorCode.UNSUPPORTED_VERSION)
    if not member_id_valid(request.member_id):
        return _error(ErrorCode.INVALID_REQUEST)
    coordinator = broker.group_coordinator
    if coordinator is None:
        return _error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    if request.group_id:
        code = coordinator_error(coordinator, request.group_id, create_topic=True)
        if code != ErrorCode.NONE:
            return _error(code, default_message(code))
    return coordinator.share.heartbeat(request, ctx.client_id or "", "/" + ctx.peer.rsplit(":", 1)[0])
