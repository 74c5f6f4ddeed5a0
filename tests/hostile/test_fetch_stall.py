"""A Fetch over many partitions to a reader slower than the broker (issue 13, hole 3).

The response holds one file region per partition. When the socket's buffer fills part-way, the
rest of the response (file regions and the bytes between them) must still go out, in order: file
regions with sendfile, bytes with write. Before the fix the continuation wrote a file region as if
it were bytes, the broker logged a TypeError and the client waited for ever.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from waiting import wait_until
from wire import Wire, create_topic

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import Record, build_batch

F = REQUESTS[1]
P = REQUESTS[0]


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _delete_topic(bootstrap: str, name: str) -> None:
    """Delete a test's topic (deleting 1,000 partitions is much quicker than closing them cleanly)."""
    wire = Wire(bootstrap)
    resp = wire.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name=name, topic_id=uuid.UUID(int=0))],
                     timeout_ms=30000)
    wire.close()
    assert resp.responses[0].error_code == ErrorCode.NONE


def test_many_partition_fetch_to_a_slow_reader_arrives_whole(broker):
    """80 partitions of ~100 KB each (every one large enough for sendfile); the client does not
    read until the broker is waiting on a full socket, then reads everything."""
    wire = Wire(broker.bootstrap_servers)
    name = _topic()
    partitions = 80
    create_topic(wire, name, partitions)
    payloads = {}
    for index in range(partitions):
        payloads[index] = [os.urandom(50_000), os.urandom(50_000)]
        batch = build_batch([Record(value=v, timestamp=1_700_000_000_000) for v in payloads[index]])
        resp = wire.call(0, 9, transactional_id=None, acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(
            name=name, partition_data=[P.TopicProduceData.PartitionProduceData(index=index, records=batch)])])
        assert resp.responses[0].partition_responses[0].error_code == ErrorCode.NONE
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    topic = F.FetchTopic(topic=name, partitions=[F.FetchTopic.FetchPartition(
        partition=i, fetch_offset=0, partition_max_bytes=1_000_000) for i in range(partitions)])
    wire.send(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=50_000_000, isolation_level=0,
                session_id=0, session_epoch=-1, topics=[topic], forgotten_topics_data=[], rack_id=""), 12)
    wire.send(REQUESTS[3](topics=[], allow_auto_topic_creation=False), 12)
    # Nothing is read until the broker has filled the socket and waits for it to drain.
    wait_until(lambda: broker.call(lambda: any(c._stalled is not None for c in broker.broker.connections)),
               message="the broker waiting for the socket to drain")
    response = wire.receive()
    got = {p.partition_index: p for p in response.responses[0].partitions}
    assert sorted(got) == list(range(partitions))
    for index, part in got.items():
        assert part.error_code == ErrorCode.NONE
        records = bytes(part.records)
        headers = [h for _pos, h in iter_batch_headers(records)]  # validates every CRC
        assert [h.base_offset for h in headers] == [0]
        for value in payloads[index]:
            assert value in records
    assert wire.receive().brokers  # the next response on the connection follows, intact
    wire.close()
    _delete_topic(broker.bootstrap_servers, name)


def test_librdkafka_consumes_every_record_of_a_1000_partition_topic(broker):
    """End to end: librdkafka fetching from 1,000 partitions at once (the shape that used to stall
    with "Timed out FetchRequest in flight")."""
    name = _topic()
    partitions = 1000
    per_partition = 36  # ~37 KB a partition: each one's file region goes out with sendfile
    wire = Wire(broker.bootstrap_servers)
    create_topic(wire, name, partitions)
    wire.close()
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20,
                         "batch.num.messages": 100_000, "queue.buffering.max.messages": 1_000_000})
    failures: list[KafkaError] = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    value = b"x" * 1000
    for index in range(partitions):
        for n in range(per_partition):
            producer.produce(name, value=value, key=b"%d-%d" % (index, n), partition=index, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"g-{name}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "socket.receive.buffer.bytes": 65536})
    consumer.assign([TopicPartition(name, i, 0) for i in range(partitions)])
    seen: set[bytes] = set()
    total = partitions * per_partition
    deadline = time.monotonic() + 60
    try:
        while len(seen) < total and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                seen.add(msg.key())
    finally:
        consumer.close()
    assert len(seen) == total
    _delete_topic(broker.bootstrap_servers, name)
