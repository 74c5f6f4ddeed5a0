"""The bounds of one CreateTopics / CreatePartitions, kbroker against Apache Kafka 4.4 itself
(scripts/reference_kafka.py, one JVM for the module): the same requests, answered with the same
per-topic error codes and messages, and nothing created by a refused request."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
import reference_kafka
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS

CT = REQUESTS[19]
CP = REQUESTS[37]


def _topic(name: str, partitions: int, configs: dict[str, str] | None = None):
    return CT.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[],
                             configs=[CT.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                      for k, v in (configs or {}).items()])


def _create(w: Wire, topics, validate_only: bool):
    resp = w.call(19, 7, topics=topics, timeout_ms=60000, validate_only=validate_only)
    return sorted((t.name, t.error_code, t.error_message) for t in resp.topics)


def _grow(w: Wire, counts, validate_only: bool):
    resp = w.call(37, 3, topics=[CP.CreatePartitionsTopic(name=n, count=c, assignments=None) for n, c in counts],
                  timeout_ms=60000, validate_only=validate_only)
    return sorted((t.name, t.error_code, t.error_message) for t in resp.results)


def _partitions(w: Wire, name: str) -> tuple[int, int]:
    resp = w.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return resp.topics[0].error_code, len(resp.topics[0].partitions)


def _scenario(bootstrap: str) -> list:
    w = Wire(bootstrap)
    w.sock.settimeout(120)
    try:
        out = [
            _create(w, [_topic("big", 10_000)], True),  # 10,001 records
            _create(w, [_topic("big", 9_999)], True),
            _create(w, [_topic("big", 9_999, {"retention.ms": "1000"})], True),
            _create(w, [_topic("b1", 5_000), _topic("b2", 0), _topic("b3", 5_000)], True),
            _create(w, [_topic("b1", 6_000), _topic("b3", 5_000)], True),  # partitions over 10,000
            _create(w, [_topic("big", 10_000)], False),
            _partitions(w, "big"),
            _create(w, [_topic("small", 1), _topic("small2", 1)], False),
            _grow(w, [("small", 10_002)], True),
            _grow(w, [("small", 10_001)], True),
            _grow(w, [("small", 6_001), ("small2", 6_001), ("nosuch", 3)], True),
            _grow(w, [("small", 10_002)], False),
            _partitions(w, "small"),
        ]
    finally:
        w.close()
    return out


@pytest.fixture(scope="module")
def kafka_answers() -> Iterator[list]:
    with tempfile.TemporaryDirectory() as work:
        handle = reference_kafka.start_reference_kafka(work)
        try:
            yield _scenario(handle.bootstrap)
        finally:
            handle.stop()


def test_kbroker_answers_the_bounds_as_kafka(kafka_answers, tmp_path):
    with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(tmp_path / "data")) as b:
        ours = _scenario(b.bootstrap_servers)
    assert kafka_answers[0] == [("big", 44, "Unable to perform excessively large batch operation.")]
    assert ours == kafka_answers
