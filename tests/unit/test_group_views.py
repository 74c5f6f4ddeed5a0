"""Groups read at the high watermark of their partition (group_views): Kafka's describe and list
operations read the coordinator's timeline at the last committed offset, so a KIP-848 group's state
appended but not replicated is not shown. The fake coordinator's high watermark is held while the
group changes; reads inside ``views.at_committed`` must see the group exactly as it was when the
records below the high watermark were the last ones, and the live state afterwards."""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import pytest

from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from tests.unit.group_consumer_helpers import Client
from tests.unit.group_write_failure_helpers import FailingCoordinator


def make(partitions: dict[str, int]) -> tuple[FailingCoordinator, ConsumerGroupManager]:
    coordinator = FailingCoordinator()
    for name, count in partitions.items():
        coordinator.broker.image.add(name, count)
    return coordinator, ConsumerGroupManager(coordinator)


def groups(coordinator: FailingCoordinator) -> dict[str, Any]:
    return {gid: dataclasses.asdict(g) for gid, g in coordinator.groups.items()}


def committed(coordinator: FailingCoordinator, ids: list[str] | None = None) -> dict[str, Any]:
    with coordinator.views.at_committed(ids):
        return groups(coordinator)


def test_a_member_joining_is_not_shown_until_its_records_are_replicated() -> None:
    coordinator, manager = make({"t": 4})
    a = Client(manager, "a", ["t"])
    a.heartbeat()
    replicated = groups(coordinator)
    coordinator.high_watermark = len(coordinator.records)  # the followers stop
    b = Client(manager, "b", ["t"])
    b.heartbeat()
    a.heartbeat()
    live = groups(coordinator)
    assert set(live["g"]["members"]) == {"a", "b"} and live["g"]["group_epoch"] == 2
    assert committed(coordinator, ["g"]) == replicated
    assert committed(coordinator) == replicated  # (every group: ListGroups)
    assert groups(coordinator) == live  # the live state is back, the very same objects
    coordinator.high_watermark = None  # replicated
    assert committed(coordinator, ["g"]) == live
    assert coordinator.views.pending("g") is False


def test_a_group_created_by_an_unreplicated_heartbeat_does_not_exist_yet() -> None:
    coordinator, manager = make({"t": 2})
    coordinator.high_watermark = 0
    Client(manager, "a", ["t"]).heartbeat()
    assert "g" in coordinator.groups
    assert committed(coordinator, ["g"]) == {}
    assert "g" in coordinator.groups


def test_steady_heartbeats_keep_nothing_and_a_failed_append_adds_no_snapshot() -> None:
    coordinator, manager = make({"t": 2})
    a = Client(manager, "a", ["t"])
    for _ in range(3):
        a.heartbeat()
    coordinator.high_watermark = len(coordinator.records)
    written = len(coordinator.records)
    for _ in range(5):
        a.heartbeat()
    assert len(coordinator.records) == written and not coordinator.views.pending("g")
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    response = manager.heartbeat(ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="b", member_epoch=0, rebalance_timeout_ms=60000, subscribed_topic_names=["t"],
        topic_partitions=[]), 1, "client", "/h")
    assert response.error_code == ErrorCode.NOT_COORDINATOR
    assert not coordinator.views.pending("g")


@pytest.mark.parametrize("seed", range(8))
def test_every_high_watermark_reads_the_state_of_its_last_records(seed: int) -> None:
    """Random joins, heartbeats, leaves, session expiries and failed appends with the high
    watermark held at 0: for every length L of the log, the read at high watermark L is the group
    as it was before the first operation whose records went past L."""
    rng = random.Random(seed)
    topics = {"a": rng.randint(1, 6), "b": rng.randint(1, 6)}
    coordinator, manager = make(topics)
    coordinator.high_watermark = 0
    expected: dict[int, dict[str, Any]] = {}
    clients: list[Client] = []
    for step in range(80):
        before, length = copy.deepcopy(groups(coordinator)), len(coordinator.records)
        coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER if rng.random() < 0.2 else None
        action = rng.random()
        try:
            if (action < 0.2 and len(clients) < 5) or not clients:
                c = Client(manager, f"m{step}", sorted(topics))
                c.heartbeat()
                clients.append(c)
            elif action < 0.3 and len(clients) > 1:
                c = clients[rng.randrange(len(clients))]
                c.heartbeat(leave=True)
                clients.remove(c)
            elif action < 0.35:
                coordinator.error = None
                coordinator.timer.advance(rng.choice([1000, 11000]))  # sessions may expire
                alive = set(coordinator.groups["g"].members) if "g" in coordinator.groups else set()
                clients = [c for c in clients if c.member_id in alive]
            else:
                rng.choice(clients).heartbeat()
        except AssertionError:  # (Client asserts NONE: the append failed)
            assert coordinator.error is not None
        if len(coordinator.records) > length:
            expected[length] = before
    final = groups(coordinator)
    assert expected, "nothing was written"
    for length, state in sorted(expected.items()):
        coordinator.high_watermark = length
        assert committed(coordinator, ["g"]) == state, f"at high watermark {length}"
        coordinator.high_watermark = 0
        assert groups(coordinator) == final
    coordinator.high_watermark = len(coordinator.records)
    assert committed(coordinator, ["g"]) == final


def test_a_streams_group_is_read_at_the_high_watermark_too() -> None:
    from tests.unit.streams_write_failure_helpers import heartbeat as streams_heartbeat
    from tests.unit.streams_write_failure_helpers import make as make_streams

    coordinator, manager = make_streams()
    assert streams_heartbeat(manager, "a", 0).error_code == ErrorCode.NONE
    replicated = groups(coordinator)
    coordinator.high_watermark = len(coordinator.records)
    assert streams_heartbeat(manager, "b", 0).error_code == ErrorCode.NONE
    assert set(coordinator.groups["app"].members) == {"a", "b"}
    assert committed(coordinator, ["app"]) == replicated
    coordinator.high_watermark = None
    assert set(committed(coordinator, ["app"])["app"]["members"]) == {"a", "b"}


def test_an_unloaded_partition_forgets_the_snapshots_of_its_groups() -> None:
    coordinator, manager = make({"t": 2})
    coordinator.high_watermark = 0
    Client(manager, "a", ["t"]).heartbeat()
    assert coordinator.views.pending("g")
    coordinator.views.forget_where(lambda group_id: group_id == "g")
    assert not coordinator.views.pending("g") and "g" in committed(coordinator)


def test_a_share_group_is_read_at_the_high_watermark_too() -> None:
    from kbroker.coordinator.share_group import ShareGroupManager
    from kbroker_protocol.messages.share_group_heartbeat import ShareGroupHeartbeatRequest

    coordinator = FailingCoordinator()
    coordinator.broker.config.update({"group.share.max.size": 100, "group.share.heartbeat.interval.ms": 5000,
                                      "group.share.session.timeout.ms": 45000})
    coordinator.broker.image.add("t", 2)
    manager = ShareGroupManager(coordinator)

    def heartbeat(member_id: str) -> Any:
        return manager.heartbeat(ShareGroupHeartbeatRequest(group_id="s", member_id=member_id, member_epoch=0,
                                                            subscribed_topic_names=["t"]), "client", "/h")

    assert heartbeat("a").error_code == ErrorCode.NONE
    replicated = groups(coordinator)
    coordinator.high_watermark = len(coordinator.records)
    assert heartbeat("b").error_code == ErrorCode.NONE
    assert set(coordinator.groups["s"].members) == {"a", "b"}
    assert committed(coordinator, ["s"]) == replicated
    coordinator.high_watermark = None
    assert set(committed(coordinator, ["s"])["s"]["members"]) == {"a", "b"}


def test_replicated_snapshots_of_groups_that_write_no_more_are_dropped_without_a_read() -> None:
    """A group that stops writing (a deleted one above all) must not keep its snapshots once they
    are replicated: later notes of other groups sweep them, no describe or list needed."""
    from types import SimpleNamespace

    from kbroker.coordinator.group_views import CommittedViews

    hw = {"value": 0}
    views = CommittedViews({}, lambda _group_id: hw["value"])
    for i in range(200):
        views.note(SimpleNamespace(group_id=f"quiet-{i}"), i + 1)  # type: ignore[arg-type]
    assert len(views._pending) == 200
    hw["value"] = 200  # everything replicated; none of these groups writes again
    for i in range(100):
        views.note(SimpleNamespace(group_id="busy"), 201 + i)  # type: ignore[arg-type]
    assert set(views._pending) == {"busy"}
