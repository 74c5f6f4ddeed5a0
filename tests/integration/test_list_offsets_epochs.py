"""ListOffsets answers the leader epoch Kafka does: the epoch of the batch holding the offset found
(timestamp lookups, max timestamp, earliest), the current leader epoch for latest, -1 without an
offset (and for the tiered-storage specials)."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch

E = ErrorCode
LO = REQUESTS[2]


def produce_at(wire: Wire, name: str, timestamps: list[int]) -> int:
    Req = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"v%d" % ts, timestamp=ts) for ts in timestamps])
    data = Req.TopicProduceData(name=name, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=0, records=batch)])
    resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == E.NONE
    return part.base_offset


def bump_epoch(broker, name: str) -> None:
    """A leader change to the same node: the partition's leader epoch goes up by one."""
    def run():
        b = broker.broker
        topic = b.image.topic(name)
        b.controller.commit([mr.PartitionChangeRecord(partition_id=0, topic_id=topic.topic_id, leader=b.node_id)])
    broker.call(run)


def list_offsets(wire: Wire, name: str, timestamp: int, version: int = 11, isolation: int = 0):
    """(error, timestamp, offset, leader epoch) for partition 0."""
    resp = wire.call(2, version, replica_id=-1, isolation_level=isolation, topics=[LO.ListOffsetsTopic(
        name=name, partitions=[LO.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=timestamp)])])
    p = resp.topics[0].partitions[0]
    return p.error_code, p.timestamp, p.offset, p.leader_epoch


def test_leader_epoch_is_the_batch_epoch(wire, broker, topic_name):
    create_topic(wire, topic_name, 1)
    assert produce_at(wire, topic_name, [1000, 1001, 1002]) == 0  # epoch 0: offsets 0-2
    bump_epoch(broker, topic_name)
    assert produce_at(wire, topic_name, [2000, 3000]) == 3          # epoch 1: offsets 3-4
    bump_epoch(broker, topic_name)                                   # epoch 2: no data
    assert broker.call(lambda: broker.broker.partition(topic_name, 0).leader_epoch) == 2

    assert list_offsets(wire, topic_name, 1001) == (E.NONE, 1001, 1, 0)
    assert list_offsets(wire, topic_name, 1500) == (E.NONE, 2000, 3, 1)
    assert list_offsets(wire, topic_name, 3000) == (E.NONE, 3000, 4, 1)
    assert list_offsets(wire, topic_name, -3) == (E.NONE, 3000, 4, 1)       # max timestamp
    assert list_offsets(wire, topic_name, -1) == (E.NONE, -1, 5, 2)         # latest: the current epoch
    assert list_offsets(wire, topic_name, -1, isolation=1) == (E.NONE, -1, 5, 2)
    assert list_offsets(wire, topic_name, -2) == (E.NONE, -1, 0, 0)         # earliest
    assert list_offsets(wire, topic_name, -4) == (E.NONE, -1, 0, 0)         # earliest local
    assert list_offsets(wire, topic_name, -5) == (E.NONE, -1, -1, -1)       # latest tiered
    assert list_offsets(wire, topic_name, -6) == (E.NONE, -1, -1, -1)       # earliest pending upload
    assert list_offsets(wire, topic_name, 5000) == (E.NONE, -1, -1, -1)     # nothing that late
    # Before v4 there is no leader epoch in the response: the default comes back.
    assert list_offsets(wire, topic_name, 1001, version=3) == (E.NONE, 1001, 1, -1)

    # Once the log start is in epoch 1's data, earliest answers epoch 1.
    DR = REQUESTS[21]
    resp = wire.call(21, 2, topics=[DR.DeleteRecordsTopic(name=topic_name, partitions=[
        DR.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=4)])], timeout_ms=5000)
    assert resp.topics[0].partitions[0].error_code == E.NONE
    assert list_offsets(wire, topic_name, -2) == (E.NONE, -1, 4, 1)
    assert list_offsets(wire, topic_name, 0) == (E.NONE, 3000, 4, 1)


def test_empty_log_answers_the_current_epoch_for_earliest(wire, broker, topic_name):
    create_topic(wire, topic_name, 1)
    bump_epoch(broker, topic_name)
    assert list_offsets(wire, topic_name, -2) == (E.NONE, -1, 0, 1)
    assert list_offsets(wire, topic_name, -1) == (E.NONE, -1, 0, 1)
    assert list_offsets(wire, topic_name, -3) == (E.NONE, -1, -1, -1)
