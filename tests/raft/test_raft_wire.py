"""The core's messages survive a round trip through Kafka's wire codec (encode + decode)."""

from __future__ import annotations

import random

import pytest

from kbroker.raft import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    MemoryLog,
    RaftNode,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker.raft.wire import (
    METADATA_TOPIC,
    WireError,
    decode_entries,
    encode_entries,
    from_wire,
    to_wire,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import fetch as fe
from kbroker_protocol.messages import vote as vo
from kbroker_protocol.records import decode_batch

# proposals [a, bb], [leader change], [empty, c]: one batch each
RECORDS = (Entry(4, b"a", batch_end=False), Entry(4, b"bb"), Entry(5, 3, control=True), Entry(5, b"", batch_end=False),
           Entry(5, b"c"))

MESSAGES = [
    (VoteRequest(1, 2, 7, 6, 5, 120, True), 2),
    (VoteRequest(1, 2, 7, 6, 5, 120, False), 1),
    (VoteResponse(2, 1, 7, 0, 3, 6, True), 2),
    (VoteResponse(2, 1, 7, 74, -1, 9, False), 0),
    (BeginQuorumEpochRequest(3, 1, 8, 3, 6), 1),
    (BeginQuorumEpochResponse(1, 3, 8, 0, 3, 6), 0),
    (EndQuorumEpochRequest(3, 1, 9, 3, 6, (2, 1)), 1),
    (EndQuorumEpochRequest(3, 1, 9, 3, 6, (2, 1)), 0),
    (EndQuorumEpochResponse(1, 3, 9, 0, 3, 6), 1),
    (FetchRequest(2, 3, 10, 6, 40, 5), 17),
    (FetchRequest(2, 3, 10, 6, 40, 5), 12),
    (FetchRequest(2, 3, 10, 6, 40, 5, 500, 38), 18),
    (FetchRequest(2, 3, 10, 6, 40, 5, 500, -1), 17),
    (FetchResponse(3, 2, 10, 0, 3, 6, 41, 40, RECORDS), 17),
    (FetchResponse(3, 2, 10, 0, 3, 6, 41, 40, (), 4, 38), 16),
    (FetchResponse(3, 2, 10, 74, 1, 8, 0, 40), 17),
    (FetchResponse(3, 2, 10, 0, 3, 6, 41, 12, (), -1, -1, 30, 4), 17),
    (FetchSnapshotRequest(2, 3, 11, 6, 30, 4), 1),
    (FetchSnapshotResponse(3, 2, 11, 0, 3, 6, 30, 4, b"state bytes"), 1),
    (FetchSnapshotResponse(3, 2, 11, 98, 3, 6, -1, -1), 0),
]


@pytest.mark.parametrize(("msg", "version"), MESSAGES, ids=[f"{type(m).__name__}-v{v}" for m, v in MESSAGES])
def test_round_trip(msg, version):
    wire = to_wire(msg, cluster_id="c1", voters=(1, 2, 3))
    data = wire.encode(version)
    back = type(wire).decode(data, version)
    base = msg.base_offset if isinstance(msg, FetchResponse) else None
    assert from_wire(back, msg.src, msg.dst, msg.request_id, fetch_base_offset=base) == msg


def test_vote_request_names_the_metadata_partition_and_the_receiving_voter():
    wire = to_wire(VoteRequest(1, 2, 7, 6, 5, 120, True), cluster_id="c1")
    assert wire.cluster_id == "c1" and wire.voter_id == 2
    (topic,) = wire.topics
    assert topic.topic_name == METADATA_TOPIC
    (p,) = topic.partitions
    assert (p.partition_index, p.replica_id, p.replica_epoch, p.pre_vote) == (0, 1, 6, True)


def test_fetch_records_are_batches_with_the_leader_epoch():
    data = encode_entries(40, RECORDS, voters=(1, 2, 3))
    batches = []
    pos = 0
    while pos < len(data):
        b = decode_batch(data, pos)
        batches.append(b)
        pos += b.header.size
    assert [(b.header.base_offset, b.header.partition_leader_epoch, b.header.is_control, len(b.records))
            for b in batches] == [(40, 4, False, 2), (42, 5, True, 1), (43, 5, False, 2)]
    assert decode_entries(data, 40) == RECORDS
    # the proposal boundaries travel with the batches
    assert [e.batch_end for e in decode_entries(data, 40)] == [e.batch_end for e in RECORDS]
    # and a batch per proposal also within one epoch and kind
    two = (Entry(4, b"a"), Entry(4, b"b", batch_end=False), Entry(4, b"c"))
    assert [e.batch_end for e in decode_entries(encode_entries(0, two), 0)] == [True, False, True]


def test_records_at_an_unexpected_offset_are_refused():
    data = encode_entries(40, RECORDS)
    with pytest.raises(WireError, match="expected 41"):
        decode_entries(data, 41)
    with pytest.raises(WireError):
        decode_entries(data[:-3], 40)


def test_record_values_must_be_bytes():
    with pytest.raises(TypeError):
        encode_entries(0, (Entry(1, 17),))


def test_messages_for_another_partition_are_refused():
    wire = to_wire(VoteRequest(1, 2, 7, 6, 5, 120, True))
    wire.topics[0].topic_name = "other"
    with pytest.raises(WireError, match="other"):
        from_wire(wire, 1, 2, 7)
    wire = to_wire(VoteRequest(1, 2, 7, 6, 5, 120, True))
    wire.topics[0].partitions.append(vo.VoteRequest.TopicData.PartitionData(partition_index=1))
    with pytest.raises(WireError):
        from_wire(wire, 1, 2, 7)
    fetch = to_wire(FetchRequest(2, 3, 10, 6, 40, 5))
    fetch.topics[0].partitions[0].partition = 3
    with pytest.raises(WireError):
        from_wire(fetch, 2, 3, 10)


def test_fetch_response_error_carries_the_leader():
    wire = fe.FetchResponse.decode(to_wire(FetchResponse(3, 2, 1, 6, 4, 9, 0, 0)).encode(17), 17)
    msg = from_wire(wire, 3, 2, 1, fetch_base_offset=12)
    assert (msg.error, msg.leader_id, msg.leader_epoch, msg.records, msg.diverging_epoch) == (6, 4, 9, (), -1)


def test_a_vote_meant_for_another_voter_is_refused_by_the_core():
    node = RaftNode(1, (1, 2, 3), MemoryLog(), MemoryQuorumStateStore(), random.Random(0))
    wire = vo.VoteRequest.decode(to_wire(VoteRequest(2, 3, 5, 1, 0, 0, False)).encode(2), 2)
    msg = from_wire(wire, src=2, dst=1, request_id=5)
    assert msg.dst == 3
    (resp,) = node.handle(msg, 0)
    assert resp.error == ErrorCode.INVALID_VOTER_KEY and not resp.vote_granted


def test_a_chunk_of_a_snapshot_is_refused():
    wire = to_wire(FetchSnapshotResponse(3, 2, 11, 0, 3, 6, 30, 4, b"state bytes"))
    wire.topics[0].partitions[0].size = 100
    with pytest.raises(WireError, match="one piece"):
        from_wire(wire, 3, 2, 11)


@pytest.mark.parametrize(
    ("msg", "version"),
    [(m, v) for m, v in MESSAGES if type(m).__name__.endswith("Request")],
    ids=[f"{type(m).__name__}-v{v}" for m, v in MESSAGES if type(m).__name__.endswith("Request")],
)
def test_the_sender_of_a_request_is_read_from_its_body(msg, version):
    wire = to_wire(msg, cluster_id="c1")
    back = type(wire).decode(wire.encode(version), version)
    assert from_wire(back, None, msg.dst, msg.request_id).src == msg.src


def test_a_response_needs_its_sender():
    with pytest.raises(ValueError, match="node that answered"):
        from_wire(to_wire(VoteResponse(2, 1, 7, 0, 3, 6, True)), None, 1, 7)
