"""Metadata answers a topic's partitions from a per-image cache (issue 23: a topic of 10,000
partitions cost a third of a second per request); every applied record must invalidate it."""

from __future__ import annotations

import pytest
from wire import Wire, create_topic

from kbroker.controller import metadata_records as mr
from kbroker_protocol.messages import REQUESTS


@pytest.fixture
def wire(bootstrap):
    w = Wire(bootstrap)
    yield w
    w.close()


def partitions(wire: Wire, name: str, version: int = 12) -> dict[int, tuple[int, int]]:
    resp = wire.call(3, version, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return {p.partition_index: (p.leader_id, p.leader_epoch) for p in resp.topics[0].partitions}


def test_metadata_follows_each_change_of_the_image(wire, broker, topic_name):
    create_topic(wire, topic_name, 2)
    node = broker.broker.node_id
    assert partitions(wire, topic_name) == {0: (node, 0), 1: (node, 0)}
    assert partitions(wire, topic_name) == {0: (node, 0), 1: (node, 0)}  # (the cached answer)
    assert partitions(wire, topic_name, version=1) == {0: (node, -1), 1: (node, -1)}  # no epoch before v7

    def change() -> None:
        b = broker.broker
        topic = b.image.topic(topic_name)
        b.controller.commit([mr.PartitionChangeRecord(partition_id=1, topic_id=topic.topic_id, leader=node)])

    broker.call(change)
    assert partitions(wire, topic_name) == {0: (node, 0), 1: (node, 1)}
    more = REQUESTS[37].CreatePartitionsTopic(name=topic_name, count=3, assignments=None)
    resp = wire.call(37, 3, topics=[more], timeout_ms=10000, validate_only=False)
    assert resp.results[0].error_code == 0
    assert partitions(wire, topic_name) == {0: (node, 0), 1: (node, 1), 2: (node, 0)}
