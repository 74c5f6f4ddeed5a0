"""Share state survives a broker restart: group membership records in __consumer_offsets and the
share partitions' state (SPSO, acknowledged/archived records, delivery counts) in
__share_group_state, in Kafka's record formats."""

from __future__ import annotations

import uuid

from share_wire import ACCEPT, DESCRIBE, REJECT, RELEASE, E, ShareClient, acquired, part, topic_id
from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.coordinator.share_partition import StateBatch
from kbroker.coordinator.share_state import (
    SNAPSHOT_TYPE,
    ShareState,
    decode_key,
    decode_snapshot_value,
    decode_update_value,
    encode_key,
    encode_snapshot_value,
    encode_update_value,
    merge_batches,
)
from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS


def _member_of_a_new_topic(wire: Wire, group: str, topic: str) -> tuple[uuid.UUID, ShareClient]:
    """A new topic of one partition and a member of ``group`` subscribed to it, its share session
    opened by a first fetch: (the topic's id, the member)."""
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    c = ShareClient(wire, group)
    c.join([topic])
    c.fetch(tid)
    return tid, c


def test_in_flight_state_and_delivery_counts_survive_a_restart(tmp_path):
    data = str(tmp_path / "data")
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=data, clock="manual") as b:
        wire = Wire(b.bootstrap_servers)
        tid, c = _member_of_a_new_topic(wire, group, topic)
        produce(wire, topic, 0, 6)
        assert acquired(c.fetch(tid)) == [(0, 5, 1)]
        # 0 accepted, 1 rejected, 2 released (delivered once), 3-5 still acquired.
        assert part(c.ack(tid, [(0, 2, [ACCEPT, REJECT, RELEASE])])).error_code == E.NONE
        assert acquired(c.fetch(tid)) == [(2, 2, 2)]  # 2 delivered a second time, not yet acknowledged
        # Closing the connection ends the share session: 2-5 are released (and written) with the
        # delivery counts they have (2 and 1).
        wire.close()
        wait_until(lambda: b.call(lambda: not b.broker.share_coordinator.manager.sessions),
                   message="the share session ended")
    with BrokerThread(data_dir=data, clock="manual") as b:
        wire = Wire(b.bootstrap_servers)
        d = wire.call(DESCRIBE, 1, group_ids=[group], include_authorized_operations=False).groups[0]
        assert d.error_code == E.NONE and [m.member_id for m in d.members] == [c.member]
        c2 = ShareClient(wire, group)
        c2.join([topic])
        resp = c2.fetch(tid)
        # The SPSO is after the completed records; the released ones come back with their delivery
        # counts, each delivered once more.
        assert acquired(resp) == [(2, 2, 3), (3, 5, 2)]
        sp = b.call(lambda: b.broker.share_coordinator.manager.partitions[(group, tid, 0)])
        assert sp.start_offset == 2
        wire.close()


def test_an_acquisition_is_not_persisted(tmp_path):
    """As in Kafka, acquiring is not written: a state written while records are acquired has them
    Available with the delivery count before that delivery (what a crash would leave)."""
    from kbroker.coordinator.share_partition import ACQUIRED, InFlight, runs

    states = {5: InFlight(ACQUIRED, 1, "m", 1), 6: InFlight(ACQUIRED, 3, "m", 1), 7: InFlight(2, 1)}
    assert runs(states, 5, 7) == [StateBatch(5, 5, 0, 0), StateBatch(6, 6, 0, 2), StateBatch(7, 7, 2, 1)]


def test_records_round_trip_in_kafkas_format():
    tid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    key = encode_key(SNAPSHOT_TYPE, "grp", tid, 7)
    # ShareSnapshotKey: type 0, then GroupId (int16 length), TopicId (16 bytes), Partition (int32).
    assert key == b"\x00\x00" + b"\x00\x03grp" + tid.bytes + b"\x00\x00\x00\x07"
    assert decode_key(key) == (0, "grp", tid, 7)
    state = ShareState(snapshot_epoch=2, state_epoch=1, leader_epoch=0, start_offset=10, delivery_complete_count=3,
                       create_timestamp=5, write_timestamp=6,
                       batches=[StateBatch(10, 12, 0, 2), StateBatch(13, 13, 2, 1)])
    value = encode_snapshot_value(state)
    back = decode_snapshot_value(value)
    assert (back.snapshot_epoch, back.state_epoch, back.leader_epoch, back.start_offset,
            back.delivery_complete_count, back.create_timestamp, back.write_timestamp) == (2, 1, 0, 10, 3, 5, 6)
    assert back.batches == state.batches
    update = encode_update_value(2, 0, 11, [StateBatch(11, 11, 4, 3)])
    assert decode_update_value(update) == (2, 0, 11, [StateBatch(11, 11, 4, 3)], -1)


def test_merge_overrides_and_drops_below_start():
    old = [StateBatch(10, 14, 0, 1)]
    new = [StateBatch(12, 12, 2, 1)]
    assert merge_batches(old, new, 11) == [StateBatch(11, 11, 0, 1), StateBatch(12, 12, 2, 1),
                                           StateBatch(13, 14, 0, 1)]


def test_deleting_a_topic_deletes_its_share_state(tmp_path):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=str(tmp_path / "data")) as b:
        wire = Wire(b.bootstrap_servers)
        tid, c = _member_of_a_new_topic(wire, group, topic)
        store = b.broker.share_coordinator.store
        assert b.call(lambda: (group, tid, 0) in store.states)
        resp = wire.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name=topic)], timeout_ms=10000)
        assert resp.responses[0].error_code == E.NONE
        assert b.call(lambda: (group, tid, 0) not in store.states)
        assert b.call(lambda: (group, tid, 0) not in b.broker.share_coordinator.manager.partitions)
        wire.close()


def test_state_topic_is_pruned_and_still_loads(tmp_path):
    data = str(tmp_path / "data")
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=data, clock="manual") as b:
        wire = Wire(b.bootstrap_servers)
        tid, c = _member_of_a_new_topic(wire, group, topic)
        for i in range(5):
            produce(wire, topic, 0, 1)
            assert acquired(c.fetch(tid)) == [(i, i, 1)]
            assert part(c.ack(tid, [(i, i, [ACCEPT if i % 2 == 0 else REJECT])])).error_code == E.NONE
        store = b.broker.share_coordinator.store
        index = b.call(lambda: store.partition_for(group, tid, 0))
        plog = b.broker.partition("__share_group_state", index).log
        latest = b.call(lambda: store.snapshot_offsets[(group, tid, 0)])
        assert b.call(lambda: plog.log_start_offset) < latest  # earlier snapshots are still there
        b.advance(300_000)  # share.coordinator.state.topic.prune.interval.ms
        assert b.call(lambda: plog.log_start_offset) == latest
        wire.close()
    with BrokerThread(data_dir=data, clock="manual") as b:
        state = b.call(lambda: b.broker.share_coordinator.store.read(group, tid, 0))
        assert (state.start_offset, state.batches) == (5, [])
