"""flush.messages=1 through the broker: appends are fsynced by group commit off the event loop
(kbroker/log/group_commit.py) and every produce is answered only once an fsync covers it."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch


def produce_request(name: str, i: int, acks: int) -> object:
    req = REQUESTS[0]
    batch = build_batch([Record(key=b"k%d" % i, value=b"v%d" % i * 50, timestamp=1_700_000_000_000 + i)])
    data = req.TopicProduceData(name=name, partition_data=[req.TopicProduceData.PartitionProduceData(
        index=0, records=batch)])
    return req(transactional_id=None, acks=acks, timeout_ms=10000, topic_data=[data])


def test_concurrent_producers_are_acknowledged_after_an_fsync_covers_them(broker, topic_name):
    admin = Wire(broker.bootstrap_servers)
    create_topic(admin, topic_name, 1, {"flush.messages": "1"})
    partition = broker.broker.partition(topic_name, 0)
    wires = [Wire(broker.bootstrap_servers) for _ in range(8)]
    try:
        for i, w in enumerate(wires):  # 8 connections, 5 requests in flight on each
            for j in range(5):
                w.send(produce_request(topic_name, i * 5 + j, acks=-1), 9)
        offsets = []
        for w in wires:
            for _ in range(5):
                part = w.receive().responses[0].partition_responses[0]
                assert part.error_code == ErrorCode.NONE
                # Answered: the log's recovery point (what an fsync covered) is past the batch.
                assert partition.log.recovery_point > part.base_offset
                offsets.append(part.base_offset)
        assert sorted(offsets) == list(range(40))
        assert partition.log.high_watermark == 40
        commit = partition.group_commit
        assert commit is not None and 1 <= commit.fsyncs <= 40 and commit.waiting == 0
        # acks=0 appends are fsynced too; a later acknowledged one covers them.
        for i in range(3):
            wires[0].send(produce_request(topic_name, 100 + i, acks=0), 9)
            wires[0].sent.pop()  # acks=0: no answer
        wires[0].send(produce_request(topic_name, 200, acks=1), 9)
        part = wires[0].receive().responses[0].partition_responses[0]
        assert part.error_code == ErrorCode.NONE and part.base_offset == 43
        assert partition.log.recovery_point == 44
    finally:
        for w in [admin, *wires]:
            w.close()


def test_without_flush_messages_appends_take_no_fsync(broker, topic_name):
    admin = Wire(broker.bootstrap_servers)
    try:
        create_topic(admin, topic_name, 1)
        admin.call(produce_request(topic_name, 0, acks=1), 9)
        partition = broker.broker.partition(topic_name, 0)
        assert partition.group_commit is None and partition.log.recovery_point == 0
        assert partition.log.high_watermark == 1
    finally:
        admin.close()
