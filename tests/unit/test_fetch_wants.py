"""A Fetch request's partitions become the fetch's wants (kbroker/api/fetch.py
``_wants_from_request``) with each of the request's numbers in its own field, by name before v13
and by topic id from v13."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from kbroker.api import fetch
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.fetch import FetchRequest

TOPIC_ID = uuid.UUID(int=0xABC)


class _Image:
    def topic(self, name: str) -> SimpleNamespace | None:
        return SimpleNamespace(name="t", topic_id=TOPIC_ID) if name == "t" else None

    def topic_by_id(self, topic_id: uuid.UUID) -> SimpleNamespace | None:
        return SimpleNamespace(name="t", topic_id=TOPIC_ID) if topic_id == TOPIC_ID else None


@pytest.mark.parametrize("version", [4, 12, 13, 16, 18])
def test_every_number_of_a_partition_lands_in_its_own_field(version: int) -> None:
    P = FetchRequest.FetchTopic.FetchPartition
    request = FetchRequest(topics=[
        FetchRequest.FetchTopic(topic="t", topic_id=TOPIC_ID, partitions=[
            P(partition=3, fetch_offset=101, partition_max_bytes=202, current_leader_epoch=303,
              log_start_offset=404, last_fetched_epoch=505),
            P(partition=4, fetch_offset=11, partition_max_bytes=22, current_leader_epoch=33, log_start_offset=44,
              last_fetched_epoch=55)]),
        FetchRequest.FetchTopic(topic="gone", topic_id=uuid.UUID(int=9), partitions=[P(partition=0)])])
    broker = SimpleNamespace(image=_Image())
    wants = fetch._wants_from_request(broker, request, version)  # type: ignore[arg-type]
    got = [(w.cached.topic, w.cached.topic_id, w.cached.partition, w.cached.fetch_offset, w.cached.max_bytes,
            w.cached.current_leader_epoch, w.cached.log_start_offset, w.cached.last_fetched_epoch, w.topic_name,
            w.unknown_error) for w in wants]
    by_id = version >= 13
    unknown = ErrorCode.UNKNOWN_TOPIC_ID if by_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert got == [
        ("t", TOPIC_ID, 3, 101, 202, 303, 404, 505, "t", unknown),
        ("t", TOPIC_ID, 4, 11, 22, 33, 44, 55, "t", unknown),
        (None if by_id else "gone", uuid.UUID(int=9) if by_id else uuid.UUID(int=0), 0, 0, 0, -1, -1, -1, None,
         unknown),
    ]
