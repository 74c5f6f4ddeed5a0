"""The console's reads (browse, tail) retry what a Kafka consumer retries: a leader that has not yet
applied the topic's metadata (UNKNOWN_TOPIC_OR_PARTITION) or that moved (NOT_LEADER_OR_FOLLOWER)
is asked again, the leader taken from fresh metadata. Other errors, and a partition the metadata
gives no leader, are answered at once."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.console import records
from kbroker.console.client import KafkaError
from kbroker_protocol.errors import ErrorCode


class FakeClient:
    """Answers Metadata from ``leader_views`` (one per call, the last one kept) and each
    ListOffsets or Fetch from ``answers`` (an error code a request, for every partition asked)."""

    def __init__(self, leader_views: list[dict[int, int]], answers: list[int]) -> None:
        self.leader_views = leader_views
        self.answers = answers
        self.sent: list[tuple[int, int]] = []  # (api key, node)

    async def leaders(self, topic: str) -> dict[int, int]:
        return self.leader_views.pop(0) if len(self.leader_views) > 1 else self.leader_views[0]

    async def send(self, api_key: int, version: int, node: int | None = None, **fields: Any) -> Any:
        assert api_key in (1, 2) and node is not None
        self.sent.append((api_key, node))
        code = self.answers.pop(0) if self.answers else ErrorCode.NONE
        if api_key == 2:  # ListOffsets: an empty partition (offset 0 for earliest and latest)
            return SimpleNamespace(topics=[SimpleNamespace(name=t.name, partitions=[
                SimpleNamespace(partition_index=p.partition_index, error_code=code, offset=0)
                for p in t.partitions]) for t in fields["topics"]])
        return SimpleNamespace(error_code=ErrorCode.NONE, responses=[SimpleNamespace(partitions=[
            SimpleNamespace(partition_index=p.partition, error_code=code, records=None, high_watermark=0)
            for p in fields["topics"][0].partitions])])


def tail(client: FakeClient) -> dict[str, Any]:
    return asyncio.run(records.tail(client, "t", {"positions": "0:0", "wait_ms": "0"}))  # type: ignore[arg-type]


def browse(client: FakeClient) -> dict[str, Any]:
    return asyncio.run(records.browse(client, "t", {"partition": "0"}))  # type: ignore[arg-type]


def test_a_leader_not_yet_knowing_the_topic_is_asked_again():
    client = FakeClient([{0: 2}], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
    assert tail(client) == {"topic": "t", "records": [], "positions": {"0": 0}}
    assert client.sent == [(1, 2), (1, 2), (1, 2)]


def test_a_moved_leader_is_found_in_fresh_metadata():
    client = FakeClient([{0: 1}, {0: 3}], [ErrorCode.NOT_LEADER_OR_FOLLOWER])
    assert browse(client)["records"] == []
    assert client.sent == [(2, 1), (2, 3), (2, 3)]  # ListOffsets: refused by 1, then earliest and latest at 3


def test_a_partition_left_without_a_leader_is_refused_without_asking():
    client = FakeClient([{0: 1}, {0: -1}], [ErrorCode.NOT_LEADER_OR_FOLLOWER])
    with pytest.raises(KafkaError) as e:
        browse(client)
    assert e.value.code == "LEADER_NOT_AVAILABLE"
    assert client.sent == [(2, 1)]


def test_an_error_that_is_not_retriable_is_answered_at_once():
    client = FakeClient([{0: 1}], [ErrorCode.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaError) as e:
        tail(client)
    assert e.value.code == "TOPIC_AUTHORIZATION_FAILED"
    assert client.sent == [(1, 1)]


def test_retries_stop_at_the_deadline(monkeypatch):
    monkeypatch.setattr(records, "RETRY_WAIT", 0.0)
    client = FakeClient([{0: 1}], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
    with pytest.raises(KafkaError) as e:
        tail(client)
    assert e.value.code == "UNKNOWN_TOPIC_OR_PARTITION"
    assert client.sent == [(1, 1)]


class UnknownTopicClient(FakeClient):
    """Metadata without the topic: what the node's own metadata says, not a lagging leader."""

    def __init__(self) -> None:
        super().__init__([{}], [])
        self.metadata_calls = 0

    async def leaders(self, topic: str) -> dict[int, int]:
        self.metadata_calls += 1
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, f"topic {topic}")


@pytest.mark.parametrize("read", [tail, browse])
def test_a_topic_the_metadata_does_not_have_is_not_found_at_once(read):
    client = UnknownTopicClient()
    with pytest.raises(records.NotFound):
        read(client)
    assert (client.metadata_calls, client.sent) == (1, [])
