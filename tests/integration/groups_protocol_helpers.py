"""Classic group request builders shared by the group protocol tests (moved from test_groups_protocol)."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.join_group import JoinGroupRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.sync_group import SyncGroupRequest


def join_request(group, member_id="", instance=None, session=10000, rebalance=10000, protocols=None,
                 protocol_type="consumer"):
    protocols = protocols or [("range", b"meta-range"), ("roundrobin", b"meta-rr")]
    return JoinGroupRequest(
        group_id=group, session_timeout_ms=session, rebalance_timeout_ms=rebalance, member_id=member_id,
        group_instance_id=instance, protocol_type=protocol_type,
        protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name=n, metadata=m) for n, m in protocols])


def sync_request(group, generation, member_id, assignments=(), instance=None):
    return SyncGroupRequest(
        group_id=group, generation_id=generation, member_id=member_id, group_instance_id=instance,
        protocol_type="consumer", protocol_name="range",
        assignments=[SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a) for m, a in assignments])


def commit_request(group, generation, member_id, topic, offsets, instance=None, metadata="m"):
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    return OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=generation, member_id=member_id, group_instance_id=instance,
        topics=[T(name=topic, partitions=[
            T.OffsetCommitRequestPartition(partition_index=p, committed_offset=o, committed_metadata=metadata)
            for p, o in offsets.items()])])


def commit_errors(response) -> dict[int, int]:
    return {p.partition_index: p.error_code for t in response.topics for p in t.partitions}


def join_member(wire, group, version=5, **kw):
    """A full JoinGroup (with the MEMBER_ID_REQUIRED round trip on v4+) answered at once."""
    resp = wire.call(join_request(group, **kw), version)
    if resp.error_code == ErrorCode.MEMBER_ID_REQUIRED:
        resp = wire.call(join_request(group, member_id=resp.member_id, **kw), version)
    return resp


def create_topic(broker, name: str, partitions: int) -> None:
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import create_topic as create

    result = broker.call(lambda: create(broker.broker, NewTopic(name, partitions, 1)))
    assert result.error == ErrorCode.NONE
