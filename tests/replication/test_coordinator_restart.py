"""Regression (docs/faults.md, "What the kbroker runs found", 2): a node restarted after a kill came
back failing at start-up with ``RuntimeError: __consumer_offsets-1 is not hosted here``: the group
coordinator replayed every partition of ``__consumer_offsets`` its metadata named, including those
held by other brokers. Now it loads only the partitions this node leads (Kafka's onElection).

A single combined node (the sole voter, so its metadata log is replayed as it starts) is given a
``__consumer_offsets`` whose partition 1 is held by broker 2 only, then restarted on its data."""

from __future__ import annotations

import uuid
from pathlib import Path

from kbroker.coordinator.partitioning import partition_for
from kbroker.metadata import metadata_records as mr
from kbroker.replication.broker_connection import BrokerConnection
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest

OC = OffsetCommitRequest
OFFSETS = "__consumer_offsets"


def _group(index: int) -> str:
    """A group id whose coordinator partition (of 2) is ``index``."""
    return next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 2) == index)


def _topic(name: str, replicas: list[list[int]], configs: dict[str, str] | None = None) -> list[mr.MetadataRecord]:
    topic_id = uuid.uuid4()
    records: list[mr.MetadataRecord] = [mr.TopicRecord(name=name, topic_id=topic_id)]
    for key, value in (configs or {}).items():
        records.append(mr.ConfigRecord(resource_type=2, resource_name=name, name=key, value=value))
    for i, rs in enumerate(replicas):
        records.append(mr.PartitionRecord(partition_id=i, topic_id=topic_id, replicas=rs, isr=rs, leader=rs[0],
                                          leader_epoch=0, partition_epoch=0))
    return records


async def _connect(embedded: EmbeddedBroker) -> BrokerConnection:
    host, port = embedded.bootstrap_servers.split(",")[0].rsplit(":", 1)
    conn = BrokerConnection(host, int(port), "restart-test", 100 << 20)
    await conn.open(10)
    return conn


async def _commit(conn: BrokerConnection, group: str, offset: int) -> int:
    resp = await conn.request(OC(group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
        OC.OffsetCommitRequestTopic(name="data", partitions=[
            OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=0, committed_offset=offset)])]),
        8, 10)
    return int(resp.topics[0].partitions[0].error_code)


async def _fetch(conn: BrokerConnection, group: str) -> tuple[int, int]:
    resp = await conn.request(OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name="data", partition_indexes=[0])]), 7, 10)
    if resp.error_code != ErrorCode.NONE:
        return int(resp.error_code), -1
    p = resp.topics[0].partitions[0]
    return int(p.error_code), int(p.committed_offset)


async def test_a_node_restarts_with_offsets_partitions_it_does_not_host(tmp_path: Path) -> None:
    config = {"offsets.topic.num.partitions": "2", "offsets.topic.replication.factor": "1"}
    mine, theirs = _group(0), _group(1)
    embedded = EmbeddedBroker(config, data_dir=str(tmp_path))
    await embedded.start()
    try:
        broker = embedded.broker
        assert broker is not None and broker.controller is not None
        broker.controller.commit(_topic("data", [[1]]))
        broker.controller.commit(_topic(OFFSETS, [[1], [2]], {"cleanup.policy": "compact"}))
        assert broker.partition(OFFSETS, 0) is not None and broker.partition(OFFSETS, 1) is None
        conn = await _connect(embedded)
        try:
            assert await _commit(conn, mine, 42) == ErrorCode.NONE
        finally:
            conn.close()
    finally:
        await embedded.stop()

    restarted = EmbeddedBroker(config, data_dir=str(tmp_path))
    await restarted.start()  # raised "__consumer_offsets-1 is not hosted here" before the fix
    try:
        broker = restarted.broker
        assert broker is not None and broker.group_coordinator is not None
        assert broker.image.topic(OFFSETS) is not None and broker.partition(OFFSETS, 1) is None
        assert broker.group_coordinator.led_partitions == {0}
        conn = await _connect(restarted)
        try:
            assert await _fetch(conn, mine) == (ErrorCode.NONE, 42)  # partition 0 was loaded from its log
            assert await _fetch(conn, theirs) == (ErrorCode.NOT_COORDINATOR, -1)  # broker 2 leads partition 1
        finally:
            conn.close()
    finally:
        await restarted.stop()
