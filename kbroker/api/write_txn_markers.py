"""WriteTxnMarkers (key 27), v1-2.

Sent by a transaction coordinator to the leaders of a transaction's partitions (our own
coordinator writes its markers directly, as every partition is local). Each marker becomes a
COMMIT/ABORT control batch in every listed partition: INVALID_PRODUCER_EPOCH if the producer has
moved to a newer epoch there, TRANSACTION_COORDINATOR_FENCED for an older coordinator epoch,
UNKNOWN_TOPIC_OR_PARTITION for a partition this broker does not host.
"""

from __future__ import annotations

from kbroker.api.registry import api
from protocol.errors import ErrorCode
from protocol.messages.write_txn_markers import WriteTxnMarkersResponse

MarkerResult = WriteTxnMarkersResponse.WritableTxnMarkerResult
TopicResult = MarkerResult.WritableTxnMarkerTopicResult
PartResult = TopicResult.WritableTxnMarkerPartitionResult


@api(27, 1, 2)
def handle_write_txn_markers(ctx, request) -> WriteTxnMarkersResponse:
    broker = ctx.broker
    replica_manager = broker.replica_manager
    results = []
    for marker in request.markers:
        topics = []
        for t in marker.topics:
            parts = []
            for index in t.partition_indexes:
                partition = broker.partition(t.name, index)
                if partition is None:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    code = replica_manager.producer_state.write_marker(
                        replica_manager, partition, marker.producer_id, marker.producer_epoch,
                        marker.transaction_result, marker.coordinator_epoch)
                parts.append(PartResult(partition_index=index, error_code=code))
            topics.append(TopicResult(name=t.name, partitions=parts))
        results.append(MarkerResult(producer_id=marker.producer_id, topics=topics))
    return WriteTxnMarkersResponse(markers=results)
