"""The group coordinator's persistence: offsets, a stable group and pending transactional offsets kept
across a restart, __consumer_offsets records in Kafka's formats, and offset retention by the periodic
check."""

from __future__ import annotations

import struct

from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from tests.integration.groups_protocol_broker import GROUP_CONFIG, fetch_v5, group_of
from tests.integration.groups_protocol_helpers import (
    commit_errors,
    commit_request,
    create_topic,
    join_member,
    join_request,
    sync_request,
)

# -- persistence --------------------------------------------------------------------------------------------


def test_restart_keeps_offsets_stable_group_and_pending_transactions(tmp_path):
    data_dir = str(tmp_path / "data")
    config = dict(GROUP_CONFIG, **{"offsets.topic.num.partitions": "3"})
    group, simple = "restart-group", "restart-simple"
    with BrokerThread(config=config, data_dir=data_dir) as b:
        create_topic(b, "events", 4)
        w1, w2 = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers)
        first = join_member(w1, group, instance="static-1", session=30000)
        w1.call(sync_request(group, 1, first.member_id, [(first.member_id, b"")], instance="static-1"), 3)
        w2.send(join_request(group, session=30000), 3)
        rejoin = w1.call(join_request(group, member_id=first.member_id, instance="static-1", session=30000), 5)
        second = w2.receive()
        assignments = [(first.member_id, b"p0,p1"), (second.member_id, b"p2,p3")]
        w2.send(sync_request(group, 2, second.member_id), 3)
        w1.call(sync_request(group, 2, first.member_id, assignments, instance="static-1"), 3)
        assert bytes(w2.receive().assignment) == b"p2,p3"
        assert rejoin.generation_id == 2
        w1.call(commit_request(group, 2, first.member_id, "events", {0: 100, 1: 101}), 8)
        w1.call(commit_request(simple, -1, "", "events", {3: 7}, metadata="simple"), 3)
        coordinator = b.broker.group_coordinator
        b.call(coordinator.prepare_txn_offsets, simple, 900, 1, {("events", 2): (55, 4, "tx")})
        b.call(coordinator.complete_txn_offsets, 900, simple, True)
        b.call(coordinator.prepare_txn_offsets, simple, 901, 1, {("events", 0): (66, 4, "open")})
        w1.close()
        w2.close()
    with BrokerThread(config=config, data_dir=data_dir) as b:
        w = Wire(b.bootstrap_servers)
        try:
            described = w.call(DescribeGroupsRequest(groups=[group]), 5).groups[0]
            assert (described.group_state, described.protocol_data) == ("Stable", "range")
            assert sorted((m.member_id, m.group_instance_id, bytes(m.member_assignment)) for m in described.members) \
                == sorted([(first.member_id, "static-1", b"p0,p1"), (second.member_id, None, b"p2,p3")])
            assert group_of(b, group).generation == 2
            for member_id, instance in ((first.member_id, "static-1"), (second.member_id, None)):
                hb = w.call(HeartbeatRequest(group_id=group, generation_id=2, member_id=member_id,
                                             group_instance_id=instance), 3)
                assert hb.error_code == ErrorCode.NONE
            synced = w.call(sync_request(group, 2, second.member_id), 3)
            assert bytes(synced.assignment) == b"p2,p3"
            assert fetch_v5(w, group, "events", [0, 1, 2]) == {0: (100, "m", 0), 1: (101, "m", 0), 2: (-1, "", 0)}
            assert fetch_v5(w, simple, "events", [0, 2, 3]) == {
                0: (-1, "", 0), 2: (55, "tx", 0), 3: (7, "simple", 0)}
            coordinator = b.broker.group_coordinator
            assert b.call(coordinator.has_pending_txn_offsets, simple, "events", 0)
            b.call(coordinator.complete_txn_offsets, 901, simple, True)
            assert fetch_v5(w, simple, "events", [0]) == {0: (66, "open", 0)}
            stale = w.call(commit_request(group, 1, first.member_id, "events", {0: 1}), 8)
            assert commit_errors(stale) == {0: ErrorCode.ILLEGAL_GENERATION}
        finally:
            w.close()


def test_consumer_offsets_records_are_kafka_formats(tmp_path):
    """What lands in __consumer_offsets decodes with Kafka's schemas, in the partition Kafka uses."""
    from kbroker_protocol.messages.coordinator import (
        GroupMetadataKey,
        GroupMetadataValue,
        OffsetCommitKey,
        OffsetCommitValue,
    )
    from kbroker_protocol.records import iter_records

    config = dict(GROUP_CONFIG, **{"offsets.topic.num.partitions": "7"})
    group = "format-check"
    with BrokerThread(config=config) as b:
        create_topic(b, "fmt", 1)
        w = Wire(b.bootstrap_servers)
        joined = join_member(w, group)
        w.call(sync_request(group, 1, joined.member_id, [(joined.member_id, b"A")]), 3)
        w.call(commit_request(group, 1, joined.member_id, "fmt", {0: 42}), 8)
        w.close()
        h = 0
        for ch in group:  # Java's String.hashCode over an ASCII id, then Utils.abs
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
        h = h - (1 << 32) if h >= 1 << 31 else h
        index = abs(h) % 7
        log = b.broker.partition("__consumer_offsets", index).log

        def records():
            return [r for _h, data in log.iter_batches() for r in iter_records(data)]

        recs = b.call(records)
        kinds = [struct.unpack_from(">h", r.key)[0] for r in recs]
        assert kinds == [2, 2, 1]
        created_rec, group_rec, offset_rec = recs
        # the JoinGroup that created the group wrote it empty (Kafka's newEmptyGroupMetadataRecord)
        created = GroupMetadataValue.decode(created_rec.value[2:], struct.unpack_from(">h", created_rec.value)[0])
        assert GroupMetadataKey.decode(created_rec.key[2:], 0).group == group
        assert (created.protocol_type, created.generation, created.protocol, created.leader, created.members) == (
            "", 0, None, None, [])
        assert GroupMetadataKey.decode(group_rec.key[2:], 0).group == group
        version = struct.unpack_from(">h", group_rec.value)[0]
        gv = GroupMetadataValue.decode(group_rec.value[2:], version)
        assert (gv.protocol_type, gv.generation, gv.protocol, gv.leader) == ("consumer", 1, "range", joined.member_id)
        assert [(m.member_id, bytes(m.assignment)) for m in gv.members] == [(joined.member_id, b"A")]
        key = OffsetCommitKey.decode(offset_rec.key[2:], 0)
        assert (key.group, key.topic, key.partition) == (group, "fmt", 0)
        value = OffsetCommitValue.decode(offset_rec.value[2:], struct.unpack_from(">h", offset_rec.value)[0])
        assert (value.offset, value.metadata) == (42, "m")
        topic = b.broker.image.topic("__consumer_offsets")
        assert topic.configs.get("cleanup.policy") == "compact"


def test_offset_retention_by_the_periodic_check():
    """Offsets of empty groups, and of topics a live consumer group no longer subscribes to, expire;
    the check runs every offsets.retention.check.interval.ms (the clock is moved past retention)."""
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    config = dict(GROUP_CONFIG, **{"offsets.retention.check.interval.ms": "100"})
    with BrokerThread(config=config) as b:
        create_topic(b, "kept", 1)
        create_topic(b, "dropped", 1)
        w = Wire(b.bootstrap_servers)
        try:
            # As clients do: the coordinator first (its lookup creates and loads __consumer_offsets;
            # group requests meanwhile answer COORDINATOR_LOAD_IN_PROGRESS).
            wait_until(lambda: w.call(FindCoordinatorRequest(key="simple", key_type=0), 1).error_code == 0,
                       message="group coordinator available")
            simple = w.call(commit_request("simple", -1, "", "kept", {0: 1}), 3)
            assert [p.error_code for t in simple.topics for p in t.partitions] == [0]
            subscription = struct.pack(">h", 0) + ConsumerProtocolSubscription(topics=["kept"]).encode(0)
            # v3: no MEMBER_ID_REQUIRED round trip, during which the group is Empty without offsets
            # and a retention check (every 100 ms here) deletes it, as Kafka's would
            joined = join_member(w, "live", version=3, protocols=[("range", subscription)], session=60000)
            me, gen = joined.member_id, joined.generation_id
            assert joined.error_code == 0
            assert w.call(sync_request("live", gen, me, [(me, b"")]), 3).error_code == 0
            for name, offset in (("kept", 5), ("dropped", 6)):
                committed = w.call(commit_request("live", gen, me, name, {0: offset}), 8)
                assert [p.error_code for t in committed.topics for p in t.partitions] == [0], name
            assert group_of(b, "live").state.value == "Stable"
            coordinator = b.broker.group_coordinator
            retention_ms = b.broker.config["offsets.retention.minutes"] * 60_000
            real_now = coordinator.timer.now_ms
            b.call(lambda: setattr(coordinator.timer, "now_ms", lambda: real_now() + retention_ms + 1000))
            wait_until(lambda: group_of(b, "simple") is None, message="simple group expired")
            assert fetch_v5(w, "simple", "kept", [0]) == {0: (-1, "", 0)}
            assert fetch_v5(w, "live", "dropped", [0]) == {0: (-1, "", 0)}
            assert fetch_v5(w, "live", "kept", [0]) == {0: (5, "m", 0)}
            hb = w.call(HeartbeatRequest(group_id="live", generation_id=gen, member_id=me), 3)
            assert hb.error_code == 0
        finally:
            w.close()
