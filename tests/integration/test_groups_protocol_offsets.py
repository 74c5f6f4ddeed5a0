"""The group coordinator's offsets and group administration at the protocol level: OffsetCommit and
OffsetFetch at every version, per-partition errors, require_stable, DescribeGroups, ListGroups,
DeleteGroups and OffsetDelete."""

from __future__ import annotations

import struct
import uuid

import pytest

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.list_groups import ListGroupsRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_delete import OffsetDeleteRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from tests.integration.groups_protocol_broker import (  # noqa: F401 (fixtures)
    fetch_v5,
    gbroker_fixture,
    group_fixture,
    topic_fixture,
    wire_fixture,
)
from tests.integration.groups_protocol_helpers import (
    commit_errors,
    commit_request,
    create_topic,
    join_member,
    sync_request,
)

# -- offsets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(2, 11))
def test_simple_commit_and_fetch_every_version(gbroker, wire, group, topic, version):
    req = commit_request(group, -1, "", topic, {0: 5, 3: 7})
    if version >= 10:
        topic_id = gbroker.call(lambda: gbroker.broker.image.topic(topic).topic_id)
        req.topics[0].topic_id = topic_id
        req.topics[0].name = ""
    resp = wire.call(req, version)
    assert commit_errors(resp) == {0: 0, 3: 0}
    for fetch_version in range(1, 11):
        if fetch_version < 8:
            resp = wire.call(OffsetFetchRequest(group_id=group, topics=[
                OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1, 3])]), fetch_version)
            parts = {p.partition_index: p.committed_offset for t in resp.topics for p in t.partitions}
        else:
            G = OffsetFetchRequest.OffsetFetchRequestGroup
            topic_req = G.OffsetFetchRequestTopics(name=topic, partition_indexes=[0, 1, 3])
            if fetch_version >= 10:
                topic_req.topic_id = gbroker.call(lambda: gbroker.broker.image.topic(topic).topic_id)
            resp = wire.call(OffsetFetchRequest(groups=[G(group_id=group, topics=[topic_req]),
                                                        G(group_id=group + "-none", topics=None)]), fetch_version)
            assert [g.group_id for g in resp.groups] == [group, group + "-none"]
            assert resp.groups[1].topics == []
            parts = {p.partition_index: p.committed_offset for t in resp.groups[0].topics for p in t.partitions}
        assert parts == {0: 5, 1: -1, 3: 7}, fetch_version


def test_commit_errors_per_partition(gbroker, wire, group, topic):
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition
    big = "x" * 5000  # offset.metadata.max.bytes defaults to 4096
    resp = wire.call(OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
        T(name=topic, partitions=[P(partition_index=0, committed_offset=1, committed_metadata=big),
                                  P(partition_index=1, committed_offset=2, committed_metadata=None),
                                  P(partition_index=9, committed_offset=3)]),
        T(name="no-such-topic", partitions=[P(partition_index=0, committed_offset=4)])]), 8)
    errors = [(t.name, p.partition_index, p.error_code) for t in resp.topics for p in t.partitions]
    assert errors == [(topic, 0, ErrorCode.OFFSET_METADATA_TOO_LARGE), (topic, 1, 0),
                      (topic, 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                      ("no-such-topic", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert fetch_v5(wire, group, topic, [0, 1]) == {0: (-1, "", 0), 1: (2, "", 0)}
    unknown_group = wire.call(commit_request(group + "-x", 3, "m", topic, {0: 1}), 9)
    assert commit_errors(unknown_group) == {0: ErrorCode.GROUP_ID_NOT_FOUND}
    unknown_group = wire.call(commit_request(group + "-x", 3, "m", topic, {0: 1}), 8)
    assert commit_errors(unknown_group) == {0: ErrorCode.ILLEGAL_GENERATION}
    all_offsets = wire.call(OffsetFetchRequest(group_id=group, topics=None), 7)
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in all_offsets.topics] == [(topic, [1])]


def test_commit_during_completing_rebalance_is_rebalance_in_progress(gbroker, wire, group, topic):
    joined = join_member(wire, group)
    resp = wire.call(commit_request(group, 1, joined.member_id, topic, {0: 1}), 8)
    assert commit_errors(resp) == {0: ErrorCode.REBALANCE_IN_PROGRESS}


def test_require_stable_sees_pending_transactional_offsets(gbroker, wire, group, topic):
    coordinator = gbroker.broker.group_coordinator
    assert gbroker.call(coordinator.prepare_txn_offsets, group, 4242, 0, {(topic, 0): (77, -1, "tx")}) == 0
    assert gbroker.call(coordinator.has_pending_txn_offsets, group, topic, 0)

    def fetch(require_stable):
        resp = wire.call(OffsetFetchRequest(group_id=group, require_stable=require_stable, topics=[
            OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1])]), 7)
        return {p.partition_index: (p.committed_offset, p.error_code) for t in resp.topics for p in t.partitions}

    assert fetch(True) == {0: (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT), 1: (-1, 0)}
    assert fetch(False) == {0: (-1, 0), 1: (-1, 0)}
    gbroker.call(coordinator.complete_txn_offsets, 4242, group, True)
    assert fetch(True) == {0: (77, 0), 1: (-1, 0)}
    gbroker.call(coordinator.prepare_txn_offsets, group, 4243, 0, {(topic, 1): (5, -1, "")})
    gbroker.call(coordinator.complete_txn_offsets, 4243, group, False)
    assert fetch(True) == {0: (77, 0), 1: (-1, 0)}


# -- describe, list, delete -------------------------------------------------------------------------------


def test_describe_list_and_delete_groups(gbroker, wire, group, topic):
    joined = join_member(wire, group)
    me = joined.member_id
    wire.call(sync_request(group, 1, me, [(me, b"assigned")]), 3)
    for version in range(0, 7):
        resp = wire.call(DescribeGroupsRequest(groups=[group, "no-such-group"]), version)
        found, missing = resp.groups
        assert (found.error_code, found.group_state, found.protocol_type, found.protocol_data) == (
            0, "Stable", "consumer", "range")
        assert [(m.member_id, bytes(m.member_metadata), bytes(m.member_assignment)) for m in found.members] == [
            (me, b"meta-range", b"assigned")]
        assert found.members[0].client_host.startswith("/127.0.0.1")
        expected_missing = ErrorCode.GROUP_ID_NOT_FOUND if version >= 6 else ErrorCode.NONE
        assert (missing.error_code, missing.group_state) == (expected_missing, "Dead")
    listed = wire.call(ListGroupsRequest(), 0)
    assert any(g.group_id == group and g.protocol_type == "consumer" for g in listed.groups)
    stable = wire.call(ListGroupsRequest(states_filter=["stable"]), 4)
    assert group in {g.group_id for g in stable.groups}
    assert all(g.group_state == "Stable" for g in stable.groups)
    empty = wire.call(ListGroupsRequest(states_filter=["Empty"]), 4)
    assert group not in {g.group_id for g in empty.groups}
    typed = wire.call(ListGroupsRequest(types_filter=["classic"]), 5)
    assert any(g.group_id == group and g.group_type == "classic" for g in typed.groups)
    assert group not in {g.group_id for g in wire.call(ListGroupsRequest(types_filter=["consumer"]), 5).groups}

    wire.call(commit_request(group, 1, me, topic, {0: 3}), 8)
    resp = wire.call(DeleteGroupsRequest(groups_names=[group, "no-such-group", ""]), 2)
    assert [(r.group_id, r.error_code) for r in resp.results] == [
        (group, ErrorCode.NON_EMPTY_GROUP), ("no-such-group", ErrorCode.GROUP_ID_NOT_FOUND),
        ("", ErrorCode.INVALID_GROUP_ID)]
    wire.call(LeaveGroupRequest(group_id=group, member_id=me), 1)
    resp = wire.call(DeleteGroupsRequest(groups_names=[group]), 0)
    assert [(r.group_id, r.error_code) for r in resp.results] == [(group, 0)]
    assert fetch_v5(wire, group, topic, [0]) == {0: (-1, "", 0)}
    assert wire.call(DescribeGroupsRequest(groups=[group]), 6).groups[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_offset_delete_rules(gbroker, wire, group, topic):
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    P = T.OffsetDeleteRequestPartition

    def delete(group_id, topic_name, partitions):
        return wire.call(OffsetDeleteRequest(group_id=group_id, topics=[
            T(name=topic_name, partitions=[P(partition_index=p) for p in partitions])]), 0)

    assert delete("no-such-group", topic, [0]).error_code == ErrorCode.GROUP_ID_NOT_FOUND
    subscription = struct.pack(">h", 0) + ConsumerProtocolSubscription(topics=[topic]).encode(0)
    joined = join_member(wire, group, protocols=[("range", subscription)])
    me = joined.member_id
    wire.call(sync_request(group, 1, me, [(me, b"")]), 3)
    wire.call(commit_request(group, 1, me, topic, {0: 1, 1: 2}), 8)
    other = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, other, 1)
    wire.call(commit_request(group, 1, me, other, {0: 9}), 8)
    resp = delete(group, topic, [0])
    assert resp.error_code == 0
    assert [(p.partition_index, p.error_code) for t in resp.topics for p in t.partitions] == [
        (0, ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)]
    resp = delete(group, other, [0])
    assert [(p.partition_index, p.error_code) for t in resp.topics for p in t.partitions] == [(0, 0)]
    assert fetch_v5(wire, group, other, [0]) == {0: (-1, "", 0)}
    assert fetch_v5(wire, group, topic, [0, 1]) == {0: (1, "m", 0), 1: (2, "m", 0)}
