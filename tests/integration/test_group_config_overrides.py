"""A consumer group's own configs (IncrementalAlterConfigs on its GROUP resource, KIP-848) override
the broker's for that group, as in Kafka 4.4's GroupMetadataManager (consumerGroupSessionTimeoutMs,
consumerGroupHeartbeatIntervalMs): from each member's next heartbeat the response carries the
group's consumer.heartbeat.interval.ms and the member's session timer is re-armed with the group's
consumer.session.timeout.ms. On a manual clock (``kbroker.clock=manual``)."""

from __future__ import annotations

import uuid

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_describe import ConsumerGroupDescribeRequest
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from tests.integration.group_config_helpers import (
    DEFAULT_CONFIG_SOURCE,
    GROUP_CONFIG_SOURCE,
    describe_group_configs,
    set_group_configs,
)
from tests.integration.groups_protocol_helpers import create_topic

CONFIG = {
    "group.consumer.heartbeat.interval.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.session.timeout.ms": "30000",
    "group.consumer.min.session.timeout.ms": "5000",
}


@pytest.fixture(scope="module")
def manual():
    with BrokerThread(config=CONFIG, clock="manual") as b:
        yield b


@pytest.fixture
def wire(manual):
    w = Wire(manual.bootstrap_servers)
    yield w
    w.close()


def hb(wire, group: str, member_id: str, epoch: int, topics: list[str] | None = None):
    resp = wire.call(ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member_id, member_epoch=epoch, rebalance_timeout_ms=30000 if epoch == 0 else -1,
        subscribed_topic_names=topics, topic_partitions=[] if epoch == 0 else None), 1)
    return resp


def members(wire, group: str) -> list[str]:
    described = wire.call(ConsumerGroupDescribeRequest(group_ids=[group]), 1).groups[0]
    assert described.error_code == ErrorCode.NONE
    return [m.member_id for m in described.members]


def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"cg-{suffix}", f"ct-{suffix}"


def test_group_heartbeat_interval_is_returned_from_the_next_heartbeat(manual, wire):
    group, topic = names()
    create_topic(manual, topic, 2)
    member = uuid.uuid4().hex
    joined = hb(wire, group, member, 0, [topic])
    assert joined.error_code == ErrorCode.NONE, joined.error_message
    assert joined.heartbeat_interval_ms == 1000  # the broker's group.consumer.heartbeat.interval.ms
    set_group_configs(wire, group, {"consumer.heartbeat.interval.ms": "2500"})
    assert describe_group_configs(wire, group)["consumer.heartbeat.interval.ms"] == ("2500", GROUP_CONFIG_SOURCE)
    again = hb(wire, group, member, joined.member_epoch)
    assert (again.error_code, again.heartbeat_interval_ms) == (ErrorCode.NONE, 2500)
    # Another group keeps the broker's value.
    other, _ = names()
    joined_other = hb(wire, other, uuid.uuid4().hex, 0, [topic])
    assert joined_other.heartbeat_interval_ms == 1000
    # Deleting the override gives the broker's value back.
    set_group_configs(wire, group, {"consumer.heartbeat.interval.ms": None})
    assert describe_group_configs(wire, group)["consumer.heartbeat.interval.ms"] == ("1000", DEFAULT_CONFIG_SOURCE)
    assert hb(wire, group, member, again.member_epoch).heartbeat_interval_ms == 1000


def test_member_is_fenced_after_the_groups_session_timeout(manual, wire):
    group, topic = names()
    create_topic(manual, topic, 1)
    member = uuid.uuid4().hex
    joined = hb(wire, group, member, 0, [topic])
    assert joined.error_code == ErrorCode.NONE, joined.error_message
    # The join armed the session with the broker's 30 s; the group's 8 s applies from the next heartbeat.
    set_group_configs(wire, group, {"consumer.session.timeout.ms": "8000"})
    manual.advance(20_000)
    assert members(wire, group) == [member]
    again = hb(wire, group, member, joined.member_epoch)
    assert again.error_code == ErrorCode.NONE, again.error_message
    manual.advance(7_999)
    assert members(wire, group) == [member]
    manual.advance(1)
    wait_until(lambda: members(wire, group) == [], message="the member fenced after the group's session timeout")
    assert hb(wire, group, member, again.member_epoch).error_code == ErrorCode.UNKNOWN_MEMBER_ID

