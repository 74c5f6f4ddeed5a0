"""WriteTxnMarkers (key 27), v1-2.

Sent by a transaction coordinator to the leaders of a transaction's partitions (a coordinator writes the
markers of the partitions it leads itself); for a ``__consumer_offsets`` partition the group
coordinator writes the marker (one for the partition, whatever groups of it took part) and commits
or drops the producer's pending transactional offsets of all its groups. Each marker becomes a
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
from kbroker.replication.partition import Partition
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
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

    def partition(self, topic: str, index: int) -> Partition | None: ...


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
            # one marker for the partition, completing the producer's offsets of all its groups
            coordinator = broker.group_coordinator
            if coordinator is None:
                return ErrorCode.NONE
            return await coordinator.write_txn_marker(marker.producer_id, index, marker.transaction_result,
                                                      marker.producer_epoch, marker.coordinator_epoch)
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
