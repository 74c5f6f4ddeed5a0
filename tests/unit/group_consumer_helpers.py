"""Client and checks shared by the group coordinator unit tests (moved from test_group_consumer)."""

from __future__ import annotations

import uuid

from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest, TopicPartitions


class Client:
    """A well-behaved KIP-848 member: owns exactly what it was last told."""

    def __init__(self, manager: ConsumerGroupManager, member_id: str, topics: list[str]) -> None:
        self.manager, self.member_id, self.topics = manager, member_id, topics
        self.epoch = 0
        self.owned: dict[uuid.UUID, set[int]] | None = None

    def heartbeat(self, leave: bool = False):
        owned = None if self.owned is None else [
            TopicPartitions(topic_id=t, partitions=sorted(ps)) for t, ps in self.owned.items() if ps]
        request = ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=self.member_id, member_epoch=-1 if leave else self.epoch,
            rebalance_timeout_ms=60000 if self.epoch == 0 else -1,
            subscribed_topic_names=self.topics if self.epoch == 0 else None,
            topic_partitions=[] if self.epoch == 0 else owned)
        response = self.manager.heartbeat(request, 1, "client", "/h")
        assert response.error_code == ErrorCode.NONE, response
        self.epoch = response.member_epoch
        if response.assignment is not None:
            self.owned = {t.topic_id: set(t.partitions) for t in response.assignment.topic_partitions}
        elif self.owned is None:
            self.owned = {}
        return response


def assert_exclusive(clients) -> None:
    seen: set = set()
    for c in clients:
        for t, ps in (c.owned or {}).items():
            for p in ps:
                assert (t, p) not in seen, f"partition {t}:{p} owned twice"
                seen.add((t, p))
