"""TxnOffsetCommit (key 28), v0-5.

Offsets a transactional producer commits for a consumer group. The transaction coordinator checks
that the producer owns the transaction (PRODUCER_FENCED — INVALID_PRODUCER_EPOCH before v3 —,
INVALID_PRODUCER_ID_MAPPING) and that AddOffsetsToTxn added the group (INVALID_TXN_STATE); the
group coordinator keeps the offsets pending until the transaction's end makes them visible
(commit) or drops them (abort). v3+ carries the member id and generation, which the group
coordinator checks. v5 is Transactions V2: the group's offsets partition joins the transaction
here (the client sends no AddOffsetsToTxn).
"""

from __future__ import annotations

from kbroker.api.registry import api
from kbroker.coordinator.group_coordinator import coordinator_error
from kbroker.coordinator.txn_coordinator import TxnError
from protocol.errors import ErrorCode
from protocol.messages.txn_offset_commit import TxnOffsetCommitResponse

TopicResp = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic
PartResp = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic.TxnOffsetCommitResponsePartition


def _respond(request, codes) -> TxnOffsetCommitResponse:
    return TxnOffsetCommitResponse(throttle_time_ms=0, topics=[
        TopicResp(name=t.name, partitions=[
            PartResp(partition_index=p.partition_index, error_code=codes(t.name, p.partition_index))
            for p in t.partitions
        ])
        for t in request.topics
    ])


@api(28, 0, 5)
def handle_txn_offset_commit(ctx, request) -> TxnOffsetCommitResponse:
    broker = ctx.broker
    group_coordinator = broker.group_coordinator
    # Kafka: COORDINATOR_NOT_AVAILABLE without a coordinator, INVALID_GROUP_ID, then the group's
    # partition (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) before the transaction is checked.
    if group_coordinator is not None and not request.group_id:
        return _respond(request, lambda t, p: ErrorCode.INVALID_GROUP_ID)
    ready = coordinator_error(group_coordinator, request.group_id, create_topic=True)
    if ready != ErrorCode.NONE:
        return _respond(request, lambda t, p: ready)
    try:
        if ctx.api_version >= 5:
            broker.txn_coordinator.add_offsets(request.transactional_id, request.producer_id, request.producer_epoch,
                                               request.group_id, client_txn_version=2)
        broker.txn_coordinator.check_offsets(request.transactional_id, request.producer_id, request.producer_epoch,
                                             request.group_id)
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and ctx.api_version < 3:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
        return _respond(request, lambda t, p: code)
    validate = getattr(group_coordinator, "validate_txn_offset_commit", None)
    if ctx.api_version >= 3 and validate is not None:
        code = validate(request.group_id, request.generation_id_or_member_epoch, request.member_id, request.group_instance_id)
        if code != ErrorCode.NONE:
            return _respond(request, lambda t, p: code)
    offsets = {
        (t.name, p.partition_index): (p.committed_offset, p.committed_leader_epoch, p.committed_metadata)
        for t in request.topics for p in t.partitions
    }
    result = group_coordinator.prepare_txn_offsets(request.group_id, request.producer_id, request.producer_epoch,
                                                   offsets)
    if isinstance(result, dict):
        return _respond(request, lambda t, p: ErrorCode(result.get((t, p), ErrorCode.NONE)))
    if result is not None and int(result) != 0:
        return _respond(request, lambda t, p: ErrorCode(result))
    return _respond(request, lambda t, p: ErrorCode.NONE)
