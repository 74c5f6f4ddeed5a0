"""WriteTxnMarkers (key 27), v1-2.

Sent by a transaction coordinator to the leaders of a transaction's partitions (a coordinator writes the
markers of the partitions it leads itself); for a ``__consumer_offsets`` partition the group
coordinator commits or drops the producer's pending transactional offsets. Each marker becomes a
COMMIT/ABORT control batch in every listed partition: INVALID_PRODUCER_EPOCH if the producer has
moved to a newer epoch there, TRANSACTION_COORDINATOR_FENCED for an older coordinator epoch,
UNKNOWN_TOPIC_OR_PARTITION for a partition this broker does not host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.coordinator.group_coordinator import OFFSETS_TOPIC
from kbroker.log import LogClosedError, LogError
from kbroker.replication.deadline import Deadline
from kbroker.replication.partition import Partition
from kbroker.replication.producer_manager import MARKER_TIMEOUT_MS
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.replica_manager import ReplicaManager

Marker = WriteTxnMarkersRequest.WritableTxnMarker
MarkerResult = WriteTxnMarkersResponse.WritableTxnMarkerResult
TopicResult = MarkerResult.WritableTxnMarkerTopicResult
PartResult = TopicResult.WritableTxnMarkerPartitionResult


class WriteTxnMarkersServices(Protocol):
    """What WriteTxnMarkers uses of the broker."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...
    replica_manager: ReplicaManager

    @property
    def clock(self) -> WaitClock | None: ...  # kbroker.clock=manual; None: real time

    def partition(self, topic: str, index: int) -> Partition | None: ...


def _complete_offsets(broker: WriteTxnMarkersServices, partition: Partition, marker: Marker) -> ErrorCode:
    """A marker for a ``__consumer_offsets`` partition: the group coordinator commits (or drops)
    the producer's pending transactional offsets of the partition's groups and writes the marker."""
    if not partition.is_leader:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    coordinator = broker.group_coordinator
    if coordinator is None:
        return ErrorCode.NONE
    pending = coordinator.offsets.pending.get(marker.producer_id, {})
    for group_id in sorted(g for g in pending if coordinator.partition_for(g) == partition.index):
        try:
            coordinator.complete_txn_offsets(marker.producer_id, group_id, marker.transaction_result,
                                             marker.producer_epoch, marker.coordinator_epoch)
        except LogClosedError:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        except (LogError, OSError):  # the log dir failed: the coordinator retries (Kafka's appendToLocalLog)
            return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.NONE


@api(WriteTxnMarkersRequest, WriteTxnMarkersResponse, 1, 2)
async def handle_write_txn_markers(ctx: RequestContext[WriteTxnMarkersServices], request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse:
    import asyncio

    broker = ctx.broker
    replica_manager = broker.replica_manager

    async def one(name: str, index: int, marker: Marker) -> ErrorCode:
        partition = broker.partition(name, index)
        if partition is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if name == OFFSETS_TOPIC:
            code = _complete_offsets(broker, partition, marker)
            if code != ErrorCode.NONE:
                return code
            deadline = Deadline(MARKER_TIMEOUT_MS, broker.clock)
            return await replica_manager.wait_for_replication(partition, partition.log.log_end_offset, deadline)
        return await require(replica_manager.producer_state, "the producer state").write_marker_replicated(
            replica_manager, partition, marker.producer_id, marker.producer_epoch, marker.transaction_result,
            marker.coordinator_epoch)

    # Markers are appended with acks=-1, as Kafka's handleWriteTxnMarkersRequest does: each
    # partition answers once its marker is replicated (or with the append's error).
    jobs = [(m, ti, t.name, index) for m, marker in enumerate(request.markers)
            for ti, t in enumerate(marker.topics) for index in t.partition_indexes]
    codes = await asyncio.gather(*(one(name, index, request.markers[m]) for m, _ti, name, index in jobs))
    parts: dict[tuple[int, int], list[PartResult]] = {}
    for (m, ti, _name, index), code in zip(jobs, codes, strict=True):
        parts.setdefault((m, ti), []).append(PartResult(partition_index=index, error_code=code))
    results = [MarkerResult(producer_id=marker.producer_id, topics=[
        TopicResult(name=t.name, partitions=parts.get((m, ti), [])) for ti, t in enumerate(marker.topics)])
        for m, marker in enumerate(request.markers)]
    return WriteTxnMarkersResponse(markers=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(27)
def _write_txn_markers_error(request: WriteTxnMarkersRequest, version: int, code: int) -> WriteTxnMarkersResponse:
    R = WriteTxnMarkersResponse
    M = R.WritableTxnMarkerResult
    T = M.WritableTxnMarkerTopicResult
    return R(markers=[
        M(producer_id=marker.producer_id, topics=[
            T(name=topic.name, partitions=[
                T.WritableTxnMarkerPartitionResult(partition_index=index, error_code=code)
                for index in topic.partition_indexes])
            for topic in marker.topics])
        for marker in request.markers
    ])
