"""aiokafka against kbroker: produce/consume with every codec, headers, keyed order, long-poll,
size limit, admin calls, offsets by timestamp, delete records, restart."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidPartitionsError, MessageSizeTooLargeError, TopicAlreadyExistsError
from waiting import async_wait_until

from kbroker.testing import BrokerThread

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def create(bootstrap: str, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    admin = await admin_client(bootstrap)
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()


async def consume(bootstrap: str, partitions: list[TopicPartition], count: int, seek=None, **conf):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **conf)
    await consumer.start()
    try:
        consumer.assign(partitions)
        if seek is not None:
            for tp, offset in seek.items():
                consumer.seek(tp, offset)
        got = []

        async def run():
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    got.extend(records)

        await asyncio.wait_for(run(), 60)
        return got
    finally:
        await consumer.stop()


@pytest.mark.parametrize("codec", CODECS)
async def test_produce_consume_every_codec(bootstrap, topic_name, codec):
    await create(bootstrap, topic_name, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic_name, key=b"k", value=f"value-{i}".encode() * 5,
                                headers=[("n", str(i).encode())])
            for i in range(200)
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert [m.offset for m in metadata] == list(range(200))
    got = await consume(bootstrap, [TopicPartition(topic_name, 0)], 200)
    assert [r.value for r in got] == [f"value-{i}".encode() * 5 for i in range(200)]
    assert [r.headers for r in got] == [(("n", str(i).encode()),) for i in range(200)]


async def test_keyed_ordering(bootstrap, topic_name):
    await create(bootstrap, topic_name, 3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic_name, key=f"k{i % 5}".encode(), value=str(i).encode())
                   for i in range(150)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    got = await consume(bootstrap, [TopicPartition(topic_name, p) for p in range(3)], 150)
    for k in range(5):
        key = f"k{k}".encode()
        mine = [r for r in got if r.key == key]
        assert [int(r.value) for r in mine] == [i for i in range(150) if i % 5 == k]
        assert len({r.partition for r in mine}) == 1


async def test_long_poll_wakes_on_produce(broker, bootstrap, topic_name):
    await create(bootstrap, topic_name, 1)
    tp = TopicPartition(topic_name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=60000,
                                auto_offset_reset="latest")
    await consumer.start()
    try:
        consumer.assign([tp])
        waiting = asyncio.ensure_future(consumer.getone())

        # The consumer's fetch sits at the broker until data comes.
        await async_wait_until(lambda: broker.call(lambda: bool(broker.broker.partition(topic_name, 0)._waiters)),
                               30, message="the consumer's fetch parked at the broker")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name, b"wake up")
        finally:
            await producer.stop()
        record = await asyncio.wait_for(waiting, 50)
        assert (record.offset, record.value) == (0, b"wake up")
    finally:
        await consumer.stop()


async def test_message_too_large(bootstrap, topic_name):
    await create(bootstrap, topic_name, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000)
    await producer.start()
    try:
        ok = await producer.send_and_wait(topic_name, b"a" * 1_000_000)
        assert ok.offset == 0
        with pytest.raises(MessageSizeTooLargeError):
            await producer.send_and_wait(topic_name, b"b" * 1_100_000)
    finally:
        await producer.stop()


async def test_admin_calls(broker, bootstrap, topic_name):
    admin = await admin_client(bootstrap)
    try:
        await admin.create_topics([NewTopic(topic_name, 2, 1, topic_configs={"retention.ms": "4242"})])
        # aiokafka returns the response rather than raising on per-topic errors.
        again = await admin.create_topics([NewTopic(topic_name, 2, 1)])
        assert [t[1] for t in again.topic_errors] == [TopicAlreadyExistsError.errno]
        assert topic_name in await admin.list_topics()
        await admin.create_partitions({topic_name: NewPartitions(5)})
        described = await admin.describe_topics([topic_name])
        assert len(described[0]["partitions"]) == 5
        with pytest.raises(InvalidPartitionsError, match="5 partition\\(s\\); 4 would not be an increase"):
            await admin.create_partitions({topic_name: NewPartitions(4)})
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        entries = {c[0]: c[1] for c in configs.resources[0][4]}
        assert entries["retention.ms"] == "4242"
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name,
                                                  configs={"retention.ms": "5151"})])
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        assert {c[0]: c[1] for c in configs.resources[0][4]}["retention.ms"] == "5151"
        cluster = await admin.describe_cluster()
        assert cluster["cluster_id"] == broker.broker.cluster_id
        assert [b["node_id"] for b in cluster["brokers"]] == [broker.broker.node_id]
        await admin.delete_topics([topic_name])
        assert topic_name not in await admin.list_topics()
    finally:
        await admin.close()


async def test_offsets_by_timestamp_and_delete_records(bootstrap, topic_name):
    await create(bootstrap, topic_name, 1)
    base = 1_700_000_000_000
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic_name, f"r{i}".encode(), timestamp_ms=base + i * 10)
    finally:
        await producer.stop()
    tp = TopicPartition(topic_name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({tp: base + 55})
        assert (found[tp].offset, found[tp].timestamp) == (6, base + 60)
        assert (await consumer.offsets_for_times({tp: base + 10_000}))[tp] is None
        assert (await consumer.end_offsets([tp]))[tp] == 20
    finally:
        await consumer.stop()
    admin = await admin_client(bootstrap)
    try:
        low = await admin.delete_records({tp: RecordsToDelete(before_offset=12)})
        assert low == {tp: 12}
    finally:
        await admin.close()
    got = await consume(bootstrap, [tp], 8)
    assert [r.offset for r in got] == list(range(12, 20))


async def test_restart_keeps_data(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        await create(b.bootstrap_servers, "kept", 2)
        producer = AIOKafkaProducer(bootstrap_servers=b.bootstrap_servers, compression_type="gzip")
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait("kept", f"m{i}".encode(), partition=i % 2)
        finally:
            await producer.stop()
    with BrokerThread(data_dir=data) as b:
        got = await consume(b.bootstrap_servers, [TopicPartition("kept", 0), TopicPartition("kept", 1)], 10)
        assert sorted(r.value for r in got) == sorted(f"m{i}".encode() for i in range(10))
