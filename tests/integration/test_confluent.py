"""confluent-kafka (librdkafka) against kbroker: produce/consume, codecs, admin, limits, restart."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)
from waiting import wait_until

from kbroker.testing import BrokerThread

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def producer(bootstrap: str, **conf) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})


def consume(bootstrap: str, partitions: list[TopicPartition], count: int, timeout: float = 30.0, **conf):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-test", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", **conf})
    consumer.assign(partitions)
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            got.append(msg)
    finally:
        consumer.close()
    return got


def produce_all(p: Producer, topic: str, values, key=None, partition=None, headers=None):
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg))

    for v in values:
        kwargs = {"key": key, "value": v, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if headers is not None:
            kwargs["headers"] = headers
        p.produce(topic, **kwargs)
    assert p.flush(30) == 0
    assert [err for err, _ in reports if err is not None] == []
    return [m for _, m in reports]


@pytest.fixture
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create(admin: AdminClient, name: str, partitions: int = 1, config: dict | None = None) -> None:
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                            config=config or {})])
    futures[name].result(20)


# -- produce and consume ------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_every_codec(bootstrap, admin, topic_name, codec):
    create(admin, topic_name, 1)
    values = [f"value-{i}-".encode() * (i % 7 + 1) for i in range(300)]
    p = producer(bootstrap, **{"compression.type": codec})
    delivered = produce_all(p, topic_name, values, key=b"k", headers=[("codec", codec.encode())])
    assert [m.offset() for m in delivered] == list(range(300))
    got = consume(bootstrap, [TopicPartition(topic_name, 0, OFFSET_BEGINNING)], 300)
    assert [m.value() for m in got] == values
    assert [m.offset() for m in got] == list(range(300))
    assert {m.key() for m in got} == {b"k"}
    assert got[3].headers() == [("codec", codec.encode())]


def test_keyed_ordering_across_partitions(bootstrap, admin, topic_name):
    create(admin, topic_name, 4)
    p = producer(bootstrap)
    sent = []
    for i in range(400):
        key = f"key-{i % 10}".encode()
        p.produce(topic_name, key=key, value=str(i).encode())
        sent.append((key, i))
    assert p.flush(30) == 0
    got = consume(bootstrap, [TopicPartition(topic_name, i, OFFSET_BEGINNING) for i in range(4)], 400)
    by_key: dict[bytes, list[int]] = {}
    partition_of: dict[bytes, set[int]] = {}
    for m in got:
        by_key.setdefault(m.key(), []).append(int(m.value()))
        partition_of.setdefault(m.key(), set()).add(m.partition())
    for key, values in by_key.items():
        assert values == [i for k, i in sent if k == key]  # per-key order kept
        assert len(partition_of[key]) == 1  # one key, one partition
    assert len({next(iter(s)) for s in partition_of.values()}) > 1


def test_many_partitions(bootstrap, admin, topic_name):
    create(admin, topic_name, 200)
    md = admin.list_topics(topic_name, timeout=20)
    assert len(md.topics[topic_name].partitions) == 200
    p = producer(bootstrap)
    for i in range(200):
        p.produce(topic_name, value=f"p{i}".encode(), partition=i)
    assert p.flush(30) == 0
    got = consume(bootstrap, [TopicPartition(topic_name, i, OFFSET_BEGINNING) for i in range(200)], 200, timeout=60)
    assert sorted((m.partition(), m.value()) for m in got) == sorted((i, f"p{i}".encode()) for i in range(200))


def test_long_poll_wakes_on_produce(broker, bootstrap, admin, topic_name):
    create(admin, topic_name, 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lp", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 60000, "auto.offset.reset": "latest"})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    got = []

    def poll():
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                got.append(msg)

    poller = threading.Thread(target=poll)
    poller.start()
    # The consumer's fetch is parked at the broker, waiting for data.
    wait_until(lambda: broker.call(lambda: bool(broker.broker.partition(topic_name, 0)._waiters)),
               message="a parked fetch")
    produce_all(producer(bootstrap), topic_name, [b"wake up"])
    poller.join()
    consumer.close()
    assert [(m.offset(), m.value()) for m in got] == [(0, b"wake up")]


def test_message_max_bytes(bootstrap, admin, topic_name):
    create(admin, topic_name, 1)
    p = producer(bootstrap, **{"message.max.bytes": 4_000_000, "linger.ms": 0})
    limit = 1048588  # message.max.bytes, Kafka's default: the whole batch must fit
    near = b"x" * (limit - 200)
    delivered = produce_all(p, topic_name, [near])
    assert delivered[0].offset() == 0
    errors = []
    p.produce(topic_name, value=b"y" * (limit + 1), on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert [e.code() for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    got = consume(bootstrap, [TopicPartition(topic_name, 0, OFFSET_BEGINNING)], 1,
                  **{"fetch.max.bytes": 4_000_000, "receive.message.max.bytes": 5_000_000})
    assert len(got[0].value()) == len(near)


# -- admin --------------------------------------------------------------------------------


def test_admin_topics_and_partitions(admin, topic_name):
    create(admin, topic_name, 2)
    assert topic_name in admin.list_topics(timeout=10).topics
    # Validate-only changes nothing.
    admin.create_partitions([NewPartitions(topic_name, 6)], validate_only=True)[topic_name].result(20)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 2
    admin.create_partitions([NewPartitions(topic_name, 6)])[topic_name].result(20)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 6
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(20)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    with pytest.raises(KafkaException) as info:
        admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(20)
    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    admin.delete_topics([topic_name])[topic_name].result(20)
    wait_until(lambda: topic_name not in admin.list_topics(timeout=10).topics, message="topic gone")


def test_admin_describe_topics(admin, topic_name):
    from confluent_kafka import TopicCollection

    create(admin, topic_name, 3)
    desc = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(20)
    assert desc.name == topic_name
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    assert all(p.leader is not None for p in desc.partitions)


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_admin_configs(admin, topic_name):
    create(admin, topic_name, 1, {"retention.ms": "123456"})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(20)
    assert configs["retention.ms"].value == "123456"
    assert configs["cleanup.policy"].value == "delete"
    change = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "999", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([change])[change].result(20)
    configs = admin.describe_configs([resource])[resource].result(20)
    assert (configs["retention.ms"].value, configs["segment.bytes"].value) == ("999", "1048576")
    delete = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([delete])[delete].result(20)
    configs = admin.describe_configs([resource])[resource].result(20)
    assert configs["retention.ms"].value == "604800000"
    # The legacy AlterConfigs replaces the whole set of overrides.
    legacy = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"max.message.bytes": "2000"})
    admin.alter_configs([legacy])[legacy].result(20)
    configs = admin.describe_configs([resource])[resource].result(20)
    assert configs["max.message.bytes"].value == "2000"
    assert configs["segment.bytes"].value == "1073741824"


def test_admin_describe_cluster(broker, admin):
    cluster = admin.describe_cluster(include_authorized_operations=True).result(20)
    assert cluster.cluster_id == broker.broker.cluster_id
    assert [n.id for n in cluster.nodes] == [broker.broker.node_id]
    assert cluster.controller.id == broker.broker.node_id
    assert cluster.authorized_operations


def test_admin_delete_records_then_consume(bootstrap, admin, topic_name):
    create(admin, topic_name, 1)
    produce_all(producer(bootstrap), topic_name, [f"r{i}".encode() for i in range(50)])
    tp = TopicPartition(topic_name, 0, 20)
    deleted = admin.delete_records([tp])[tp].result(20)
    assert deleted.low_watermark == 20
    earliest = admin.list_offsets({TopicPartition(topic_name, 0): OffsetSpec.earliest()})
    assert earliest[TopicPartition(topic_name, 0)].result(20).offset == 20
    got = consume(bootstrap, [TopicPartition(topic_name, 0, OFFSET_BEGINNING)], 30)
    assert [m.value() for m in got] == [f"r{i}".encode() for i in range(20, 50)]
    beyond = TopicPartition(topic_name, 0, 51)
    with pytest.raises(KafkaException) as info:
        admin.delete_records([beyond])[beyond].result(20)
    assert info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


def test_admin_list_offsets_by_timestamp(bootstrap, admin, topic_name):
    create(admin, topic_name, 1)
    p = producer(bootstrap, **{"linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(10):
        p.produce(topic_name, value=b"t", timestamp=base + i * 1000)
        p.flush(10)
    tp = TopicPartition(topic_name, 0)

    def offset_for(spec):
        return admin.list_offsets({tp: spec})[tp].result(20)

    found = offset_for(OffsetSpec.for_timestamp(base + 4500))
    assert (found.offset, found.timestamp) == (5, base + 5000)
    assert offset_for(OffsetSpec.for_timestamp(base + 20_000)).offset == -1
    assert offset_for(OffsetSpec.latest()).offset == 10
    assert offset_for(OffsetSpec.earliest()).offset == 0
    latest_ts = offset_for(OffsetSpec.max_timestamp())
    assert (latest_ts.offset, latest_ts.timestamp) == (9, base + 9000)
    # The same through the consumer.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ts"})
    [res] = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 2000)], timeout=20)
    consumer.close()
    assert res.offset == 2


def test_admin_elect_leaders(admin, topic_name):
    from confluent_kafka import ElectionType

    create(admin, topic_name, 2)
    tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
    result = admin.elect_leaders(ElectionType.PREFERRED, tps).result(20)
    assert {tp.partition: err.code() for tp, err in result.items()} == {
        0: KafkaError.ELECTION_NOT_NEEDED, 1: KafkaError.ELECTION_NOT_NEEDED}


# -- restart ------------------------------------------------------------------------------


def test_restart_same_data_dir(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        create(admin, "keep", 3, {"retention.ms": "7777777"})
        p = producer(b.bootstrap_servers, **{"compression.type": "lz4"})
        for i in range(30):
            p.produce("keep", value=f"v{i}".encode(), partition=i % 3)
        assert p.flush(20) == 0
        cluster_id = b.broker.cluster_id
    with BrokerThread(data_dir=data) as b:
        assert b.broker.cluster_id == cluster_id
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        assert len(admin.list_topics("keep", timeout=10).topics["keep"].partitions) == 3
        resource = ConfigResource(ConfigResource.Type.TOPIC, "keep")
        assert admin.describe_configs([resource])[resource].result(20)["retention.ms"].value == "7777777"
        got = consume(b.bootstrap_servers, [TopicPartition("keep", i, OFFSET_BEGINNING) for i in range(3)], 30)
        assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(30))
        # Appends continue after the recovered end.
        delivered = produce_all(producer(b.bootstrap_servers), "keep", [b"after"], partition=0)
        assert delivered[0].offset() == 10
