"""kbroker.testing: EmbeddedBroker on the running loop, and the pytest plugin's fixtures."""

from __future__ import annotations

import os

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from kbroker.testing import EmbeddedBroker


async def _round_trip(bootstrap: str, topic: str, value: bytes) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    return await _read_all(bootstrap, topic)


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10000)
        return [m.value for messages in batches.values() for m in messages]
    finally:
        await consumer.stop()


async def test_embedded_broker_owns_a_temporary_directory():
    async with EmbeddedBroker() as embedded:
        data_dir = embedded.data_dir
        assert os.path.isdir(data_dir)
        assert await _round_trip(embedded.bootstrap_servers, "t", b"hello") == [b"hello"]
    assert not os.path.exists(data_dir)  # removed on exit


async def test_embedded_broker_keeps_a_given_directory(tmp_path):
    async with EmbeddedBroker(data_dir=str(tmp_path)) as embedded:
        assert await _round_trip(embedded.bootstrap_servers, "kept", b"durable") == [b"durable"]
    assert any(tmp_path.iterdir())
    async with EmbeddedBroker(data_dir=str(tmp_path)) as embedded:  # a restart on the same data
        assert await _read_all(embedded.bootstrap_servers, "kept") == [b"durable"]


def test_plugin_fixtures(kbroker_bootstrap, kbroker_factory):
    other = kbroker_factory({"num.partitions": "3"})
    assert other.bootstrap_servers != kbroker_bootstrap
    for bootstrap, partitions in ((kbroker_bootstrap, 1), (other.bootstrap_servers, 3)):
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send("plugin-topic", b"v").get(timeout=30)  # auto-created with num.partitions
        assert len(producer.partitions_for("plugin-topic")) == partitions
        producer.close()
        consumer = KafkaConsumer("plugin-topic", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000)
        assert next(consumer).value == b"v"  # (StopIteration after 10 s without it)
        consumer.close()
