"""A ShareFetch long poll on a broker with a manual clock ends when the clock passes its max wait
(acquisition locks and member sessions on the clock: test_share_fetch.py, test_share_heartbeat.py)."""

from __future__ import annotations

import threading
import uuid

from share_wire import E, ShareClient, topic_id
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread


def test_share_fetch_long_poll_is_answered_when_the_clock_passes_max_wait():
    with BrokerThread(clock="manual") as b:
        wire = Wire(b.bootstrap_servers, timeout=60)
        try:
            group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
            create_topic(wire, topic)
            tid = topic_id(wire, topic)
            client = ShareClient(wire, group)
            client.join([topic])
            assert client.fetch(tid).error_code == E.NONE  # opens the share session
            answers: list = []
            poll = threading.Thread(target=lambda: answers.append(client.fetch(tid, max_wait_ms=600_000)))
            poll.start()
            partition = b.call(lambda: b.broker.partition(topic, 0))
            wait_until(lambda: b.call(lambda: bool(partition._waiters)), message="the share fetch waiting")
            b.advance(599_999)
            assert answers == [] and poll.is_alive()
            b.advance(1)
            poll.join(30)
            (resp,) = answers
            assert resp.error_code == E.NONE
            assert all(not p.acquired_records for t in resp.responses for p in t.partitions)
        finally:
            wire.close()


def test_unloaded_share_group_timers_do_not_fire_on_the_old_coordinator():
    """When its ``__consumer_offsets`` partition moves away, the coordinator unloads the share group
    and cancels its timers: the session timeout passing later removes no member and writes nothing."""
    with BrokerThread(clock="manual") as b:
        wire = Wire(b.bootstrap_servers, timeout=60)
        try:
            group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
            create_topic(wire, topic)
            client = ShareClient(wire, group)
            client.join([topic])
            coordinator = b.broker.group_coordinator
            share_group = b.call(lambda: coordinator.groups[group])
            index = coordinator.partition_for(group)
            offsets_log = b.call(lambda: b.broker.partition("__consumer_offsets", index).log)

            b.call(lambda: coordinator.on_partition_leadership("__consumer_offsets", index, False))
            assert b.call(lambda: group not in coordinator.groups)
            # every timer of the group is cancelled (session, revocation, initial delay)
            assert b.call(lambda: [k for k in coordinator.timer.pending() if group in str(k)]) == []
            end = b.call(lambda: offsets_log.log_end_offset)
            b.advance(b.broker.config["group.share.session.timeout.ms"] * 10)
            assert b.call(lambda: list(share_group.members)) == [client.member]
            assert b.call(lambda: offsets_log.log_end_offset) == end
        finally:
            wire.close()
