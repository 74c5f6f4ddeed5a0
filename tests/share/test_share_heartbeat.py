"""ShareGroupHeartbeat, ShareGroupDescribe and share groups in ListGroups/DescribeGroups/DeleteGroups,
at the wire against a broker with a manual clock."""

from __future__ import annotations

import uuid

from share_wire import DESCRIBE, E, heartbeat, topic_id
from wire import create_topic

from kbroker_protocol.messages import REQUESTS


def _names() -> tuple[str, str]:
    return f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"


def _assigned(resp) -> dict:
    return {t.topic_id: sorted(t.partitions) for t in resp.assignment.topic_partitions}


def test_join_gets_epoch_and_all_partitions(wire):
    group, topic = _names()
    create_topic(wire, topic, partitions=3)
    tid = topic_id(wire, topic)
    resp = heartbeat(wire, group, "m1", 0, [topic])
    assert resp.error_code == E.NONE
    assert resp.member_id == "m1" and resp.member_epoch == 1
    assert resp.heartbeat_interval_ms == 5000
    assert _assigned(resp) == {tid: [0, 1, 2]}
    # A plain heartbeat at the current epoch keeps it and sends no assignment.
    again = heartbeat(wire, group, "m1", 1)
    assert again.error_code == E.NONE and again.member_epoch == 1 and again.assignment is None


def test_two_members_share_one_partition(wire):
    group, topic = _names()
    create_topic(wire, topic, partitions=1)
    tid = topic_id(wire, topic)
    a = heartbeat(wire, group, "a", 0, [topic])
    b = heartbeat(wire, group, "b", 0, [topic])
    assert _assigned(a) == {tid: [0]} and _assigned(b) == {tid: [0]}
    assert b.member_epoch == 2
    # a learns the new epoch on its next heartbeat; its assignment did not change.
    a2 = heartbeat(wire, group, "a", a.member_epoch)
    assert a2.member_epoch == 2 and a2.assignment is None


def test_more_partitions_than_members_are_split(wire):
    group, topic = _names()
    create_topic(wire, topic, partitions=4)
    tid = topic_id(wire, topic)
    heartbeat(wire, group, "a", 0, [topic])
    b = heartbeat(wire, group, "b", 0, [topic])
    a = heartbeat(wire, group, "a", 1)
    got_a, got_b = _assigned(a)[tid], _assigned(b)[tid]
    assert len(got_a) == 2 and len(got_b) == 2 and sorted(got_a + got_b) == [0, 1, 2, 3]


def test_request_validation_errors(wire):
    group, topic = _names()
    create_topic(wire, topic)
    r = heartbeat(wire, group, "", 0, [topic])
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, None)  # refused in KafkaApis: code only
    r = heartbeat(wire, group, "x" * 37, 0, [topic])
    assert r.error_code == E.INVALID_REQUEST
    r = heartbeat(wire, group, "m", 0, None)
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
    r = heartbeat(wire, group, "m", -2, [topic])
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, "MemberEpoch is invalid.")
    r = heartbeat(wire, "", "m", 0, [topic])
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, "GroupId can't be empty.")
    r = heartbeat(wire, group, "m", 0, [topic], rack="")
    assert (r.error_code, r.error_message) == (E.INVALID_REQUEST, "RackId can't be empty.")


def test_unknown_group_member_and_fenced_epochs(wire):
    group, topic = _names()
    create_topic(wire, topic)
    assert heartbeat(wire, group, "m", 3).error_code == E.GROUP_ID_NOT_FOUND
    heartbeat(wire, group, "m", 0, [topic])
    assert heartbeat(wire, group, "other", 3).error_code == E.UNKNOWN_MEMBER_ID
    r = heartbeat(wire, group, "m", 7)
    assert r.error_code == E.FENCED_MEMBER_EPOCH and "greater member epoch" in r.error_message
    heartbeat(wire, group, "n", 0, [topic])  # epoch 2
    current = heartbeat(wire, group, "m", 1)  # previous epoch is accepted
    assert current.error_code == E.NONE and current.member_epoch == 2
    heartbeat(wire, group, "o", 0, [topic])  # epoch 3; m's previous epoch is now 1
    r = heartbeat(wire, group, "m", 1)
    assert r.error_code == E.NONE  # m is at 2, previous 1: 1 still accepted
    m3 = heartbeat(wire, group, "m", 2)
    assert m3.member_epoch == 3
    r = heartbeat(wire, group, "m", 1)
    assert r.error_code == E.FENCED_MEMBER_EPOCH and "smaller member epoch" in r.error_message


def test_leave_and_session_timeout(broker, wire):
    group, topic = _names()
    create_topic(wire, topic)
    heartbeat(wire, group, "stay", 0, [topic])
    heartbeat(wire, group, "go", 0, [topic])
    left = heartbeat(wire, group, "go", -1)
    assert left.error_code == E.NONE and left.member_epoch == -1
    assert heartbeat(wire, group, "go", 2).error_code == E.UNKNOWN_MEMBER_ID
    assert heartbeat(wire, group, "go", -1).error_code == E.UNKNOWN_MEMBER_ID
    broker.advance(44_999)
    stay = heartbeat(wire, group, "stay", 1)  # the session starts again
    assert stay.error_code == E.NONE and stay.member_epoch == 3
    broker.advance(44_999)
    assert heartbeat(wire, group, "stay", 3).error_code == E.NONE
    broker.advance(45_000)
    assert heartbeat(wire, group, "stay", 3).error_code == E.UNKNOWN_MEMBER_ID


def test_describe_list_and_describe_groups(wire):
    group, topic = _names()
    create_topic(wire, topic, partitions=2)
    tid = topic_id(wire, topic)
    heartbeat(wire, group, "m1", 0, [topic])
    resp = wire.call(DESCRIBE, 1, group_ids=[group, "no-such-share-group"], include_authorized_operations=False)
    g, missing = resp.groups
    assert g.error_code == E.NONE and g.group_state == "Stable" and g.assignor_name == "simple"
    assert g.group_epoch == 1 and g.assignment_epoch == 1
    (m,) = g.members
    assert m.member_id == "m1" and m.member_epoch == 1 and m.subscribed_topic_names == [topic]
    assert [(t.topic_id, t.topic_name, t.partitions) for t in m.assignment.topic_partitions] == [(tid, topic, [0, 1])]
    assert (missing.error_code, missing.error_message) == (E.GROUP_ID_NOT_FOUND, "Group no-such-share-group not found.")

    listed = wire.call(16, 5, states_filter=[], types_filter=["share"])
    mine = [x for x in listed.groups if x.group_id == group]
    assert [(x.protocol_type, x.group_state, x.group_type) for x in mine] == [("share", "Stable", "share")]
    classic_only = wire.call(16, 5, states_filter=[], types_filter=["classic"])
    assert group not in [x.group_id for x in classic_only.groups]

    # A share group is not a consumer group for the consumer APIs.
    cg = wire.call(69, 1, group_ids=[group], include_authorized_operations=False)
    assert cg.groups[0].error_code == E.GROUP_ID_NOT_FOUND
    hb = wire.call(68, 1, group_id=group, member_id="c" * 22, member_epoch=0, rebalance_timeout_ms=30000,
                   subscribed_topic_names=[topic], server_assignor=None, topic_partitions=[])
    assert hb.error_code == E.GROUP_ID_NOT_FOUND

    # Non-empty: DeleteGroups refuses; once empty it deletes.
    deleted = wire.call(42, 2, groups_names=[group])
    assert deleted.results[0].error_code == E.NON_EMPTY_GROUP
    heartbeat(wire, group, "m1", -1)
    resp = wire.call(DESCRIBE, 1, group_ids=[group], include_authorized_operations=False)
    assert resp.groups[0].group_state == "Empty"
    deleted = wire.call(42, 2, groups_names=[group])
    assert deleted.results[0].error_code == E.NONE
    resp = wire.call(DESCRIBE, 1, group_ids=[group], include_authorized_operations=False)
    assert resp.groups[0].error_code == E.GROUP_ID_NOT_FOUND


def test_consumer_group_id_is_not_a_share_group(wire):
    group, topic = _names()
    create_topic(wire, topic)
    hb = wire.call(68, 1, group_id=group, member_id="c" * 22, member_epoch=0, rebalance_timeout_ms=30000,
                   subscribed_topic_names=[topic], server_assignor=None, topic_partitions=[])
    assert hb.error_code == E.NONE
    r = heartbeat(wire, group, "s", 0, [topic])
    assert (r.error_code, r.error_message) == (E.GROUP_ID_NOT_FOUND, f"Group {group} is not a share group.")
    d = wire.call(DESCRIBE, 1, group_ids=[group], include_authorized_operations=False)
    assert (d.groups[0].error_code, d.groups[0].error_message) == (
        E.GROUP_ID_NOT_FOUND, f"Group {group} is not a share group.")


def test_new_partitions_bump_the_epoch(wire):
    group, topic = _names()
    create_topic(wire, topic, partitions=1)
    tid = topic_id(wire, topic)
    heartbeat(wire, group, "m", 0, [topic])
    Req = REQUESTS[37]
    cp = wire.call(37, 3, topics=[Req.CreatePartitionsTopic(name=topic, count=3, assignments=None)], timeout_ms=10000,
                   validate_only=False)
    assert cp.results[0].error_code == E.NONE
    r = heartbeat(wire, group, "m", 1)
    assert r.member_epoch == 2 and _assigned(r) == {tid: [0, 1, 2]}


def test_classic_and_offset_apis_on_a_share_group(wire):
    group, topic = _names()
    create_topic(wire, topic)
    heartbeat(wire, group, "m", 0, [topic])
    d = wire.call(15, 6, groups=[group], include_authorized_operations=False).groups[0]
    assert (d.error_code, d.error_message, d.group_state) == (
        E.GROUP_ID_NOT_FOUND, f"Group {group} is not a classic group.", "Dead")
    J = REQUESTS[11]
    join = wire.call(11, 9, group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=30000, member_id="",
                     group_instance_id=None, protocol_type="consumer",
                     protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"")], reason=None)
    assert join.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    C = REQUESTS[8]
    commit = wire.call(8, 9, group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                       retention_time_ms=-1, topics=[C.OffsetCommitRequestTopic(name=topic, partitions=[
                           C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                               partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                               committed_metadata="")])])
    assert commit.topics[0].partitions[0].error_code == E.GROUP_ID_NOT_FOUND
    F = REQUESTS[9]
    fetched = wire.call(9, 9, groups=[F.OffsetFetchRequestGroup(group_id=group, member_id=None, member_epoch=-1,
                                                                topics=None)], require_stable=False)
    assert fetched.groups[0].error_code == E.GROUP_ID_NOT_FOUND


def test_share_version_zero_turns_share_groups_off(broker, wire):
    group, topic = _names()
    create_topic(wire, topic)
    Key = REQUESTS[57].FeatureUpdateKey

    def set_level(level: int, upgrade_type: int) -> None:
        resp = wire.call(57, 1, timeout_ms=60000, validate_only=False, feature_updates=[
            Key(feature="share.version", max_version_level=level, upgrade_type=upgrade_type)])
        assert resp.error_code == E.NONE and resp.results[0].error_code == E.NONE, resp

    set_level(0, 2)  # safe downgrade
    try:
        assert heartbeat(wire, group, "m", 0, [topic]).error_code == E.UNSUPPORTED_VERSION
        d = wire.call(DESCRIBE, 1, group_ids=[group], include_authorized_operations=False)
        assert d.groups[0].error_code == E.UNSUPPORTED_VERSION
        fetch = wire.call(78, 1, group_id=group, member_id="m", share_session_epoch=0, max_wait_ms=0, min_bytes=1,
                          max_bytes=1024, max_records=10, batch_size=10, topics=[], forgotten_topics_data=[])
        assert fetch.error_code == E.UNSUPPORTED_VERSION
    finally:
        set_level(2, 1)
    assert heartbeat(wire, group, "m", 0, [topic]).error_code == E.NONE
