"""FindCoordinator (key 10), v0-6.

v0 looks up a group; v1+ adds the key type (0 group, 1 transaction); v3+ is flexible; v4+ batches
keys in ``coordinator_keys`` and answers per key. This is a single-node cluster, so this broker
coordinates every group and every transactional id. Key type 2 (share groups, v6) is not supported
here and gets INVALID_REQUEST, as does an unknown key type. An empty group id gets INVALID_GROUP_ID
and an empty transactional id INVALID_REQUEST.
"""

from __future__ import annotations

from kbroker.api.registry import api
from protocol.errors import ErrorCode, default_message
from protocol.messages.find_coordinator import FindCoordinatorResponse

GROUP, TRANSACTION = 0, 1


def _lookup(ctx, key: str, key_type: int) -> tuple[ErrorCode, str | None]:
    broker = ctx.broker
    if key_type == GROUP:
        if not key:
            return ErrorCode.INVALID_GROUP_ID, None
        coordinator = broker.group_coordinator
        if coordinator is None or not coordinator.loaded:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        return ErrorCode.NONE, None
    if key_type == TRANSACTION:
        if not key:
            return ErrorCode.INVALID_REQUEST, "Transactional id must not be empty"
        return ErrorCode.NONE, None
    return ErrorCode.INVALID_REQUEST, f"Unsupported key type {key_type}"


@api(10, 0, 6)
def handle_find_coordinator(ctx, request):
    version = ctx.api_version
    host, port = ctx.broker.listener_endpoint(ctx.connection.endpoint.listener)
    node_id = ctx.broker.node_id
    if version < 4:
        error, message = _lookup(ctx, request.key, request.key_type if version >= 1 else GROUP)
        if error != ErrorCode.NONE:
            return FindCoordinatorResponse(error_code=error, error_message=message or default_message(error),
                                           node_id=-1, host="", port=-1)
        return FindCoordinatorResponse(error_code=ErrorCode.NONE, error_message=None, node_id=node_id, host=host,
                                       port=port)
    out = []
    if version >= 6 or request.key_type in (GROUP, TRANSACTION):
        for key in request.coordinator_keys:
            error, message = _lookup(ctx, key, request.key_type)
            if error != ErrorCode.NONE:
                out.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=-1, host="", port=-1, error_code=error,
                    error_message=message or default_message(error)))
            else:
                out.append(FindCoordinatorResponse.Coordinator(key=key, node_id=node_id, host=host, port=port,
                                                               error_code=ErrorCode.NONE, error_message=None))
    else:
        for key in request.coordinator_keys:
            out.append(FindCoordinatorResponse.Coordinator(
                key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_REQUEST,
                error_message=f"Unsupported key type {request.key_type}"))
    return FindCoordinatorResponse(coordinators=out)
