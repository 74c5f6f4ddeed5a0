"""AddPartitionsToTxn (key 24), v0-5.

v0-3 (clients): one transaction; every partition gets the same outcome: NONE, the transaction
error (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED — INVALID_PRODUCER_EPOCH before v2 —,
CONCURRENT_TRANSACTIONS, ...), or, when some partitions do not exist, UNKNOWN_TOPIC_OR_PARTITION
for those and OPERATION_NOT_ATTEMPTED for the others. v4+ (brokers, KIP-890) batches several
transactions and may be ``VerifyOnly``: then nothing is added and, as in Kafka 4, each partition
answers NONE if it is in the transaction and TRANSACTION_ABORTABLE if not, or all of them
INVALID_PRODUCER_ID_MAPPING / PRODUCER_FENCED / CONCURRENT_TRANSACTIONS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.authorization import refused
from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.coordinator.txn_coordinator import TxnError
from kbroker.security.acls import TOPIC, TRANSACTIONAL_ID, WRITE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTopicResult,
)

if TYPE_CHECKING:
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.metadata.image import MetadataImage

TxnResult = AddPartitionsToTxnResponse.AddPartitionsToTxnResult


class AddPartitionsToTxnServices(Authorizing, Protocol):
    """What AddPartitionsToTxn uses of the broker."""

    image: MetadataImage
    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...


def _results(codes: dict[tuple[str, int], ErrorCode]) -> list[AddPartitionsToTxnTopicResult]:
    by_topic: dict[str, list[AddPartitionsToTxnPartitionResult]] = {}
    for (topic, index), code in codes.items():
        by_topic.setdefault(topic, []).append(
            AddPartitionsToTxnPartitionResult(partition_index=index, partition_error_code=code))
    return [AddPartitionsToTxnTopicResult(name=t, results_by_partition=ps) for t, ps in by_topic.items()]


async def add_one(broker: AddPartitionsToTxnServices, version: int, transactional_id: str, producer_id: int, producer_epoch: int,
                  topics: list[AddPartitionsToTxnTopic], verify_only: bool = False) -> dict[tuple[str, int], ErrorCode]:
    wanted = [(t.name, p) for t in topics for p in t.partitions]
    coordinator = broker.txn_coordinator
    if verify_only:
        return require(coordinator, "the transaction coordinator").verify_partitions(transactional_id, producer_id, producer_epoch, wanted)
    # Kafka asks its metadata cache: the coordinator need not hold a replica of the partition.
    unknown = {tp for tp in wanted if broker.image.partition(*tp) is None}
    if unknown:
        return {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED
                for tp in wanted}
    try:
        # v4+ come from brokers (a partition leader adding a partition for a Transactions V2
        # producer): Kafka's transactionVersionForAddPartitionsToTxn makes them TV2.
        await require(coordinator, "the transaction coordinator").add_partitions(
            transactional_id, producer_id, producer_epoch, wanted, client_txn_version=2 if version >= 4 else None)
        code = ErrorCode.NONE
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and version < 2:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
    return dict.fromkeys(wanted, code)


@api(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, 0, 5)
async def handle_add_partitions_to_txn(ctx: RequestContext[AddPartitionsToTxnServices], request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse:
    # Kafka (v0-3, from clients): WRITE on the transactional id (kbroker/security/acls.py)
    if ctx.api_version < 4 and (refusal := refused(ctx, request, AddPartitionsToTxnResponse, [
        (WRITE, TRANSACTIONAL_ID, request.v3_and_below_transactional_id, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)])) is not None:
        return refusal
    broker = ctx.broker
    version = ctx.api_version
    if version < 4:
        topics = request.v3_and_below_topics
        denied = {t.name for t in topics if not authorized(ctx, WRITE, TOPIC, t.name)}
        if denied:  # Kafka: the whole request fails, the allowed partitions OPERATION_NOT_ATTEMPTED
            codes = {(t.name, p): ErrorCode.TOPIC_AUTHORIZATION_FAILED if t.name in denied
                     else ErrorCode.OPERATION_NOT_ATTEMPTED for t in topics for p in t.partitions}
            return AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=_results(codes))
        codes = await add_one(broker, version, request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                        request.v3_and_below_producer_epoch, topics)
        return AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=_results(codes))
    results = []
    for txn in request.transactions:
        codes = await add_one(broker, version, txn.transactional_id, txn.producer_id, txn.producer_epoch, txn.topics,
                        txn.verify_only)
        results.append(TxnResult(transactional_id=txn.transactional_id, topic_results=_results(codes)))
    return AddPartitionsToTxnResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, results_by_transaction=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(24)
def _add_partitions_to_txn_error(request: AddPartitionsToTxnRequest, version: int, code: int) -> AddPartitionsToTxnResponse:
    # v4+ is the broker-to-broker batched form: Kafka answers with the top-level code only.
    R = AddPartitionsToTxnResponse
    if version >= 4:
        return R(error_code=code)
    T = R.AddPartitionsToTxnTopicResult
    return R(results_by_topic_v3_and_below=[
        T(name=topic.name, results_by_partition=[
            T.AddPartitionsToTxnPartitionResult(partition_index=index, partition_error_code=code)
            for index in topic.partitions])
        for topic in request.v3_and_below_topics
    ])
