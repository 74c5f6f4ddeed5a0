"""A KIP-848 consumer group operation whose records cannot be appended to __consumer_offsets leaves
the group as it was, timers included, as Kafka's coordinator runtime reverts its timeline state to
the failed batch's base offset (kbroker applied the change in memory first and kept it when the
append failed, so memory and log disagreed). The heartbeat gets the append's error as Kafka
normalises it; a timer's removal of a member is tried again after Kafka's timer retry backoff."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from tests.unit.group_consumer_helpers import Client, assert_exclusive
from tests.unit.group_write_failure_helpers import FailingCoordinator, state


def make(partitions: dict[str, int]) -> tuple[FailingCoordinator, ConsumerGroupManager]:
    coordinator = FailingCoordinator()
    for name, count in partitions.items():
        coordinator.broker.image.add(name, count)
    return coordinator, ConsumerGroupManager(coordinator)


def join(manager: ConsumerGroupManager, member_id: str, topics: list[str] | None = None,
         regex: str | None = None) -> Any:
    return manager.heartbeat(ConsumerGroupHeartbeatRequest(
        group_id="g", member_id=member_id, member_epoch=0, rebalance_timeout_ms=60000, subscribed_topic_names=topics,
        subscribed_topic_regex=regex, topic_partitions=[]), 1, "client", "/h")


@pytest.mark.parametrize(("error", "answer"), [
    (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_COORDINATOR),
    (ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.NOT_COORDINATOR),
    (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.UNKNOWN_SERVER_ERROR),
])
def test_a_failed_join_creates_no_group_and_no_timer(error: ErrorCode, answer: ErrorCode) -> None:
    coordinator, manager = make({"t": 2})
    coordinator.error = error
    response = join(manager, "a", ["t"])
    assert (response.error_code, response.member_epoch) == (answer, 0)
    assert coordinator.groups == {} and coordinator.timer.timers == {} and coordinator.records == []
    coordinator.error = None
    assert (join(manager, "a", ["t"]).error_code, coordinator.groups["g"].group_epoch) == (ErrorCode.NONE, 1)


def test_failed_heartbeats_leave_the_group_as_it_was() -> None:
    coordinator, manager = make({"t": 4, "u-1": 1})
    a, b = Client(manager, "a", ["t"]), Client(manager, "b", ["t"])
    for c in (a, b, a, b):
        c.heartbeat()
    coordinator.timer.advance(1000)
    before = state(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    # a new member (a new group epoch, a new target assignment, revocations for a and b)...
    assert join(manager, "c", ["t"]).error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    # ... a member subscribing to a regular expression (resolved and persisted with the heartbeat)...
    assert join(manager, "d", regex="u-.*").error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    # ... a member leaving
    left = manager.heartbeat(ConsumerGroupHeartbeatRequest(group_id="g", member_id="a", member_epoch=-1), 1,
                             "client", "/h")
    assert left.error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    coordinator.error = None
    a.heartbeat()
    assert a.epoch == coordinator.groups["g"].group_epoch  # nothing happened meanwhile
    assert join(manager, "d", regex="u-.*").error_code == ErrorCode.NONE
    coordinator.timer.advance(0)  # the refresh runs after the heartbeat (asynchronously, as Kafka's)
    assert set(coordinator.groups["g"].resolved_regexes) == {"u-.*"}


def test_a_failed_removal_by_a_timer_keeps_the_member_and_is_tried_again() -> None:
    coordinator, manager = make({"t": 4})
    a, b = Client(manager, "a", ["t"]), Client(manager, "b", ["t"])
    a.heartbeat()
    b.heartbeat()
    coordinator.timer.advance(9000)
    a.heartbeat()
    coordinator.error = ErrorCode.NOT_ENOUGH_REPLICAS
    coordinator.timer.advance(1000)  # b's session expires; its removal cannot be written
    group = coordinator.groups["g"]
    assert set(group.members) == {"a", "b"}
    coordinator.timer.advance(499)
    assert set(group.members) == {"a", "b"}
    coordinator.error = None
    coordinator.timer.advance(1)  # Kafka's timer retry backoff: 500 ms
    assert set(group.members) == {"a"}
    a.heartbeat()
    a.heartbeat()
    assert sum(len(ps) for ps in (a.owned or {}).values()) == 4


@pytest.mark.parametrize("seed", range(10))
def test_random_schedules_with_failed_writes_stay_exclusive_and_converge(seed: int) -> None:
    rng = random.Random(seed)
    topics = {"a": rng.randint(1, 8), "b": rng.randint(1, 8)}
    coordinator, manager = make(topics)
    clients: list[Client] = []
    for step in range(120):
        failing = rng.random() < 0.3
        before = state(coordinator)
        coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER if failing else None
        action = rng.random()
        if (action < 0.15 and len(clients) < 5) or not clients:
            c = Client(manager, f"m{step}", sorted(topics))
            if failing:
                assert join(manager, c.member_id, sorted(topics)).error_code == ErrorCode.NOT_COORDINATOR
            else:
                clients.append(c)
                c.heartbeat()
        elif action < 0.2 and len(clients) > 1 and not failing:
            c = clients.pop(rng.randrange(len(clients)))
            c.heartbeat(leave=True)
        else:
            c = rng.choice(clients)
            if failing:
                try:
                    c.heartbeat()
                except AssertionError:  # (Client asserts NONE)
                    pass
            else:
                c.heartbeat()
        if failing:
            assert state(coordinator) == before
        assert_exclusive(clients)
    coordinator.error = None
    for _ in range(4):
        for c in clients:
            c.heartbeat()
            assert_exclusive(clients)
    group = coordinator.groups["g"]
    assert group.state_name() == "Stable"
    assert sum(len(ps) for c in clients for ps in (c.owned or {}).values()) == sum(topics.values())


def test_failed_writes_of_classic_members_hosted_by_the_group_change_nothing() -> None:
    """JoinGroup, Heartbeat and LeaveGroup of classic consumers in a consumer group: a join, a
    heartbeat that moves the group to a new target, a leave of two members (one batch: neither
    leaves) whose records cannot be appended leave the group as it was and answer the error."""
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    coordinator, manager = make({"t": 4})
    coordinator.broker.config.update({"group.min.session.timeout.ms": 6000, "group.max.session.timeout.ms": 60000})
    metadata = b"\x00\x00" + ConsumerProtocolSubscription(topics=["t"]).encode(0)

    def classic_join(member_id: str) -> Any:
        return manager.classic_join(coordinator.groups["g"], member_id=member_id, group_instance_id=None,
                                    protocol_type="consumer", protocols=[("range", metadata)],
                                    session_timeout_ms=10000, rebalance_timeout_ms=10000, client_id="c",
                                    client_host="/h", require_known_member_id=False)

    a = Client(manager, "a", ["t"])
    a.heartbeat()
    joined = classic_join("c1")
    assert joined.error_code == ErrorCode.NONE
    before = state(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    refused = classic_join("c2")
    assert (refused.error_code, refused.member_id) == (ErrorCode.NOT_COORDINATOR, "c2")
    assert state(coordinator) == before
    coordinator.broker.image.add("t2", 1)  # (not subscribed: no new epoch)
    coordinator.groups["g"].members["c1"].subscribed_topic_names = ["t", "t2"]  # a subscription change
    before = state(coordinator)
    assert manager.classic_heartbeat(coordinator.groups["g"], member_id="c1", generation=joined.generation_id,
                                     group_instance_id=None) == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    assert manager.classic_leave(coordinator.groups["g"], [("c1", None), ("a", None)]) == [
        ErrorCode.NOT_COORDINATOR, ErrorCode.NOT_COORDINATOR]
    assert state(coordinator) == before
    coordinator.error = None
    assert manager.classic_leave(coordinator.groups["g"], [("c1", None), ("a", None)]) == [
        ErrorCode.NONE, ErrorCode.NONE]
    assert coordinator.groups["g"].members == {}


def test_a_failed_static_replacement_leaves_the_departed_member_as_it_was() -> None:
    """A static member that left temporarily (-2) is taken over by a new member id with its
    instance id: that join changes the old member in place; a failed write undoes it."""
    coordinator, manager = make({"t": 2})

    def heartbeat(member_id: str, epoch: int, **fields: Any) -> Any:
        return manager.heartbeat(ConsumerGroupHeartbeatRequest(group_id="g", member_id=member_id,
                                                               member_epoch=epoch, **fields), 1, "client", "/h")

    joined = heartbeat("s1", 0, instance_id="i", rebalance_timeout_ms=60000, subscribed_topic_names=["t"],
                       topic_partitions=[])
    assert joined.error_code == ErrorCode.NONE
    assert heartbeat("s1", -2, instance_id="i").error_code == ErrorCode.NONE
    before = state(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    replacing = heartbeat("s2", 0, instance_id="i", rebalance_timeout_ms=60000, subscribed_topic_names=["t"],
                          topic_partitions=[])
    assert replacing.error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    coordinator.error = None
    replaced = heartbeat("s2", 0, instance_id="i", rebalance_timeout_ms=60000, subscribed_topic_names=["t"],
                         topic_partitions=[])
    assert replaced.error_code == ErrorCode.NONE
    assert set(coordinator.groups["g"].members) == {"s2"}
