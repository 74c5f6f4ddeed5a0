"""How the broker serves the log: fetches that span segments, and a damaged partition.

A damaged old segment takes its partition offline (KAFKA_STORAGE_ERROR on produce, fetch and list
offsets) while the broker and its other partitions keep serving: never silently wrong data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import iter_batch_headers

F = REQUESTS[1]
# The smallest segment a client may ask for (Kafka 4's floor), and a padding that makes 12 batches
# of 10 records overflow it.
SEGMENT = {"segment.bytes": "1048576"}
PAD = b"x" * 10_000


def fetch(wire: Wire, name: str, partition: int, offset: int, max_bytes: int = 10 * 1024 * 1024):
    topic = F.FetchTopic(topic=name, partitions=[F.FetchTopic.FetchPartition(
        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])
    resp = wire.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes,
                     isolation_level=0, session_id=0, session_epoch=-1, topics=[topic],
                     forgotten_topics_data=[], rack_id="")
    return resp.responses[0].partitions[0]


def test_fetch_fills_max_bytes_across_segments(broker, bootstrap, topic_name):
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, 1, SEGMENT)
    for _ in range(12):
        produce(wire, topic_name, 0, 10, pad=PAD)
    segments = broker.broker.partition(topic_name, 0).log.segments
    assert len(segments) >= 2
    part = fetch(wire, topic_name, 0, 0)
    wire.close()
    assert part.error_code == ErrorCode.NONE
    headers = [h for _pos, h in iter_batch_headers(bytes(part.records))]
    assert [h.base_offset for h in headers] == list(range(0, 120, 10))


def test_damaged_old_segment_takes_only_that_partition_offline(topic_name):
    data_dir = tempfile.mkdtemp(prefix="kbroker-damage-")
    with BrokerThread(data_dir=data_dir) as b:
        wire = Wire(b.bootstrap_servers)
        create_topic(wire, topic_name, 2, SEGMENT)
        for _ in range(12):
            produce(wire, topic_name, 0, 10, pad=PAD)
            produce(wire, topic_name, 1, 10, pad=PAD)
        wire.close()
    first = sorted((Path(data_dir) / f"{topic_name}-0").glob("*.log"))[0]
    raw = bytearray(first.read_bytes())
    raw[80] ^= 0xFF  # inside the first batch's records: its CRC no longer matches
    first.write_bytes(bytes(raw))
    # The log was closed cleanly: take away the marker so the partition is recovered at start.
    for marker in (Path(data_dir) / f"{topic_name}-0").glob("*clean*"):
        marker.unlink()

    with BrokerThread(data_dir=data_dir) as b:
        wire = Wire(b.bootstrap_servers)
        damaged = fetch(wire, topic_name, 0, 0)
        assert damaged.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert damaged.records is None or len(damaged.records) == 0
        healthy = fetch(wire, topic_name, 1, 0)
        assert healthy.error_code == ErrorCode.NONE
        assert len([h for _p, h in iter_batch_headers(bytes(healthy.records))]) == 12

        Req = REQUESTS[0]
        from kbroker_protocol.records import Record, build_batch

        batch = build_batch([Record(value=b"x", timestamp=1_700_000_000_000)])
        resp = wire.call(0, 9, transactional_id=None, acks=1, timeout_ms=1000, topic_data=[
            Req.TopicProduceData(name=topic_name, partition_data=[
                Req.TopicProduceData.PartitionProduceData(index=0, records=batch),
                Req.TopicProduceData.PartitionProduceData(index=1, records=batch)])])
        codes = {p.index: p.error_code for p in resp.responses[0].partition_responses}
        assert codes == {0: ErrorCode.KAFKA_STORAGE_ERROR, 1: ErrorCode.NONE}
        wire.close()


def test_large_fetch_to_a_slow_reader_stays_whole_and_in_order(broker, bootstrap, topic_name):
    """A fetch bigger than the socket buffer: the broker waits for the socket (still sendfile)
    and the response arrives whole, followed by the next response on the same connection."""
    import os
    import socket

    from waiting import wait_until

    wire = Wire(bootstrap)
    create_topic(wire, topic_name, 1)
    P = REQUESTS[0]
    from kbroker_protocol.records import Record, build_batch

    payload = os.urandom(200_000)
    for _ in range(60):
        batch = build_batch([Record(value=payload, timestamp=1_700_000_000_000)])
        wire.call(0, 9, transactional_id=None, acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(
            name=topic_name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    topic = F.FetchTopic(topic=topic_name, partitions=[F.FetchTopic.FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=50_000_000)])
    wire.send(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=50_000_000, isolation_level=0,
                session_id=0, session_epoch=-1, topics=[topic], forgotten_topics_data=[], rack_id=""), 12)
    wire.send(REQUESTS[3](topics=[], allow_auto_topic_creation=False), 12)
    # The client reads nothing until the broker has filled the socket and is waiting on it.
    wait_until(lambda: broker.call(lambda: any(c._stalled is not None for c in broker.broker.connections)),
               message="the broker waiting for the socket to drain")
    part = wire.receive().responses[0].partitions[0]
    headers = [h for _pos, h in iter_batch_headers(bytes(part.records))]  # validates every CRC
    assert [h.base_offset for h in headers] == list(range(60))
    assert wire.receive().brokers  # the next response follows, intact
    wire.close()
