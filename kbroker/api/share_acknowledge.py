"""ShareAcknowledge (key 79), v1-2: acknowledgements outside a ShareFetch.

As Kafka's ``KafkaApis.handleShareAcknowledgeRequest``: UNSUPPORTED_VERSION while the finalized
``share.version`` is 0; a null group id or an invalid member id is INVALID_REQUEST; the share
session must exist with this epoch (epoch 0 is INVALID_SHARE_SESSION_EPOCH, -1 closes the session
after the acknowledgements and releases the member's remaining records). Per partition: malformed
batches INVALID_REQUEST, a record not acquired by the member INVALID_RECORD_STATE (nothing of that
partition changes), an unknown topic id UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker.api.share_common import (
    ShareCommonServices,
    acknowledge,
    flush_acknowledgements,
    request_error,
    share_coordinator,
)
from kbroker.coordinator.share_manager import FINAL_EPOCH, ShareSessionError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.share_acknowledge import ShareAcknowledgeRequest, ShareAcknowledgeResponse

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition

TopicResp = ShareAcknowledgeResponse.ShareAcknowledgeTopicResponse
PartData = ShareAcknowledgeResponse.ShareAcknowledgeTopicResponse.PartitionData
Leader = PartData.LeaderIdAndEpoch


class ShareAcknowledgeServices(ShareCommonServices, Protocol):
    """What ShareAcknowledge uses of the broker."""

    node_id: int

    def partition(self, topic: str, index: int) -> Partition | None: ...


def _top_error(code: ErrorCode, reason: str | None = None) -> ShareAcknowledgeResponse:
    """As Kafka's ``ShareAcknowledgeRequest.getErrorResponse``: the code only, no message."""
    return ShareAcknowledgeResponse(error_code=code, error_message=None, responses=[], node_endpoints=[])


@api(ShareAcknowledgeRequest, ShareAcknowledgeResponse, 1, 2)
async def handle_share_acknowledge(ctx: RequestContext[ShareAcknowledgeServices], request: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse:
    broker, version = ctx.broker, ctx.api_version
    if (refused := request_error(broker, version, request, fetch=False)) is not None:
        return _top_error(*refused)
    manager = share_coordinator(broker).manager
    group_id, member_id, epoch = request.group_id, request.member_id, request.share_session_epoch
    assert group_id is not None and member_id is not None  # (request_error refuses null ones)
    try:
        manager.acknowledge_session_update(group_id, member_id, epoch)
    except ShareSessionError as e:
        return _top_error(e.code)
    is_renew = version >= 2 and request.is_renew_ack
    results = acknowledge(broker, group_id, member_id, request.topics, version >= 2, is_renew)
    await flush_acknowledgements(broker, group_id, results)
    if epoch == FINAL_EPOCH:
        manager.release_session(group_id, member_id)
    response = ShareAcknowledgeResponse(
        error_code=ErrorCode.NONE, acquisition_lock_timeout_ms=manager.partition_config(group_id).record_lock_duration_ms,
        responses=[], node_endpoints=[])
    by_topic: dict[uuid.UUID, TopicResp] = {}
    for (topic_id, index), (code, message) in results.items():
        tr = by_topic.get(topic_id)
        if tr is None:
            tr = by_topic[topic_id] = TopicResp(topic_id=topic_id, partitions=[])
            response.responses.append(tr)
        topic = broker.image.topic_by_id(topic_id)
        partition = broker.partition(topic.name, index) if topic is not None else None
        leader = Leader(leader_id=broker.node_id if partition else -1,
                        leader_epoch=partition.leader_epoch if partition else -1)
        tr.partitions.append(PartData(partition_index=index, error_code=code, error_message=message,
                                      current_leader=leader))
    return response
