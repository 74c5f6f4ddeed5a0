"""A topic's compression.type other than 'producer' makes the broker re-encode batches (as Kafka)."""

from __future__ import annotations

import struct

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import CRC_OFFSET, HEADER_SIZE, compute_crc, parse_header
from kbroker_protocol.records import Record, build_batch
from tests.integration.transactions_helpers import RawClient, produce


@pytest.mark.parametrize("producer_codec,topic_codec,expected", [
    ("gzip", "zstd", 4), (None, "lz4", 3), ("snappy", "uncompressed", 0), ("lz4", "producer", 3),
])
def test_topic_compression_type(broker, bootstrap, topic_name, producer_codec, topic_codec, expected):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"compression.type": topic_codec})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=producer_codec, linger_ms=20)
    for i in range(50):
        producer.send(topic_name, key=b"k%d" % i, value=b"v" * 100, headers=[("n", b"%d" % i)])
    producer.flush()
    producer.close()

    plog = broker.broker.partition(topic_name, 0).log
    data = plog.read(0, 10 * 1024 * 1024).read()
    assert parse_header(data).compression == expected

    consumer = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    got = []
    for m in consumer:
        got.append((m.offset, m.key, m.headers))
        if len(got) == 50:
            break
    consumer.close()
    assert got == [(i, b"k%d" % i, [("n", b"%d" % i)]) for i in range(50)]


def _declaring(batch: bytes, count: int) -> bytes:
    """``batch`` claiming ``count`` records (lastOffsetDelta to match), with a valid CRC."""
    out = bytearray(batch)
    struct.pack_into(">i", out, 23, count - 1)  # lastOffsetDelta
    struct.pack_into(">i", out, HEADER_SIZE - 4, count)  # recordsCount
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out))
    return bytes(out)


def test_re_encoding_rejects_a_bad_batch_with_kafkas_error(bootstrap, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"compression.type": "gzip"})])
    admin.close()
    raw = RawClient(bootstrap)
    try:
        records = [Record(key=None, value=b"v%d" % i, timestamp=1_700_000_000_000) for i in range(2)]
        # Intact batch, wrong record count: Kafka's InvalidRecordException, INVALID_RECORD.
        part = produce(raw, topic_name, 0, _declaring(build_batch(records), 3))
        assert part.error_code == ErrorCode.INVALID_RECORD
        # A compressed payload that does not decompress: UNKNOWN_SERVER_ERROR, as Kafka 4.4 answers
        # (checked with scripts/probe_produce_validation.py: the codec's IOException in a KafkaException).
        bad = bytearray(build_batch(records, compression=3))  # lz4, re-encoded to gzip
        bad[HEADER_SIZE + 10:] = bytes(len(bad) - HEADER_SIZE - 10)
        part = produce(raw, topic_name, 0, _declaring(bytes(bad), 2))
        assert part.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
        # Offset deltas that are not 0, 1, 2...: the rebuild renumbers them, as Kafka's does (checked).
        repeated = bytearray(build_batch(records))
        second = HEADER_SIZE + 1 + repeated[HEADER_SIZE] // 2  # after the first record (1-byte length varint)
        assert repeated[second + 3] == 2  # its offsetDelta: zigzag 1, after length, attributes, timestampDelta
        repeated[second + 3] = 0  # offset deltas 0, 0
        part = produce(raw, topic_name, 0, _declaring(bytes(repeated), 2))
        assert (part.error_code, part.base_offset) == (ErrorCode.NONE, 0)
        part = produce(raw, topic_name, 0, build_batch(records))
        assert (part.error_code, part.base_offset) == (ErrorCode.NONE, 2)
    finally:
        raw.close()


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_compacted_topic_rejects_records_without_key(bootstrap, topic_name, codec):
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, retries=0)
    assert producer.send(topic_name, key=b"k", value=b"kept").get(timeout=10).offset == 0
    with pytest.raises(KafkaError) as info:
        producer.send(topic_name, key=None, value=b"no key").get(timeout=10)
    assert "InvalidRecord" in type(info.value).__name__ or "INVALID_RECORD" in str(info.value).upper()
    producer.close()
    # Everything up to the log end (read from the broker), not what came within a quiet 2 s: the
    # rejected record, had it been stored, would be read too.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    tp = TopicPartition(topic_name, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    got: list = []
    wait_until(lambda: got.extend((m.key, m.value) for ms in consumer.poll(200).values() for m in ms)
               or consumer.position(tp) >= end, timeout=10, message=f"the log read up to its end ({end})")
    consumer.close()
    assert got == [(b"k", b"kept")]
