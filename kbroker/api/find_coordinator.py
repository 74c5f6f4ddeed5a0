"""FindCoordinator (key 10), v0-6.

v0 looks up a group; v1+ adds the key type (0 group, 1 transaction); v3+ is flexible; v4+ batches
keys in ``coordinator_keys`` and answers per key. This is a single-node cluster, so this broker
coordinates every group and every transactional id; keys are not validated (as in Kafka, an empty
id maps to a partition like any other). Key type 2 (share groups) gets COORDINATOR_NOT_AVAILABLE
(share groups are not implemented; INVALID_REQUEST before v6), an unknown key type INVALID_REQUEST.
"""

from __future__ import annotations

from kbroker.api.registry import api
from protocol.errors import ErrorCode, default_message
from protocol.messages.find_coordinator import FindCoordinatorResponse

GROUP, TRANSACTION, SHARE = 0, 1, 2


def _lookup(ctx, key: str, key_type: int) -> tuple[ErrorCode, str | None]:
    # Like Kafka, the key itself is not validated: any string (even empty) hashes to a partition
    # of the internal topic, and this one node leads them all.
    if key_type == GROUP:
        coordinator = ctx.broker.group_coordinator
        if coordinator is None or not coordinator.loaded:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        return ErrorCode.NONE, None
    if key_type == TRANSACTION:
        if getattr(ctx.broker, "txn_coordinator", None) is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        return ErrorCode.NONE, None
    if key_type == SHARE:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "Share groups are not supported."
    return ErrorCode.INVALID_REQUEST, f"Unknown coordinator type {key_type}"


@api(10, 0, 6)
def handle_find_coordinator(ctx, request):
    version = ctx.api_version
    host, port = ctx.broker.listener_endpoint(ctx.connection.endpoint.listener)
    node_id = ctx.broker.node_id
    if version < 4:
        key_type = request.key_type if version >= 1 else GROUP
        error, message = _lookup(ctx, request.key, key_type)
        if key_type == SHARE:
            error, message = ErrorCode.INVALID_REQUEST, "Share coordinator keys need FindCoordinator v6"
        if error != ErrorCode.NONE:
            return FindCoordinatorResponse(error_code=error, error_message=message or default_message(error),
                                           node_id=-1, host="", port=-1)
        return FindCoordinatorResponse(error_code=ErrorCode.NONE, error_message=None, node_id=node_id, host=host,
                                       port=port)
    out = []
    if version >= 6 or request.key_type != SHARE:
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
                error_message="Share coordinator keys need FindCoordinator v6"))
    return FindCoordinatorResponse(coordinators=out)
