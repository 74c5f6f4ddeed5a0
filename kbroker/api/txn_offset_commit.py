"""TxnOffsetCommit (key 28), v0-6.

Offsets a transactional producer commits for a consumer group. As Kafka 4.4's KafkaApis, the
topics are checked first: at v6 (KIP-1319) topics are named by id and an id this cluster does not
know gets UNKNOWN_TOPIC_ID; at every version a topic or partition that does not exist gets
UNKNOWN_TOPIC_OR_PARTITION, and when nothing valid is left that is the whole answer. The rest goes
to the coordinators: the transaction coordinator checks that the producer owns the transaction
(PRODUCER_FENCED — INVALID_PRODUCER_EPOCH before v3 —, INVALID_PRODUCER_ID_MAPPING) and that
AddOffsetsToTxn added the group (INVALID_TXN_STATE); the group coordinator keeps the offsets pending
until the transaction's end makes them visible (commit) or drops them (abort). v3+ carries the
member id and generation (a member epoch for KIP-848 groups), which the group coordinator checks;
from v6 a generation for a group that does not exist is GROUP_ID_NOT_FOUND and a stale member
epoch STALE_MEMBER_EPOCH, where older versions get ILLEGAL_GENERATION for both. v5 is Transactions
V2: the group's offsets partition joins the transaction here (the client sends no AddOffsetsToTxn).
Before v2, COORDINATOR_LOAD_IN_PROGRESS is answered as COORDINATOR_NOT_AVAILABLE (KAFKA-7296).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.api.authorization import refused
from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.coordinator.group_coordinator import OFFSETS_TOPIC, await_offsets_topic, coordinator_error
from kbroker.coordinator.txn_coordinator import TxnError
from kbroker.security.acls import GROUP, READ, TOPIC, TRANSACTIONAL_ID, WRITE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest, TxnOffsetCommitResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.replica_manager import ReplicaManager

TopicResp = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic
PartResp = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic.TxnOffsetCommitResponsePartition
_Topic = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
_Partition = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition

ZERO_UUID = uuid.UUID(int=0)


class TxnOffsetCommitServices(Authorizing, Protocol):
    """What TxnOffsetCommit uses of the broker."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...
    image: MetadataImage
    replica_manager: ReplicaManager
    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...


@api(TxnOffsetCommitRequest, TxnOffsetCommitResponse, 0, 6)
async def handle_txn_offset_commit(ctx: RequestContext[TxnOffsetCommitServices], request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse:
    # Kafka's checks, in its order (kbroker/security/acls.py)
    if (refusal := refused(ctx, request, TxnOffsetCommitResponse, [
        (WRITE, TRANSACTIONAL_ID, request.transactional_id, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (READ, GROUP, request.group_id, ErrorCode.GROUP_AUTHORIZATION_FAILED)])) is not None:
        return refusal
    version = ctx.api_version
    image = ctx.broker.image
    # (request topic, resolved name or None, {partition index: error or None for "to the coordinator"})
    checked: list[tuple[_Topic, str | None, dict[int, ErrorCode | None]]] = []
    valid: list[tuple[str, _Partition]] = []
    for t in request.topics:
        if version >= 6:
            topic = image.topic_by_id(t.topic_id) if t.topic_id != ZERO_UUID else None
            if topic is None:
                checked.append((t, None, {p.partition_index: ErrorCode.UNKNOWN_TOPIC_ID for p in t.partitions}))
                continue
        else:
            topic = image.topic(t.name)
        name = topic.name if topic is not None else t.name
        denied = not authorized(ctx, READ, TOPIC, name)  # Kafka: READ on each topic, before its existence
        codes: dict[int, ErrorCode | None] = {}
        for p in t.partitions:
            if denied:
                codes[p.partition_index] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif topic is None or p.partition_index not in topic.partitions:
                codes[p.partition_index] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                codes[p.partition_index] = None
                valid.append((topic.name, p))
        checked.append((t, topic.name if topic is not None else t.name, codes))
    if valid:
        code = await _commit(ctx, request, valid)
        if version < 2 and code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    else:
        code = ErrorCode.NONE
    topics = []
    for t, _name, codes in checked:
        parts = []
        for p in t.partitions:
            error = codes[p.partition_index]
            if error is None:
                error = code
            parts.append(PartResp(partition_index=p.partition_index, error_code=error))
        topics.append(TopicResp(name=t.name if version < 6 else "", topic_id=t.topic_id if version >= 6 else ZERO_UUID,
                                partitions=parts))
    return TxnOffsetCommitResponse(throttle_time_ms=0, topics=topics)


async def _commit(ctx: RequestContext[TxnOffsetCommitServices], request: TxnOffsetCommitRequest,
                  valid: list[tuple[str, _Partition]]) -> ErrorCode:
    """The coordinators' part: one ErrorCode for every valid partition."""
    broker = ctx.broker
    version = ctx.api_version
    group_coordinator = broker.group_coordinator
    # Kafka: COORDINATOR_NOT_AVAILABLE without a coordinator, INVALID_GROUP_ID, then the group's
    # partition (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) before the transaction is checked.
    if group_coordinator is not None and not request.group_id:
        return ErrorCode.INVALID_GROUP_ID
    await await_offsets_topic(group_coordinator)
    ready = coordinator_error(group_coordinator, request.group_id, create_topic=True)
    if ready != ErrorCode.NONE:
        return ready
    group_coordinator = require(group_coordinator, "the group coordinator")  # (coordinator_error: there is one)
    txn_coordinator = require(broker.txn_coordinator, "the transaction coordinator")
    if not txn_coordinator.is_coordinator_for(request.transactional_id) and len(broker.image.brokers) > 1:
        # The transaction coordinator is another broker: verify the group's offsets partition is
        # part of the transaction there, or from v5 (Transactions V2) have it added (Kafka's
        # AddPartitionsToTxnManager).
        code = await broker.replica_manager.verify_with_coordinator(
            request.transactional_id, request.producer_id, request.producer_epoch, OFFSETS_TOPIC,
            txn_coordinator._offsets_partition(request.group_id), verify_only=version < 5)
        if code != ErrorCode.NONE:
            if code == ErrorCode.PRODUCER_FENCED and version < 3:
                code = ErrorCode.INVALID_PRODUCER_EPOCH
            return code
        return await _write_offsets(ctx, request, valid)
    try:
        if version >= 5:
            await txn_coordinator.add_offsets(request.transactional_id, request.producer_id, request.producer_epoch,
                                              request.group_id, client_txn_version=2)
        txn_coordinator.check_offsets(request.transactional_id, request.producer_id, request.producer_epoch,
                                      request.group_id)
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and version < 3:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
        return code
    return await _write_offsets(ctx, request, valid)


async def _write_offsets(ctx: RequestContext[TxnOffsetCommitServices], request: TxnOffsetCommitRequest,
                         valid: list[tuple[str, _Partition]]) -> ErrorCode:
    """The group coordinator's part, once the transaction is checked: answered once the
    offsets are replicated (Kafka's coordinator writes them with acks=all)."""
    version = ctx.api_version
    group_coordinator = require(ctx.broker.group_coordinator, "the group coordinator")  # (_commit: there is one)
    generation = request.generation_id_or_member_epoch if version >= 3 else -1
    if generation >= 0 and request.group_id not in group_coordinator.groups:
        # Kafka's OffsetMetadataManager.validateTransactionalOffsetCommit.
        return ErrorCode.GROUP_ID_NOT_FOUND if version >= 6 else ErrorCode.ILLEGAL_GENERATION
    if version >= 3:
        code = group_coordinator.validate_txn_offset_commit(request.group_id, generation, request.member_id,
                                                            request.group_instance_id)
        if code == ErrorCode.STALE_MEMBER_EPOCH and version < 6:
            code = ErrorCode.ILLEGAL_GENERATION
        if code != ErrorCode.NONE:
            return code
    offsets = {
        (name, p.partition_index): (p.committed_offset, p.committed_leader_epoch, p.committed_metadata)
        for name, p in valid
    }
    result = group_coordinator.prepare_txn_offsets(request.group_id, request.producer_id, request.producer_epoch,
                                                   offsets)
    if result != ErrorCode.NONE:
        return result
    return await group_coordinator.wait_for_replication(request.group_id)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(28)
def _txn_offset_commit_error(request: TxnOffsetCommitRequest, version: int, code: int) -> TxnOffsetCommitResponse:
    R = TxnOffsetCommitResponse
    T = R.TxnOffsetCommitResponseTopic
    return R(topics=[
        T(name=topic.name, topic_id=topic.topic_id, partitions=[
            T.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])
