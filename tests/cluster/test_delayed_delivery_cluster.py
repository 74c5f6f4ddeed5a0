"""Delayed delivery (docs/delayed-delivery.md) on a three-node cluster: ``__kbroker_delayed`` is
created through the active controller with three replicas, each target partition's leader stores
the delayed records in an internal partition it leads, and its scheduler delivers them."""

from __future__ import annotations

import pytest
from waiting import wait_until

confluent_kafka = pytest.importorskip("confluent_kafka")


def test_delayed_records_reach_every_partition_of_a_replicated_topic(cluster):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = cluster.bootstrap()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("orders", 3, 3)])["orders"].result(60)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    errors: list = []
    for i in range(30):
        producer.produce("orders", b"order-%d" % i, partition=i % 3,
                         headers=[("kbroker-deliver-after-ms", b"1000")],
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(60) == 0
    assert errors == []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "delayed-cluster",
                         "auto.offset.reset": "earliest"})
    try:
        def delivered() -> bool:
            return sum(consumer.get_watermark_offsets(TopicPartition("orders", p), timeout=10)[1]
                       for p in range(3)) == 30
        wait_until(delivered, timeout=60, message="30 delayed records delivered")
        consumer.assign([TopicPartition("orders", p, 0) for p in range(3)])
        got: list = []

        def read() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            return len(got) >= 30
        wait_until(read, timeout=60, message="30 records read")
        assert sorted(got) == sorted(b"order-%d" % i for i in range(30))
    finally:
        consumer.close()
    md = admin.list_topics("__kbroker_delayed", timeout=10).topics["__kbroker_delayed"]
    assert len(md.partitions) == 10
    assert all(len(p.replicas) == 3 for p in md.partitions.values())
