"""A KIP-1071 streams group member on a broker with a manual clock: its session
(group.streams.session.timeout.ms) expires when the clock passes it, not before; the initial
rebalance delay (group.streams.initial.rebalance.delay.ms) holds the first assignment back until it ends."""

from __future__ import annotations

import uuid

from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.streams_group_describe import StreamsGroupDescribeRequest
from tests.streams.streams_group_helpers import (
    CONFIG,
    create_topic,
    hb,
    join_ready,
    names,
    tasks_of,
    word_count_topology,
)

ASSIGNMENT_DELAYED = 5
DELAY_MS = 3000


def test_streams_member_session_expires_on_advance():
    with BrokerThread(config=CONFIG, clock="manual") as b:
        app, source = names()
        create_topic(b, source, 2)
        wire = Wire(b.bootstrap_servers)
        try:
            member = uuid.uuid4().hex
            state = join_ready(wire, app, member, word_count_topology(app, source))
            epoch = state["r"].member_epoch

            def members() -> list[str]:
                return b.call(lambda: list(b.broker.group_coordinator.groups[app].members))

            session = b.broker.config["group.streams.session.timeout.ms"]
            b.advance(session - 1)  # counted from the last heartbeat
            assert members() == [member]
            b.advance(1)
            assert members() == []  # expired at once
            resp = hb(wire, app, member, epoch, active=state["active"])
            assert resp.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        finally:
            wire.close()


def test_first_join_under_initial_delay_gets_group_epoch_and_no_tasks():
    """As in Kafka 4.4 (streamsGroupHeartbeat): while the initial delay runs, the member reconciles toward an
    empty target at the assignment epoch (1), so it leaves the joining state with epoch 1; its next
    heartbeat (epoch 1, no rebalance timeout) is accepted; when the delay ends it gets its tasks."""
    config = dict(CONFIG, **{"group.streams.initial.rebalance.delay.ms": str(DELAY_MS)})
    with BrokerThread(config=config, clock="manual") as b:
        app, source = names()
        create_topic(b, source, 2)
        wire = Wire(b.bootstrap_servers)
        try:
            member = uuid.uuid4().hex
            joined = hb(wire, app, member, 0, topology=word_count_topology(app, source))
            assert joined.error_code == ErrorCode.NONE, joined.error_message
            assert joined.member_epoch == 1
            assert ASSIGNMENT_DELAYED in {s.status_code for s in joined.status}
            assert (joined.active_tasks, joined.standby_tasks, joined.warmup_tasks) == ([], [], [])
            # Kafka 4.4 starts a group at epochs 1/1: the join bumps the group epoch, the target stays at 1.
            described = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert (described.group_epoch, described.assignment_epoch) == (2, 1)

            # Not joining any more: epoch 1 and rebalance_timeout_ms=-1, still delayed, still no tasks.
            again = hb(wire, app, member, joined.member_epoch, active={})
            assert again.error_code == ErrorCode.NONE, again.error_message
            assert again.member_epoch == 1
            assert ASSIGNMENT_DELAYED in {s.status_code for s in again.status}
            assert tasks_of(again.active_tasks) == {}

            b.advance(DELAY_MS)
            state = {"epoch": again.member_epoch, "active": {}}

            def assigned() -> bool:
                resp = hb(wire, app, member, state["epoch"], active=state["active"])
                assert resp.error_code == ErrorCode.NONE, resp.error_message
                assert ASSIGNMENT_DELAYED not in {s.status_code for s in resp.status}
                state["epoch"] = resp.member_epoch
                if resp.active_tasks is not None:
                    state["active"] = tasks_of(resp.active_tasks)
                return bool(state["active"])
            wait_until(assigned, message="tasks assigned after the delay")
            described = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert state["epoch"] == described.group_epoch == described.assignment_epoch > 1
            assert state["active"] == {"0": {0, 1}, "1": {0, 1}}
        finally:
            wire.close()


def test_unloaded_streams_group_timers_do_not_fire_on_the_old_coordinator():
    """When its ``__consumer_offsets`` partition moves away, the coordinator unloads the group and
    cancels its timers: the session timeout passing later removes no member and writes nothing."""
    with BrokerThread(config=CONFIG, clock="manual") as b:
        app, source = names()
        create_topic(b, source, 2)
        wire = Wire(b.bootstrap_servers)
        try:
            member = uuid.uuid4().hex
            join_ready(wire, app, member, word_count_topology(app, source))
            coordinator = b.broker.group_coordinator
            group = b.call(lambda: coordinator.groups[app])
            index = coordinator.partition_for(app)
            offsets_log = b.call(lambda: b.broker.partition("__consumer_offsets", index).log)

            b.call(lambda: coordinator.on_partition_leadership("__consumer_offsets", index, False))
            assert b.call(lambda: app not in coordinator.groups)
            # every timer of the group is cancelled (session, revocation, initial delay)
            assert b.call(lambda: [k for k in coordinator.timer.pending() if app in str(k)]) == []
            end = b.call(lambda: offsets_log.log_end_offset)
            b.advance(b.broker.config["group.streams.session.timeout.ms"] * 10)
            assert b.call(lambda: list(group.members)) == [member]
            assert b.call(lambda: offsets_log.log_end_offset) == end
        finally:
            wire.close()
