"""Metadata answers a topic's partitions from a per-image cache (issue 23: a topic of 10,000
partitions cost a third of a second per request); every applied record must invalidate it."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.messages import REQUESTS, RESPONSES


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


def test_failed_auto_creation_is_tried_again_by_the_next_request(wire, broker, topic_name, monkeypatch):
    """An answer that asked for a topic's auto-creation is not kept for the next request: as
    Kafka's getTopicMetadata, each Metadata request naming a missing topic tries again (here the
    first try fails on a storage error and leaves the image unchanged)."""
    client = broker.broker.controller_client
    real_create = client.create_topics
    calls: list[str] = []

    async def failing_once(request, version, requester=None):
        calls.extend(t.name for t in request.topics)
        if len(calls) == 1:
            R = RESPONSES[19]
            return R(topics=[R.CreatableTopicResult(name=t.name, error_code=56, error_message="disk")  # KAFKA_STORAGE_ERROR
                             for t in request.topics])
        return await real_create(request, version, requester)

    monkeypatch.setattr(client, "create_topics", failing_once)
    wanted = [REQUESTS[3].MetadataRequestTopic(name=topic_name)]
    first = wire.call(3, 12, topics=wanted, allow_auto_topic_creation=True)
    assert first.topics[0].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    second = wire.call(3, 12, topics=wanted, allow_auto_topic_creation=True)
    assert calls == [topic_name, topic_name]
    assert second.topics[0].error_code == 0
    assert len(second.topics[0].partitions) >= 1


def test_the_cached_answers_are_bounded_while_the_image_stays(wire, broker, topic_name):
    """Each distinct list of topics asked for is an answer of its own: while the image does not
    change (hours on a quiet cluster) they must not pile up without bound."""
    import kbroker.api.metadata as metadata_api

    create_topic(wire, topic_name, 1)
    T = REQUESTS[3].MetadataRequestTopic
    for i in range(metadata_api.MAX_CACHED_ANSWERS + 20):
        wire.call(3, 12, topics=[T(name=topic_name), T(name=f"{topic_name}-absent-{i}")],
                  allow_auto_topic_creation=False)
    answers = [k for k in broker.broker.image.derived if isinstance(k, tuple) and k[0] == "metadata-response"]
    assert len(answers) <= metadata_api.MAX_CACHED_ANSWERS


def test_a_replica_in_an_offline_log_dir_is_an_offline_replica(wire, broker, topic_name):
    """Kafka's KRaftMetadataCache.isReplicaOffline: a replica whose recorded log dir is not one of
    its broker's online dirs (here LOST) is listed in Metadata's and DescribeTopicPartitions'
    offline replicas."""
    from kbroker.metadata.directories import DIR_LOST

    create_topic(wire, topic_name, 1)
    node = broker.broker.node_id

    def offline() -> tuple[list[int], list[int]]:
        meta = wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=topic_name)],
                         allow_auto_topic_creation=False)
        described = wire.call(75, 0, topics=[REQUESTS[75].TopicRequest(name=topic_name)],
                              response_partition_limit=10, cursor=None)
        return (meta.topics[0].partitions[0].offline_replicas,
                described.topics[0].partitions[0].offline_replicas)

    assert offline() == ([], [])
    # the controller recorded the replica in the broker's only log dir (ClusterControlManager.defaultDir)
    image = broker.broker.image
    assert image.partition(topic_name, 0).directories == image.brokers[node].log_dirs
    assert len(image.brokers[node].log_dirs) == 1

    def lose_dir() -> None:
        topic = broker.broker.image.topic(topic_name)
        broker.broker.controller.commit([mr.PartitionChangeRecord(partition_id=0, topic_id=topic.topic_id,
                                                                  directories=[DIR_LOST])])

    broker.call(lose_dir)
    assert offline() == ([node], [node])
