"""CreatePartitions bounded as Kafka 4.4 (checked against Apache Kafka 4.4.0): the partitions one
request adds to the existing topics it may alter total at most 10,000, else every topic gets
POLICY_VIOLATION "Excessively large number of additional partitions per request."; a request
giving the controller more than 10,000 topics fails with "Unable to perform excessively large
batch operation." (the bounded result list). Nothing is added either way."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.controller.operations import create_partitions as create_partitions_api
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
CP = REQUESTS[37]
ADDED = "Excessively large number of additional partitions per request."
BATCH = "Unable to perform excessively large batch operation."


def grow(wire: Wire, counts: list[tuple[str, int]], validate_only: bool = False):
    resp = wire.call(37, 3, topics=[CP.CreatePartitionsTopic(name=n, count=c, assignments=None) for n, c in counts],
                     timeout_ms=10000, validate_only=validate_only)
    return sorted((r.name, r.error_code, r.error_message) for r in resp.results)


def partitions(wire: Wire, name: str) -> int:
    resp = wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return len(resp.topics[0].partitions)


def test_kafkas_bound_on_added_partitions(wire, topic_name):
    create_topic(wire, topic_name, 1)
    assert grow(wire, [(topic_name, 10_002)], validate_only=True) == [(topic_name, E.POLICY_VIOLATION, ADDED)]
    assert grow(wire, [(topic_name, 10_001)], validate_only=True) == [(topic_name, E.NONE, None)]
    assert partitions(wire, topic_name) == 1


def test_added_partitions_of_all_alterable_topics_count(wire, topic_name, monkeypatch):
    a, b, c = (f"{topic_name}-{x}" for x in "abc")
    create_topic(wire, a, 2)
    create_topic(wire, b, 3)
    create_topic(wire, c, 1)
    monkeypatch.setattr(create_partitions_api, "MAX_PARTITIONS_PER_REQUEST", 5)
    # a adds 3, b adds 3: 6 > 5; every topic named, the unknown one too, gets the error
    missing = f"{topic_name}-missing"
    assert grow(wire, [(a, 5), (b, 6), (missing, 9)]) == sorted(
        [(a, E.POLICY_VIOLATION, ADDED), (b, E.POLICY_VIOLATION, ADDED), (missing, E.POLICY_VIOLATION, ADDED)])
    assert (partitions(wire, a), partitions(wire, b)) == (2, 3)
    # a shrinking count, a duplicate and an unknown topic add nothing: 3 + 2 = 5 fits
    result = grow(wire, [(a, 5), (b, 5), (c, 0), (c, 9), (missing, 50)])
    assert [(n, code) for n, code, _ in result] == sorted(
        [(a, E.NONE), (b, E.NONE), (c, E.INVALID_REQUEST), (missing, E.UNKNOWN_TOPIC_OR_PARTITION)])
    assert (partitions(wire, a), partitions(wire, b), partitions(wire, c)) == (5, 5, 1)


def test_more_topics_than_the_result_bound_fail_the_batch(wire, topic_name, monkeypatch):
    names = [f"{topic_name}-{i}" for i in range(3)]
    for n in names:
        create_topic(wire, n, 1)
    monkeypatch.setattr(create_partitions_api, "MAX_RECORDS_PER_USER_OP", 2)
    assert grow(wire, [(n, 2) for n in names], validate_only=True) == [(n, E.POLICY_VIOLATION, BATCH) for n in names]
    assert grow(wire, [(n, 2) for n in names[:2]]) == [(n, E.NONE, None) for n in names[:2]]
    assert [partitions(wire, n) for n in names] == [2, 2, 1]
