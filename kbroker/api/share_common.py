"""What ShareFetch and ShareAcknowledge share: request checks and applying acknowledgements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import require
from kbroker.api.share_group_heartbeat import member_id_valid
from kbroker.coordinator.hosts import BrokerView
from kbroker.coordinator.share_coordinator import share_groups_enabled
from kbroker.coordinator.share_partition import ACK_RENEW
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.share_fetch import ShareFetchRequest

if TYPE_CHECKING:
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker_protocol.messages.share_acknowledge import ShareAcknowledgeRequest

    # The acknowledgements of a ShareFetch or a ShareAcknowledge (the same fields in both).
    _AckTopic = ShareFetchRequest.FetchTopic | ShareAcknowledgeRequest.AcknowledgeTopic
    _AckBatch = (ShareFetchRequest.FetchTopic.FetchPartition.AcknowledgementBatch
                 | ShareAcknowledgeRequest.AcknowledgeTopic.AcknowledgePartition.AcknowledgementBatch)

TopicIdPartition = tuple[uuid.UUID, int]


class ShareCommonServices(BrokerView, Protocol):
    """What the share fetch and acknowledgement helpers use of the broker."""

    @property
    def share_coordinator(self) -> ShareCoordinator | None: ...


def share_coordinator(broker: ShareCommonServices) -> ShareCoordinator:
    """The broker's share coordinator (the share APIs answer UNSUPPORTED_VERSION without one first)."""
    return require(broker.share_coordinator, "the share coordinator")



def request_error(broker: ShareCommonServices, version: int, request: ShareFetchRequest | ShareAcknowledgeRequest,
                  fetch: bool) -> tuple[ErrorCode, str | None] | None:
    """The top-level error of a ShareFetch or ShareAcknowledge before its share session is looked at
    (Kafka's ``KafkaApis``): UNSUPPORTED_VERSION while share groups are off (``share.version`` 0),
    INVALID_REQUEST for a null group id, an invalid member id or a renew-only ShareFetch that asks
    for records (with the reason); None when the request may go on."""
    if not share_groups_enabled(broker) or broker.share_coordinator is None:
        return ErrorCode.UNSUPPORTED_VERSION, None
    if request.group_id is None:
        return ErrorCode.INVALID_REQUEST, "Invalid group id in the request."
    if not member_id_valid(request.member_id):
        return ErrorCode.INVALID_REQUEST, "Invalid member id in the request."
    message = renew_ack_error(version, request, fetch)
    return None if message is None else (ErrorCode.INVALID_REQUEST, message)


def renew_ack_error(version: int, request: ShareFetchRequest | ShareAcknowledgeRequest, fetch: bool) -> str | None:
    """KIP-1222: with IsRenewAck (v2+) a ShareFetch must not fetch (MaxBytes, MinBytes, MaxRecords and
    MaxWaitMs all 0); the message Kafka answers INVALID_REQUEST with, or None."""
    if version < 2 or not request.is_renew_ack or not fetch:
        return None
    assert isinstance(request, ShareFetchRequest)  # (``fetch``: the request is a ShareFetch)
    msg = ""
    if request.max_bytes != 0:
        msg += "maxBytes must be set to 0, "
    if request.min_bytes != 0:
        msg += "minBytes must be set to 0, "
    if request.max_records != 0:
        msg += "maxRecords must be set to 0, "
    if request.max_wait_ms != 0:
        msg += "maxWaitMs must be set to 0, "
    return msg + "if isRenewAck is true." if msg else None


def batches_valid(batches: Sequence[_AckBatch], supports_renew: bool, is_renew_ack: bool) -> bool:
    """Kafka's ``KafkaApis.validateAcknowledgementBatches`` for one partition."""
    prev_end = -1
    max_type = 4 if supports_renew else 3
    for b in batches:
        types = list(b.acknowledge_types or [])
        if b.first_offset > b.last_offset or b.first_offset < prev_end or not types:
            return False
        if len(types) > 1 and b.last_offset - b.first_offset != len(types) - 1:
            return False
        if any(t < 0 or t > max_type for t in types):
            return False
        if ACK_RENEW in types and not is_renew_ack:
            return False
        prev_end = b.last_offset
    return True


AckResult = tuple[ErrorCode, str | None]


def acknowledge(broker: ShareCommonServices, group_id: str, member_id: str, topics: Sequence[_AckTopic], supports_renew: bool,
                is_renew_ack: bool) -> dict[TopicIdPartition, AckResult]:
    """Apply the acknowledgements of ``topics`` (ShareFetch's or ShareAcknowledge's topic list);
    the error and message of each partition, as Kafka: the request checks of ``KafkaApis``
    (INVALID_REQUEST, UNKNOWN_TOPIC_ID) without a message, the share partition's own with its."""
    manager = share_coordinator(broker).manager
    image = broker.image
    out: dict[TopicIdPartition, AckResult] = {}
    for t in topics:
        topic = image.topic_by_id(t.topic_id)
        for p in t.partitions:
            batches = p.acknowledgement_batches or []
            key = (t.topic_id, p.partition_index)
            if topic is None:
                out[key] = (ErrorCode.UNKNOWN_TOPIC_ID, None)
                continue
            if not batches_valid(batches, supports_renew, is_renew_ack):
                out[key] = (ErrorCode.INVALID_REQUEST, None)
                continue
            if p.partition_index not in topic.partitions:
                out[key] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
                continue
            if not batches:
                out[key] = (ErrorCode.NONE, None)
                continue
            sp = manager.partitions.get((group_id, t.topic_id, p.partition_index))
            if sp is None:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                out[key] = (code, default_message(code))
                continue
            out[key] = sp.acknowledge(member_id, [(b.first_offset, b.last_offset, list(b.acknowledge_types))
                                                  for b in batches])
    return out


async def flush_acknowledgements(broker: ShareCommonServices, group_id: str, results: dict[TopicIdPartition, AckResult]) -> None:
    """Wait until the acknowledged partitions' state is written to their share coordinator (another
    broker's: WriteShareGroupState); a failed write becomes the partition's acknowledgement error,
    as Kafka's SharePartition fails the acknowledgement with the persister's error."""
    done = [key for key, (code, _m) in results.items() if code == ErrorCode.NONE]
    if not done:
        return
    failed = await share_coordinator(broker).manager.flush(group_id, done)
    for key, code in failed.items():
        results[key] = (code, default_message(code))


def error_message(code: ErrorCode) -> str | None:
    return None if code == ErrorCode.NONE else default_message(code)
