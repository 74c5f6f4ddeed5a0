"""KIP-848 regular expression subscriptions resolved asynchronously, in batches, as Kafka 4.4's
GroupMetadataManager (``maybeUpdateRegularExpressions``, ``handleRegularExpressionsResult``): what
assignment a member gets and when, on the fake clock of the unit fakes (the refresh is a timer
of delay 0 that runs once the heartbeat is answered: ``timer.advance(0)``)."""

from __future__ import annotations

from typing import Any

from group_fakes import FakeCoordinator

from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker.coordinator.group_regex import REGEX_BATCH_REFRESH_MIN_INTERVAL_MS
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest, TopicPartitions

REFRESH = GroupTimerKey("cg-regex", "g")


class Member:
    """A KIP-848 member that owns what it was last told and sends a full request when it joins."""

    def __init__(self, manager: ConsumerGroupManager, member_id: str, *, regex: str | None = None,
                 topics: list[str] | None = None) -> None:
        self.manager, self.member_id, self.regex, self.topics = manager, member_id, regex, topics
        self.epoch = 0
        self.owned: dict[Any, list[int]] = {}

    def heartbeat(self, *, regex: str | None = None) -> Any:
        joining = self.epoch == 0
        if regex is not None:
            self.regex = regex
        response = self.manager.heartbeat(ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=self.member_id, member_epoch=self.epoch,
            rebalance_timeout_ms=60000 if joining else -1,
            subscribed_topic_names=self.topics if joining else None,
            subscribed_topic_regex=regex if regex is not None else (self.regex if joining else None),
            topic_partitions=[TopicPartitions(topic_id=t, partitions=ps) for t, ps in self.owned.items() if ps]),
            1, "client", "/h")
        assert response.error_code == ErrorCode.NONE, response
        self.epoch = response.member_epoch
        if response.assignment is not None:
            self.owned = {t.topic_id: sorted(t.partitions) for t in response.assignment.topic_partitions}
        return response

    def topics_owned(self, coordinator: FakeCoordinator) -> dict[str, list[int]]:
        image = coordinator.broker.image
        return {image.topic_by_id(t).name: ps for t, ps in sorted(self.owned.items(), key=str) if ps}


def make(**topics: int) -> tuple[FakeCoordinator, ConsumerGroupManager]:
    coordinator = FakeCoordinator(now=100_000)
    for name, count in topics.items():
        coordinator.broker.image.add(name, count)
    manager = ConsumerGroupManager(coordinator)
    # as the composition root hooks the coordinator's on_metadata_record into the image
    coordinator.broker.image.listeners.append(manager.regexes.on_metadata_record)
    return coordinator, manager


def test_a_new_regex_is_resolved_after_the_heartbeat_and_assigned_at_the_next_one() -> None:
    coordinator, manager = make(foo=4, bar=2)
    a = Member(manager, "a", topics=["bar"])
    a.heartbeat()
    a.heartbeat()
    group = coordinator.groups["g"]
    epoch = group.group_epoch
    b = Member(manager, "b", regex="fo.*")
    joined = b.heartbeat()
    # Kafka: no new group epoch for an expression not resolved yet; nothing assigned from it.
    assert (joined.member_epoch, b.owned) == (epoch, {})
    assert group.group_epoch == epoch and group.resolved_regexes == {}
    assert REFRESH in coordinator.timer.timers
    coordinator.timer.advance(0)  # the refresh: the resolution is written with a new group epoch
    assert set(group.resolved_regexes["fo.*"].topics) == {"foo"} and group.group_epoch == epoch + 1
    b.heartbeat()
    assert b.epoch == epoch + 1 and b.topics_owned(coordinator) == {"foo": [0, 1, 2, 3]}


def test_a_member_joining_with_a_resolved_regex_is_assigned_at_once() -> None:
    coordinator, manager = make(foo=4)
    a = Member(manager, "a", regex="fo.*")
    a.heartbeat()
    coordinator.timer.advance(0)
    a.heartbeat()
    a.heartbeat()
    epoch = coordinator.groups["g"].group_epoch
    b = Member(manager, "b", regex="fo.*")
    b.heartbeat()  # the group's resolution of the expression: a new epoch and target now
    assert b.epoch == epoch + 1 and REFRESH not in coordinator.timer.timers
    a.heartbeat()
    a.heartbeat()
    b.heartbeat()
    assert sum(len(ps) for ps in a.owned.values()) + sum(len(ps) for ps in b.owned.values()) == 4
    assert b.owned  # (the uniform assignor shares the partitions)


def test_changing_to_an_unresolved_regex_gives_up_the_partitions_until_it_is_resolved() -> None:
    coordinator, manager = make(foo=3, bar=2)
    a = Member(manager, "a", regex="foo")
    a.heartbeat()
    coordinator.timer.advance(0)
    a.heartbeat()
    assert a.topics_owned(coordinator) == {"foo": [0, 1, 2]}
    epoch = a.epoch
    coordinator.timer.advance(6000)
    a.heartbeat()
    coordinator.timer.advance(REGEX_BATCH_REFRESH_MIN_INTERVAL_MS - 6000 + 1)
    changed = a.heartbeat(regex="foo|bar")
    # Kafka's updateCurrentAssignment: an unresolved expression subscribes to nothing, so the
    # member revokes what it owns at once, keeping its epoch.
    assert changed.member_epoch == epoch and a.owned == {}
    coordinator.timer.advance(0)
    a.heartbeat()
    assert a.epoch == epoch + 1 and a.topics_owned(coordinator) == {"bar": [0, 1], "foo": [0, 1, 2]}
    # Dropping the expression for topic names bumps the group epoch at once.
    a.heartbeat(regex="")
    assert coordinator.groups["g"].resolved_regexes == {}


def test_a_new_topic_is_picked_up_by_a_heartbeat_at_least_10_s_after_the_last_refresh() -> None:
    coordinator, manager = make(foo=2)
    a = Member(manager, "a", regex="foo.*")
    a.heartbeat()
    coordinator.timer.advance(0)
    a.heartbeat()
    assert a.topics_owned(coordinator) == {"foo": [0, 1]}
    coordinator.timer.advance(5000)
    coordinator.broker.image.add("foo-2", 1)
    a.heartbeat()  # within 10 s of the last refresh: not resolved again
    assert REFRESH not in coordinator.timer.timers
    coordinator.timer.advance(REGEX_BATCH_REFRESH_MIN_INTERVAL_MS - 5000)
    a.heartbeat()  # exactly 10 s: still not
    assert REFRESH not in coordinator.timer.timers and a.topics_owned(coordinator) == {"foo": [0, 1]}
    coordinator.timer.advance(1)
    a.heartbeat()  # past 10 s: the refresh is asked for, and runs after the heartbeat
    assert REFRESH in coordinator.timer.timers and a.topics_owned(coordinator) == {"foo": [0, 1]}
    coordinator.timer.advance(0)
    a.heartbeat()
    assert a.topics_owned(coordinator) == {"foo": [0, 1], "foo-2": [0]}


def test_one_refresh_at_a_time_resolves_the_expressions_subscribed_when_it_was_asked_for() -> None:
    """Kafka's testConsumerGroupMemberJoinsWithRegexAndUpdatesItBeforeResolutionCompleted: a
    member that changes its expression while a refresh is under way waits for the next refresh
    (10 s after the last one)."""
    coordinator, manager = make(foo=2, bar=2)
    a = Member(manager, "a", regex="foo")
    a.heartbeat()
    a.heartbeat(regex="bar")  # before the refresh ran: no second refresh while one is under way
    coordinator.timer.advance(0)
    group = coordinator.groups["g"]
    assert group.resolved_regexes == {}  # "foo" is no longer subscribed: nothing written
    a.heartbeat()
    assert REFRESH in coordinator.timer.timers  # nothing resolved yet: asked for again at once
    coordinator.timer.advance(0)
    assert set(group.resolved_regexes) == {"bar"}
    a.heartbeat()
    assert a.topics_owned(coordinator) == {"bar": [0, 1]}


def test_the_first_member_of_a_new_group_with_a_regex_gets_epoch_1_then_its_partitions_at_epoch_2() -> None:
    """As Kafka 4.4 (whose groups start at epoch 1): the member is not left at epoch 0."""
    coordinator, manager = make(foo=2)
    a = Member(manager, "a", regex="foo")
    joined = a.heartbeat()
    assert (joined.member_epoch, a.owned) == (1, {})
    coordinator.timer.advance(0)
    a.heartbeat()
    assert a.epoch == 2 and a.topics_owned(coordinator) == {"foo": [0, 1]}


def test_a_refresh_is_asked_for_once_group_consumer_regex_refresh_interval_ms_has_passed() -> None:
    """Kafka's condition 3.3 of maybeUpdateRegularExpressions, its interval the (internal) config
    key group.consumer.regex.refresh.interval.ms (default 10 minutes, at least 10 s)."""
    for interval, refreshed in ((20_000, True), (600_000, False)):
        coordinator, manager = make(foo=2)
        coordinator.broker.config["group.consumer.regex.refresh.interval.ms"] = interval
        a = Member(manager, "a", regex="foo.*")
        a.heartbeat()
        coordinator.timer.advance(0)
        a.heartbeat()
        for _ in range(4):  # (within the session timeout, 10 s here)
            coordinator.timer.advance(5_000)
            a.heartbeat()  # the interval (or less) since the refresh, no new topic: not refreshed
        assert REFRESH not in coordinator.timer.timers
        coordinator.timer.advance(1)
        a.heartbeat()
        assert (REFRESH in coordinator.timer.timers) is refreshed, interval


class _CoordinatorBroker:
    """What the group coordinator's constructor and its unload read of the broker."""

    def __init__(self, image: Any) -> None:
        self.config = {"group.min.session.timeout.ms": 6000, "group.max.session.timeout.ms": 1800000,
                       "group.initial.rebalance.delay.ms": 0, "group.max.size": 100}
        self.image = image
        self.authorizer = None


def test_a_group_unloaded_while_its_refresh_is_under_way_leaves_nothing_behind() -> None:
    """The coordinator's unload (its __consumer_offsets partition led elsewhere) cancels the
    group's timers, the refresh among them: the group's entry of the refreshes under way goes too
    (it held the unloaded group object)."""
    from kbroker.coordinator.group_coordinator import GroupCoordinator

    fake, manager = make(foo=2)
    a = Member(manager, "a", regex="fo.*")
    a.heartbeat()
    assert REFRESH in fake.timer.timers and manager._resolving == {"g": fake.groups["g"]}
    coordinator = GroupCoordinator(_CoordinatorBroker(fake.broker.image))
    coordinator.groups = fake.groups
    coordinator.consumer = manager
    coordinator.partition_for = lambda group_id: 0  # type: ignore[method-assign]
    coordinator.led_partitions.add(0)
    coordinator.on_resignation(0)
    assert coordinator.groups == {} and manager._resolving == {}
