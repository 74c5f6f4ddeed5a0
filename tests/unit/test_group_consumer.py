"""KIP-848 reconciliation without a broker: random heartbeat orders never give a partition to two
members at once, and every schedule converges to the target assignment."""

from __future__ import annotations

import random

import pytest
from group_fakes import FakeCoordinator

from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from tests.unit.group_consumer_helpers import Client, assert_exclusive


def make(partitions: dict[str, int]):
    coordinator = FakeCoordinator()
    for name, count in partitions.items():
        coordinator.broker.image.add(name, count)
    return coordinator, ConsumerGroupManager(coordinator)


@pytest.mark.parametrize("seed", range(25))
def test_random_schedules_are_exclusive_and_converge(seed):
    rng = random.Random(seed)
    topics = {"a": rng.randint(1, 8), "b": rng.randint(1, 8)}
    coordinator, manager = make(topics)
    clients: list[Client] = []
    total = sum(topics.values())
    for step in range(120):
        action = rng.random()
        if (action < 0.15 and len(clients) < 5) or not clients:
            c = Client(manager, f"m{step}", sorted(topics))
            clients.append(c)
            c.heartbeat()
        elif action < 0.2 and len(clients) > 1:
            c = clients.pop(rng.randrange(len(clients)))
            c.heartbeat(leave=True)
        else:
            rng.choice(clients).heartbeat()
        assert_exclusive(clients)
    for _ in range(4):  # let everyone catch up
        for c in clients:
            c.heartbeat()
            assert_exclusive(clients)
    group = coordinator.groups["g"]
    assert group.state_name() == "Stable"
    assert {c.epoch for c in clients} == {group.assignment_epoch}
    assert sum(len(ps) for c in clients for ps in c.owned.values()) == total
    sizes = sorted(sum(len(ps) for ps in c.owned.values()) for c in clients)
    assert sizes[-1] - sizes[0] <= 1


def test_session_timeout_and_revocation_timeout_remove_members():
    coordinator, manager = make({"t": 4})
    a, b = Client(manager, "a", ["t"]), Client(manager, "b", ["t"])
    a.heartbeat()
    b.heartbeat()
    coordinator.timer.advance(9999)
    a.heartbeat()  # a must revoke two partitions but never acknowledges
    coordinator.timer.advance(1)  # b's session (10 s) expires: b never heartbeated again
    assert "b" not in coordinator.groups["g"].members
    a.heartbeat()
    assert coordinator.groups["g"].members["a"].pending_revocation == {}
    assert a.owned and sum(len(ps) for ps in a.owned.values()) == 4


def test_fenced_epochs():
    coordinator, manager = make({"t": 2})
    a = Client(manager, "a", ["t"])
    a.heartbeat()
    request = ConsumerGroupHeartbeatRequest(group_id="g", member_id="a", member_epoch=a.epoch + 5,
                                            rebalance_timeout_ms=-1)
    assert manager.heartbeat(request, 1, "c", "/h").error_code == ErrorCode.FENCED_MEMBER_EPOCH
    request.member_epoch = 0
    request.rebalance_timeout_ms = 1000
    request.subscribed_topic_names = ["t"]
    request.topic_partitions = []
    rejoined = manager.heartbeat(request, 1, "c", "/h")
    assert rejoined.error_code == 0 and rejoined.member_epoch > a.epoch
