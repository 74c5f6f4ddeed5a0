"""The share coordinator's RPCs (Initialize/Read/Write/Delete ShareGroupState, ReadShareGroupStateSummary)
and FindCoordinator for share partition keys, at the wire."""

from __future__ import annotations

import base64
import uuid

import pytest
from share_wire import E, ShareClient, acquired, topic_id
from wire import create_topic, find_coordinator, produce

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS


@pytest.fixture(scope="module")
def broker():
    with BrokerThread() as b:
        yield b


def _one(resp):
    (r,) = resp.results
    (p,) = r.partitions
    return p


def initialize(wire, group, tid, partition, state_epoch, start):
    Req = REQUESTS[83]
    T = Req.InitializeStateData
    return _one(wire.call(83, 0, group_id=group, topics=[T(topic_id=tid, partitions=[
        T.PartitionData(partition=partition, state_epoch=state_epoch, start_offset=start)])]))


def read(wire, group, tid, partition, leader_epoch=0):
    Req = REQUESTS[84]
    T = Req.ReadStateData
    return _one(wire.call(84, 0, group_id=group, topics=[T(topic_id=tid, partitions=[
        T.PartitionData(partition=partition, leader_epoch=leader_epoch)])]))


def write(wire, group, tid, partition, state_epoch, leader_epoch, start, batches, complete=-1):
    Req = REQUESTS[85]
    T = Req.WriteStateData
    P = T.PartitionData
    return _one(wire.call(85, 1, group_id=group, topics=[T(topic_id=tid, partitions=[P(
        partition=partition, state_epoch=state_epoch, leader_epoch=leader_epoch, start_offset=start,
        delivery_complete_count=complete,
        state_batches=[P.StateBatch(first_offset=f, last_offset=last, delivery_state=s, delivery_count=c)
                       for f, last, s, c in batches])])]))


def summary(wire, group, tid, partition):
    Req = REQUESTS[87]
    T = Req.ReadStateSummaryData
    return _one(wire.call(87, 1, group_id=group, topics=[T(topic_id=tid, partitions=[
        T.PartitionData(partition=partition, leader_epoch=0)])]))


def delete(wire, group, tid, partition):
    Req = REQUESTS[86]
    T = Req.DeleteStateData
    return _one(wire.call(86, 0, group_id=group, topics=[T(topic_id=tid, partitions=[
        T.PartitionData(partition=partition)])]))


def test_state_rpcs(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    r = read(wire, group, tid, 0)
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, "Read operation on uninitialized share partition not allowed.")
    w = write(wire, group, tid, 0, 0, 0, 0, [])
    assert (w.error_code, w.error_message) == (E.INVALID_REQUEST, "Write operation on uninitialized share partition not allowed.")
    assert summary(wire, group, tid, 0).start_offset == -1
    assert initialize(wire, group, tid, 0, 1, 10).error_code == E.NONE
    assert initialize(wire, group, tid, 0, 0, 10).error_code == E.FENCED_STATE_EPOCH
    assert initialize(wire, group, tid, 5, 1, 10).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert initialize(wire, group, uuid.uuid4(), 0, 1, 10).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    r = read(wire, group, tid, 0, leader_epoch=2)
    assert (r.error_code, r.state_epoch, r.start_offset, r.state_batches) == (E.NONE, 1, 10, [])
    assert read(wire, group, tid, 0, leader_epoch=1).error_code == E.FENCED_LEADER_EPOCH
    # Writes merge: a later batch overrides what it overlaps; the start offset drops what is below.
    assert write(wire, group, tid, 0, 1, 2, -1, [(10, 14, 0, 1)]).error_code == E.NONE
    assert write(wire, group, tid, 0, 1, 2, 11, [(12, 12, 2, 1)], complete=1).error_code == E.NONE
    r = read(wire, group, tid, 0, leader_epoch=2)
    assert r.start_offset == 11
    assert [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in r.state_batches] == [
        (11, 11, 0, 1), (12, 12, 2, 1), (13, 14, 0, 1)]
    assert write(wire, group, tid, 0, 0, 2, 11, []).error_code == E.FENCED_STATE_EPOCH
    assert write(wire, group, tid, 0, 1, 1, 11, []).error_code == E.FENCED_LEADER_EPOCH
    assert write(wire, group, tid, 0, 1, -1, 11, []).error_message == "The leader epoch cannot be a negative number."
    s = summary(wire, group, tid, 0)
    assert (s.error_code, s.state_epoch, s.leader_epoch, s.start_offset, s.delivery_complete_count) == (
        E.NONE, 1, 2, 11, 1)
    assert delete(wire, group, tid, 0).error_code == E.NONE
    assert read(wire, group, tid, 0, leader_epoch=2).error_code == E.INVALID_REQUEST
    assert initialize(wire, "", tid, 0, 1, 0).error_code == E.INVALID_GROUP_ID


def test_initialized_state_is_where_a_share_partition_starts(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    for _ in range(4):
        produce(wire, topic, 0, 1)
    assert initialize(wire, group, tid, 0, 0, 2).error_code == E.NONE
    c = ShareClient(wire, group)
    c.join([topic])
    assert acquired(c.fetch(tid)) == [(2, 3, 1)]


def test_find_coordinator_for_share_keys(broker, wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    key = f"{group}:{base64.urlsafe_b64encode(tid.bytes).decode().rstrip('=')}:0"
    resp = find_coordinator(wire, 2, [key, "no-colons", "g:notanid:0"], 6)  # once __share_group_state exists
    assert [c.error_code for c in resp.coordinators] == [E.NONE, E.INVALID_REQUEST, E.INVALID_REQUEST]
    assert resp.coordinators[0].node_id == broker.broker.node_id
