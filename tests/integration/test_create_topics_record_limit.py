"""CreateTopics bounded by the metadata records of one operation, as Kafka 4.4: the TopicRecord,
ConfigRecords and PartitionRecords of every topic that passes its checks count (validate_only
too); past 10,000 (QuorumController.MAX_RECORDS_PER_USER_OP) every topic of the request gets
POLICY_VIOLATION "Unable to perform excessively large batch operation." and nothing is created.
A single topic of 10,000 partitions is 10,001 records, so Kafka refuses it."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.controller.operations import create_topics as create_topics_api
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
CT = REQUESTS[19]
BATCH = "Unable to perform excessively large batch operation."


def topic(name: str, partitions: int, configs: dict[str, str] | None = None, replication: int = 1):
    return CT.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication,
                             assignments=[], configs=[CT.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                                      for k, v in (configs or {}).items()])


def create(wire: Wire, topics, validate_only: bool = False):
    resp = wire.call(19, 7, topics=topics, timeout_ms=10000, validate_only=validate_only)
    return [(r.name, r.error_code, r.error_message) for r in resp.topics]


def exists(wire: Wire, name: str) -> bool:
    resp = wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return resp.topics[0].error_code == E.NONE


def test_a_topic_of_10000_partitions_is_refused_at_kafkas_limit(wire, topic_name):
    # 1 TopicRecord + 10,000 PartitionRecords: one past the bound (validate_only: nothing on disk)
    assert create(wire, [topic(topic_name, 10_000)], validate_only=True) == [(topic_name, E.POLICY_VIOLATION, BATCH)]
    assert create(wire, [topic(topic_name, 9_999)], validate_only=True) == [(topic_name, E.NONE, None)]
    assert create(wire, [topic(topic_name, 9_998, {"retention.ms": "1000"})], validate_only=True) == [
        (topic_name, E.NONE, None)]
    assert create(wire, [topic(topic_name, 9_999, {"retention.ms": "1000"})], validate_only=True) == [
        (topic_name, E.POLICY_VIOLATION, BATCH)]
    assert not exists(wire, topic_name)


def test_records_of_all_topics_count_and_the_whole_request_fails(wire, topic_name, monkeypatch):
    monkeypatch.setattr(create_topics_api, "MAX_RECORDS_PER_USER_OP", 8)
    a, b, bad = f"{topic_name}-a", f"{topic_name}-b", f"{topic_name}-bad"
    # 1 + 1 config + 3 partitions = 5, then 1 + 3 = 4: 9 records > 8; the invalid topic counts nothing
    # but is answered the same error, as Kafka answers every topic of a failed operation.
    requested = [topic(a, 3, {"retention.ms": "1000"}), topic(bad, 0), topic(b, 3)]
    assert create(wire, requested) == [(a, E.POLICY_VIOLATION, BATCH), (bad, E.POLICY_VIOLATION, BATCH),
                                       (b, E.POLICY_VIOLATION, BATCH)]
    assert create(wire, requested, validate_only=True) == [
        (a, E.POLICY_VIOLATION, BATCH), (bad, E.POLICY_VIOLATION, BATCH), (b, E.POLICY_VIOLATION, BATCH)]
    assert not exists(wire, a) and not exists(wire, b)
    # exactly at the bound: 5 + 3 = 8 records; the topic refused by its own check adds none
    requested = [topic(a, 3, {"retention.ms": "1000"}), topic(bad, 0), topic(b, 2)]
    assert [(n, c) for n, c, _ in create(wire, requested)] == [(a, E.NONE), (bad, E.INVALID_PARTITIONS), (b, E.NONE)]
    assert exists(wire, a) and exists(wire, b)


def test_an_existing_topic_counts_no_records(wire, topic_name, monkeypatch):
    create_topic(wire, topic_name, 3)
    monkeypatch.setattr(create_topics_api, "MAX_RECORDS_PER_USER_OP", 4)
    other = f"{topic_name}-x"
    assert [(n, c) for n, c, _ in create(wire, [topic(topic_name, 3), topic(other, 3)])] == [
        (topic_name, E.TOPIC_ALREADY_EXISTS), (other, E.NONE)]


def test_a_refused_request_leaves_its_names_free(wire, topic_name, monkeypatch):
    monkeypatch.setattr(create_topics_api, "MAX_RECORDS_PER_USER_OP", 4)
    first, second = f"{topic_name}.one", f"{topic_name}-two"
    assert create(wire, [topic(first, 2), topic(second, 2)]) == [
        (first, E.POLICY_VIOLATION, BATCH), (second, E.POLICY_VIOLATION, BATCH)]
    monkeypatch.undo()
    assert create(wire, [topic(first, 2), topic(second, 2)]) == [(first, E.NONE, None), (second, E.NONE, None)]
