"""kafka-python against kbroker: produce, consume, admin, offsets."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_every_codec(bootstrap, topic_name, codec):
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
    futures = [
        producer.send(topic_name, key=f"k{i % 3}".encode(), value=f"value-{i}".encode() * 10,
                      headers=[("h", str(i).encode())])
        for i in range(200)
    ]
    producer.flush()
    offsets = [f.get(timeout=10).offset for f in futures]
    assert offsets == list(range(200))
    producer.close()

    consumer = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    got = []
    for msg in consumer:
        got.append(msg)
        if len(got) == 200:
            break
    consumer.close()
    assert [m.offset for m in got] == list(range(200))
    assert [m.value for m in got] == [f"value-{i}".encode() * 10 for i in range(200)]
    assert [m.headers for m in got] == [[("h", str(i).encode())] for i in range(200)]
    assert got[5].key == b"k2"


def test_admin_create_describe_delete(bootstrap, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1,
                                  topic_configs={"retention.ms": "12345"})])
    assert topic_name in admin.list_topics()
    described = admin.describe_topics([topic_name])
    assert len(described[0]["partitions"]) == 3
    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    admin.close()


def test_offsets_by_timestamp(bootstrap, topic_name):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(10):
        producer.send(topic_name, value=b"x", timestamp_ms=1_000_000 + i * 1000)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic_name, 0)
    found = consumer.offsets_for_times({tp: 1_004_500})
    assert found[tp].offset == 5
    assert found[tp].timestamp == 1_005_000
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 10
    assert consumer.offsets_for_times({tp: 2_000_000})[tp] is None
    consumer.close()
