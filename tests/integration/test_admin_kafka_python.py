"""kafka-python's KafkaAdminClient on the admin APIs of issue 4: CreatePartitions, DeleteRecords,
DescribeCluster, DescribeLogDirs, DescribeTopicPartitions, ElectLeaders."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import InvalidPartitionsError


@pytest.fixture
def admin(bootstrap):
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


def fill(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(count):
        producer.send(topic, f"m{i}".encode(), partition=partition)
    producer.flush()
    producer.close()


def test_create_partitions(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    admin.create_partitions({topic_name: NewPartitions(5)})
    assert len(admin.describe_topics([topic_name])[0]["partitions"]) == 5
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({topic_name: NewPartitions(5)})


def test_delete_records_and_consume(bootstrap, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    fill(bootstrap, topic_name, 0, 12)
    tp = TopicPartition(topic_name, 0)
    result = admin.delete_records({tp: 9})
    assert result[tp]["low_watermark"] == 9 and result[tp]["error_code"] == 0
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10000)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = [m.value for _, m in zip(range(3), consumer, strict=False)]
    consumer.close()
    assert got == [b"m9", b"m10", b"m11"]


def test_describe_log_dirs(broker, bootstrap, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    fill(bootstrap, topic_name, 1, 5)
    [per_broker] = admin.describe_log_dirs()
    assert per_broker["broker"] == broker.broker.node_id
    [log_dir] = per_broker["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == os.path.realpath(broker.data_dir)
    assert log_dir["total_bytes"] >= log_dir["usable_bytes"] > 0
    topics = {t["name"]: {p["partition_index"]: p for p in t["partitions"]} for t in log_dir["topics"]}
    assert topics[topic_name][0]["partition_size"] == 0
    assert topics[topic_name][1]["partition_size"] > 0


def test_describe_cluster(broker, admin):
    cluster = admin.describe_cluster()
    assert cluster["cluster_id"] == broker.broker.cluster_id
    assert cluster["controller_id"] == broker.broker.node_id
    assert [(b["broker_id"], b["is_fenced"]) for b in cluster["brokers"]] == [(broker.broker.node_id, False)]


def test_describe_topic_partitions_pages(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 5, 1)])
    first = admin.describe_topic_partitions([topic_name], response_partition_limit=3)
    assert [p["partition_index"] for p in first["topics"][0]["partitions"]] == [0, 1, 2]
    assert first["next_cursor"] == {"topic_name": topic_name, "partition_index": 3}
    rest = admin.describe_topic_partitions([topic_name], response_partition_limit=3, cursor=first["next_cursor"])
    assert [p["partition_index"] for p in rest["topics"][0]["partitions"]] == [3, 4]
    assert rest["next_cursor"] is None


def test_elect_leaders(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    response = admin.elect_leaders(0, {topic_name: [0, 1]}, raise_errors=False)
    assert response.error_code == 0
    [result] = response.replica_election_results
    assert result.topic == topic_name
    assert sorted((p.partition_id, p.error_code) for p in result.partition_result) == [(0, 84), (1, 84)]
