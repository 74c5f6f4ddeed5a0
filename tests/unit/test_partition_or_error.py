"""kbroker.api.context.partition_or_error: the one rule the partition handlers (Fetch, Produce,
ListOffsets, OffsetForLeaderEpoch, DescribeProducers, DeleteRecords) answer a partition with."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.api.context import partition_or_error
from kbroker_protocol.errors import ErrorCode


class _Image:
    def __init__(self, partitions: set[tuple[str, int]]) -> None:
        self.partitions = partitions

    def partition(self, topic: str, index: int) -> object | None:
        return object() if (topic, index) in self.partitions else None


def _broker(image: set[tuple[str, int]], local: dict[tuple[str, int], Any]) -> Any:
    replica_manager = SimpleNamespace(partition=lambda topic, index: local.get((topic, index)))
    return SimpleNamespace(image=_Image(image), replica_manager=replica_manager)


LEADER = SimpleNamespace(is_leader=True, log=SimpleNamespace(offline=None))
FOLLOWER = SimpleNamespace(is_leader=False, log=SimpleNamespace(offline=None))


@pytest.mark.parametrize(("in_image", "local", "leader", "expected"), [
    (True, LEADER, False, (LEADER, ErrorCode.NONE)),
    (True, FOLLOWER, False, (FOLLOWER, ErrorCode.NONE)),
    (True, LEADER, True, (LEADER, ErrorCode.NONE)),
    (True, FOLLOWER, True, (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)),
    (True, None, False, (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)),
    (True, None, True, (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)),
    (False, None, False, (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)),
    (False, None, True, (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)),
    # a replica the metadata no longer has (its deletion not applied yet): served while hosted
    (False, LEADER, True, (LEADER, ErrorCode.NONE)),
    (False, FOLLOWER, True, (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)),
])
def test_partition_or_error(in_image: bool, local: Any, leader: bool, expected: tuple[Any, ErrorCode]) -> None:
    broker = _broker({("t", 0)} if in_image else set(), {("t", 0): local} if local else {})
    assert partition_or_error(broker, "t", 0, leader=leader) == expected
    # another index of the same topic is never confused with this one
    assert partition_or_error(broker, "t", 1, leader=leader) == (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
