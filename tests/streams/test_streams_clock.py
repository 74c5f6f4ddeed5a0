"""A KIP-1071 streams group member on a broker with a manual clock: its session
(group.streams.session.timeout.ms) expires when the clock passes it, not before."""

from __future__ import annotations

import uuid

from test_streams_groups import CONFIG, create_topic, hb, join_ready, names, word_count_topology
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode


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
