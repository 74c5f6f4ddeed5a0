"""A topic's compression.type other than 'producer' makes the broker re-encode batches (as Kafka)."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from protocol.record_batch import parse_header


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
