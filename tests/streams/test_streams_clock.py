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
