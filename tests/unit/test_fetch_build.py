"""Fetch responses built with the shared default tagged structs (kbroker/api/fetch.py ``_build``)
encode byte for byte as responses whose partitions each have fresh defaults, and building one that
sets a diverging epoch leaves the shared defaults as they were."""

from __future__ import annotations

import uuid

import pytest

from kbroker.api import fetch
from kbroker.replication.fetch_sessions import CachedPartition
from kbroker_protocol.api import encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.fetch import FetchResponse

PartData = FetchResponse.FetchableTopicResponse.PartitionData
TOPIC_ID = uuid.UUID(int=0x1234)


def _read(partition: int, *, error: ErrorCode = ErrorCode.NONE, records: bytes = b"", diverging=None,
          aborted=None) -> fetch._Read:
    cached = CachedPartition(topic="t", topic_id=TOPIC_ID, partition=partition, fetch_offset=5, max_bytes=1 << 20,
                             current_leader_epoch=0, log_start_offset=-1, last_fetched_epoch=-1)
    want = fetch._Want(cached, "t", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return fetch._Read(want, error, records, len(records), 10 + partition, 9 + partition, partition, aborted,
                       diverging)


def _fresh(response: FetchResponse) -> FetchResponse:
    """The same response with every partition's tagged structs its own objects (as the generated
    constructor makes them)."""
    topics = []
    for t in response.responses:
        parts = []
        for p in t.partitions:
            fresh = PartData(partition_index=p.partition_index, error_code=p.error_code,
                             high_watermark=p.high_watermark, last_stable_offset=p.last_stable_offset,
                             log_start_offset=p.log_start_offset, aborted_transactions=p.aborted_transactions,
                             preferred_read_replica=p.preferred_read_replica, records=p.records)
            if p.diverging_epoch is not fetch._NO_DIVERGING:
                fresh.diverging_epoch = PartData.EpochEndOffset(epoch=p.diverging_epoch.epoch,
                                                                end_offset=p.diverging_epoch.end_offset)
            parts.append(fresh)
        topics.append(FetchResponse.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=parts))
    return FetchResponse(throttle_time_ms=response.throttle_time_ms, error_code=response.error_code,
                         session_id=response.session_id, responses=topics)


@pytest.mark.parametrize("version", [4, 11, 12, 13, 16])
def test_a_built_response_encodes_as_one_with_fresh_defaults(version):
    reads = [_read(0, records=b"r" * 70, aborted=[]), _read(1), _read(2, error=ErrorCode.OFFSET_OUT_OF_RANGE),
             _read(3, diverging=(4, 17))]
    response = fetch._build(version, reads, 77)
    assert response.responses[0].partitions[3].diverging_epoch.end_offset == 17
    assert response.responses[0].partitions[1].diverging_epoch is fetch._NO_DIVERGING
    built = b"".join(bytes(p) for p in encode_response(9, 1, version, response))
    fresh = b"".join(bytes(p) for p in encode_response(9, 1, version, _fresh(response)))
    assert built == fresh
    # the shared defaults are still the defaults
    assert (fetch._NO_DIVERGING.epoch, fetch._NO_DIVERGING.end_offset) == (-1, -1)
    assert (fetch._NO_LEADER.leader_id, fetch._NO_LEADER.leader_epoch) == (-1, -1)
    assert (fetch._NO_SNAPSHOT.end_offset, fetch._NO_SNAPSHOT.epoch) == (-1, -1)
    for default in (fetch._NO_DIVERGING, fetch._NO_LEADER, fetch._NO_SNAPSHOT):
        assert default.unknown_tagged_fields == []
