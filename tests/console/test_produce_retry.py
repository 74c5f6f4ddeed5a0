"""The console's produce retries what a Kafka producer retries: a leader that has not yet applied
the topic's metadata (UNKNOWN_TOPIC_OR_PARTITION) or that moved (NOT_LEADER_OR_FOLLOWER) wrote
nothing, so the record goes again, to the leader fresh metadata names. Other errors are final."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.console import records
from kbroker.console.client import KafkaError
from kbroker_protocol.errors import ErrorCode


class FakeClient:
    """Answers Metadata from ``leader_views`` (one per call) and Produce from ``answers``."""

    def __init__(self, leader_views: list[dict[int, int]], answers: list[int]) -> None:
        self.leader_views = leader_views
        self.answers = answers
        self.sent_to: list[int] = []

    async def leaders(self, topic: str) -> dict[int, int]:
        return self.leader_views.pop(0) if len(self.leader_views) > 1 else self.leader_views[0]

    async def send(self, api_key: int, version: int, node: int | None = None, **fields: Any) -> Any:
        assert api_key == 0 and node is not None
        self.sent_to.append(node)
        code = self.answers.pop(0)
        part = SimpleNamespace(error_code=code, error_message=None, base_offset=7 if code == 0 else -1)
        return SimpleNamespace(responses=[SimpleNamespace(partition_responses=[part])])


def produce(client: FakeClient, partition: int = 0) -> dict[str, Any]:
    return asyncio.run(records.produce(client, "t", {"partition": partition, "value": "v"}))  # type: ignore[arg-type]


def test_a_leader_not_yet_knowing_the_topic_is_asked_again():
    client = FakeClient([{0: 2}], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 0])
    assert produce(client) == {"topic": "t", "partition": 0, "offset": 7}
    assert client.sent_to == [2, 2, 2]


def test_a_moved_leader_is_found_in_fresh_metadata():
    client = FakeClient([{0: 1}, {0: 3}], [ErrorCode.NOT_LEADER_OR_FOLLOWER, 0])
    assert produce(client)["offset"] == 7
    assert client.sent_to == [1, 3]


def test_a_partition_left_without_a_leader_is_refused_without_sending():
    client = FakeClient([{0: 1}, {0: -1}], [ErrorCode.NOT_LEADER_OR_FOLLOWER])
    with pytest.raises(KafkaError) as e:
        produce(client)
    assert e.value.code == "LEADER_NOT_AVAILABLE"
    assert client.sent_to == [1]


def test_an_error_that_is_not_retriable_is_answered_at_once():
    client = FakeClient([{0: 1}], [ErrorCode.RECORD_LIST_TOO_LARGE])
    with pytest.raises(KafkaError) as e:
        produce(client)
    assert e.value.code == "RECORD_LIST_TOO_LARGE"
    assert client.sent_to == [1]


def test_retries_stop_at_the_deadline(monkeypatch):
    monkeypatch.setattr(records, "RETRY_WAIT", 0.0)
    client = FakeClient([{0: 1}], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
    with pytest.raises(KafkaError) as e:
        produce(client)
    assert e.value.code == "UNKNOWN_TOPIC_OR_PARTITION"
    assert client.sent_to == [1]
