"""A streams group's own configs (IncrementalAlterConfigs on its GROUP resource, KIP-1071) override
the broker's for that group, as in Kafka 4.4's GroupMetadataManager: streams.heartbeat.interval.ms,
streams.task.offset.interval.ms and streams.acceptable.recovery.lag (in each heartbeat response),
streams.session.timeout.ms (the session timer each heartbeat re-arms), streams.num.standby.replicas
(a change bumps the group epoch at the next heartbeat, the new target has the standbys) and
streams.initial.rebalance.delay.ms. On a manual clock."""

from __future__ import annotations

import uuid

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.streams_group_describe import StreamsGroupDescribeRequest
from kbroker_protocol.messages.streams_group_heartbeat import TaskIds
from tests.integration.group_config_helpers import set_group_configs
from tests.streams.streams_group_helpers import (
    CONFIG,
    create_topic,
    hb,
    join_ready,
    names,
    statuses,
    tasks_of,
    word_count_topology,
)

ASSIGNMENT_DELAYED = 5
BROKER = dict(CONFIG, **{"group.streams.session.timeout.ms": "30000",
                         "group.streams.min.session.timeout.ms": "5000"})


@pytest.fixture(scope="module")
def manual():
    with BrokerThread(config=BROKER, clock="manual") as b:
        yield b


@pytest.fixture
def wire(manual):
    w = Wire(manual.bootstrap_servers)
    yield w
    w.close()


def described(wire, group: str):
    return wire.call(StreamsGroupDescribeRequest(group_ids=[group]), 1).groups[0]


def test_group_heartbeat_interval_and_session_timeout(manual, wire):
    app, source = names()
    create_topic(manual, source, 2)
    member = uuid.uuid4().hex
    state = join_ready(wire, app, member, word_count_topology(app, source))
    assert state["r"].heartbeat_interval_ms == 300  # the broker's group.streams.heartbeat.interval.ms
    assert (state["r"].task_offset_interval_ms, state["r"].acceptable_recovery_lag) == (60000, 10000)
    set_group_configs(wire, app, {"streams.heartbeat.interval.ms": "2000", "streams.session.timeout.ms": "8000",
                        "streams.task.offset.interval.ms": "20000", "streams.acceptable.recovery.lag": "123"})
    manual.advance(20_000)  # the session armed before the change is the broker's 30 s
    assert [m.member_id for m in described(wire, app).members] == [member]
    again = hb(wire, app, member, state["r"].member_epoch, active=state["active"])
    assert (again.error_code, again.heartbeat_interval_ms) == (ErrorCode.NONE, 2000)
    assert (again.task_offset_interval_ms, again.acceptable_recovery_lag) == (20000, 123)
    manual.advance(7_999)
    assert [m.member_id for m in described(wire, app).members] == [member]
    manual.advance(1)
    wait_until(lambda: described(wire, app).members == [], message="fenced after the group's session timeout")
    assert hb(wire, app, member, again.member_epoch, active=state["active"]).error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_num_standby_replicas_change_gives_a_new_assignment(manual, wire):
    app, source = names()
    create_topic(manual, source, 2)
    topology = word_count_topology(app, source)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    first = join_ready(wire, app, a, topology)
    members = {a: {"epoch": first["r"].member_epoch, "active": first["active"], "standby": {}},
               b: {"epoch": 0, "active": {}, "standby": {}}}

    def beat(mid: str) -> None:
        s = members[mid]
        resp = hb(wire, app, mid, s["epoch"], topology=topology if s["epoch"] == 0 else None, active=s["active"],
                  standby=[TaskIds(subtopology_id=t, partitions=sorted(ps)) for t, ps in s["standby"].items()])
        assert resp.error_code == ErrorCode.NONE, resp.error_message
        s["epoch"] = resp.member_epoch
        if resp.active_tasks is not None:
            s["active"], s["standby"] = tasks_of(resp.active_tasks), tasks_of(resp.standby_tasks)

    def settled(want_standby: bool) -> bool:
        for mid in (a, b):
            beat(mid)
        g = described(wire, app)
        return (g.group_epoch == g.assignment_epoch and all(s["epoch"] == g.assignment_epoch for s in members.values())
                and all(bool(s["active"]) for s in members.values())
                and all(bool(s["standby"]) == want_standby for s in members.values()))

    wait_until(lambda: settled(False), message="two members, no standbys (the broker's 0)")
    epoch = described(wire, app).group_epoch
    set_group_configs(wire, app, {"streams.num.standby.replicas": "1"})
    beat(a)  # the next heartbeat sees the change: a new group epoch
    assert described(wire, app).group_epoch == epoch + 1
    wait_until(lambda: settled(True), message="each member with a standby of the stateful subtopology")
    # Subtopology 1 (the one with a changelog) has 2 tasks: each one's standby is on the other member.
    assert members[a]["standby"] == {"1": members[b]["active"]["1"]}
    assert members[b]["standby"] == {"1": members[a]["active"]["1"]}
    # The configs of the last bump are in the StreamsGroupMetadata record: a reloaded group has them, and
    # its next heartbeat finds nothing changed (no new epoch).
    coordinator = manual.broker.group_coordinator
    index = coordinator.partition_for(app)
    manual.call(lambda: coordinator.on_partition_leadership("__consumer_offsets", index, False))
    manual.call(lambda: coordinator.on_partition_leadership("__consumer_offsets", index, True))
    assert manual.call(lambda: coordinator.groups[app].last_assignment_configs) == {"num.standby.replicas": "1"}
    settled_epoch = described(wire, app).group_epoch
    beat(a)
    assert described(wire, app).group_epoch == settled_epoch


def test_group_initial_rebalance_delay(manual, wire):
    app, source = names()
    create_topic(manual, source, 2)
    set_group_configs(wire, app, {"streams.initial.rebalance.delay.ms": "4000"})  # the broker's is 0
    member = uuid.uuid4().hex
    joined = hb(wire, app, member, 0, topology=word_count_topology(app, source))
    assert joined.error_code == ErrorCode.NONE, joined.error_message
    assert ASSIGNMENT_DELAYED in statuses(joined)
    manual.advance(3_999)
    held = hb(wire, app, member, joined.member_epoch, active={})
    assert ASSIGNMENT_DELAYED in statuses(held) and tasks_of(held.active_tasks) == {}
    manual.advance(1)
    state = {"epoch": held.member_epoch, "active": {}}

    def assigned() -> bool:
        resp = hb(wire, app, member, state["epoch"], active=state["active"])
        assert resp.error_code == ErrorCode.NONE, resp.error_message
        state["epoch"] = resp.member_epoch
        if resp.active_tasks is not None:
            state["active"] = tasks_of(resp.active_tasks)
        return bool(state["active"])
    wait_until(assigned, message="tasks assigned when the group's delay ends")
    assert state["active"] == {"0": {0, 1}, "1": {0, 1}}
