"""Admin request helpers shared by the admin API and restart tests (moved from test_admin_api)."""

from __future__ import annotations

from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


def partition_count(wire: Wire, name: str) -> int:
    resp = wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return len(resp.topics[0].partitions)


CP = REQUESTS[37]


DR = REQUESTS[21]


def delete_records(wire, version, name, offsets: dict[int, int]):
    resp = wire.call(21, version, topics=[DR.DeleteRecordsTopic(name=name, partitions=[
        DR.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=p, offset=o) for p, o in offsets.items()])],
        timeout_ms=5000)
    (topic,) = resp.topics
    assert topic.name == name
    return {p.partition_index: (p.error_code, p.low_watermark) for p in topic.partitions}


def list_offset(wire, name, partition, timestamp):
    LO = REQUESTS[2]
    resp = wire.call(2, 7, replica_id=-1, isolation_level=0, topics=[LO.ListOffsetsTopic(name=name, partitions=[
        LO.ListOffsetsTopic.ListOffsetsPartition(partition_index=partition, current_leader_epoch=-1,
                                                 timestamp=timestamp)])])
    part = resp.topics[0].partitions[0]
    assert part.error_code == E.NONE
    return part.offset


DTP = REQUESTS[75]


def dtp(wire, names, limit=2000, cursor=None):
    return wire.call(75, 0, topics=[DTP.TopicRequest(name=n) for n in names], response_partition_limit=limit,
                     cursor=None if cursor is None else DTP.Cursor(topic_name=cursor[0], partition_index=cursor[1]))


OE = REQUESTS[23]


def epoch_end(wire, version, name, partition, epoch, current=-1):
    fields = {"topics": [OE.OffsetForLeaderTopic(topic=name, partitions=[
        OE.OffsetForLeaderTopic.OffsetForLeaderPartition(partition=partition, current_leader_epoch=current,
                                                          leader_epoch=epoch)])]}
    if version >= 3:
        fields["replica_id"] = -1
    resp = wire.call(23, version, **fields)
    p = resp.topics[0].partitions[0]
    return p.error_code, p.leader_epoch, p.end_offset
