"""Partition reassignment on real brokers in one event loop: the controller's decisions
(kbroker.controller.reassignment and replication_control: AlterPartitionReassignments and
AlterPartition with the reassignment completing) applied to every broker as the quorum would. An added replica opens its
log and catches up from the leader; once in the ISR the reassignment completes, the leader moves
off a removed replica, and a removed replica stops and deletes its log."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from kbroker.controller.reassignment import alter_partition_reassignments
from kbroker.controller.replication_control import alter_partition
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import AlterPartitionReassignmentsRequest as Req
from kbroker_protocol.records import iter_records
from tests.replication.harness import Cluster, batch, fetch, produce, wait_for

E = ErrorCode


class Controller:
    """AlterPartition answered by the controller's own logic on the cluster's image."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.answers: list[Any] = []

    def channel(self, node_id: int) -> Any:
        controller = self

        class Channel:
            async def send(self, api_key: int, request: Any) -> Any:
                assert api_key == 56 and request.broker_id == node_id
                response, records = alter_partition(controller.cluster.reference_image(), request, 3)
                if records:
                    controller.cluster.apply(records)
                controller.answers.append(response)
                return response

        return Channel()

    def reassign(self, topic: str, index: int, replicas: list[int] | None) -> Any:
        request = Req(topics=[Req.ReassignableTopic(name=topic, partitions=[
            Req.ReassignableTopic.ReassignablePartition(partition_index=index, replicas=replicas)])])
        response, records = alter_partition_reassignments(self.cluster.reference_image(), request)
        if records:
            self.cluster.apply(records)
        return response.responses[0].partitions[0]


def _cluster(size: int) -> tuple[Cluster, Controller]:
    cluster = Cluster(size, config={"replica.lag.time.max.ms": "30000"})
    controller = Controller(cluster)
    cluster.controller = controller  # type: ignore[assignment]
    return cluster, controller


def _values(resp) -> list[bytes]:
    data = bytes(resp.responses[0].partitions[0].records or b"")
    values, pos = [], 0
    while pos + 12 <= len(data):  # each batch: base offset (8), length (4), then length bytes
        values += [r.value for r in iter_records(data, pos)]
        pos += 12 + struct.unpack_from(">i", data, pos + 8)[0]
    return values


def _state(cluster: Cluster, topic: str = "t", index: int = 0):
    p = cluster.reference_image().partition(topic, index)
    return p.replicas, sorted(p.isr), p.leader, p.adding_replicas, p.removing_replicas


async def test_moving_a_partition_off_its_leader_copies_the_log_and_deletes_the_old_replica():
    cluster, controller = _cluster(4)
    async with cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        conn = await cluster.connect(1)
        try:
            for i in range(3):
                resp = await produce(conn, "t", batch([b"v%d-%d" % (i, j) for j in range(5)]), acks=-1)
                assert resp.responses[0].partition_responses[0].error_code == E.NONE
        finally:
            conn.close()
        old_dir = Path(cluster.partition(1, "t").log.directory)
        epoch = cluster.reference_image().partition("t", 0).leader_epoch
        assert controller.reassign("t", 0, [4, 2, 3]).error_code == E.NONE
        # 4 catches up, the leader (1) adds it to the ISR, which completes the move: 1 leaves,
        # and the first in-sync target replica leads.
        await wait_for(lambda: _state(cluster) == ([4, 2, 3], [2, 3, 4], 4, [], []), message="the move",
                       details=lambda: _state(cluster))
        assert cluster.reference_image().partition("t", 0).leader_epoch == epoch + 1
        assert any(p.error_code == E.NEW_LEADER_ELECTED for a in controller.answers for t in a.topics
                   for p in t.partitions)
        await wait_for(lambda: cluster.partition(4, "t") is not None and cluster.partition(4, "t").is_leader,
                       message="broker 4 leading")
        assert cluster.partition(1, "t") is None and not old_dir.exists()
        assert cluster.log_bytes(4, "t") == cluster.log_bytes(2, "t")
        conn = await cluster.connect(4)
        try:
            resp = await produce(conn, "t", batch([b"after"]), acks=-1)
            assert resp.responses[0].partition_responses[0].error_code == E.NONE
            assert resp.responses[0].partition_responses[0].base_offset == 15
            await wait_for(lambda: cluster.partition(4, "t").log.high_watermark == 16, message="high watermark")
            values = _values(await fetch(conn, "t", 0))
            assert values == [b"v%d-%d" % (i, j) for i in range(3) for j in range(5)] + [b"after"]
        finally:
            conn.close()


async def test_a_cancelled_reassignment_removes_the_added_replica_and_its_log():
    cluster, controller = _cluster(3)
    async with cluster:
        cluster.create_topic("t", [[1, 2]])
        # Broker 3's fetches are refused: it never catches up, so the move stays under way.
        cluster.nodes[1].add_fault(api="Fetch", client_id="broker-3-fetcher-0", error="NOT_LEADER_OR_FOLLOWER")
        assert controller.reassign("t", 0, [1, 3]).error_code == E.NONE
        assert _state(cluster) == ([1, 3, 2], [1, 2], 1, [3], [2])
        await wait_for(lambda: cluster.partition(3, "t") is not None, message="broker 3 opens its replica")
        new_dir = Path(cluster.partition(3, "t").log.directory)
        assert new_dir.exists()
        assert controller.reassign("t", 0, None).error_code == E.NONE
        assert _state(cluster) == ([1, 2], [1, 2], 1, [], [])
        assert cluster.partition(3, "t") is None and not new_dir.exists()
        assert cluster.partition(1, "t").is_leader and sorted(cluster.partition(1, "t").followers) == [2]
        assert controller.reassign("t", 0, None).error_code == E.NO_REASSIGNMENT_IN_PROGRESS


async def test_a_replica_reassigned_away_while_its_broker_was_down_is_deleted_at_start(tmp_path):
    """The metadata says the broker is no longer a replica, its log is still on disk (it was down
    when the move completed): the log is deleted at start-up (Kafka's stray replicas)."""
    import shutil
    import uuid

    from kbroker.metadata import metadata_records as mr
    from kbroker.testing import EmbeddedBroker

    data = tmp_path / "data"
    kept = tmp_path / "kept-s-0"
    topic_id = uuid.uuid4()
    broker = EmbeddedBroker({"node.id": "1"}, data_dir=str(data))
    await broker.start()
    try:
        broker.broker.controller.commit([
            mr.TopicRecord(name="s", topic_id=topic_id),
            mr.PartitionRecord(partition_id=0, topic_id=topic_id, replicas=[1], isr=[1], leader=1, leader_epoch=0,
                               partition_epoch=0)])
        log_dir = Path(broker.broker.partition("s", 0).log.directory)
    finally:
        await broker.stop()
    shutil.copytree(log_dir, kept)  # the replica as it was on disk
    broker = EmbeddedBroker({"node.id": "1"}, data_dir=str(data))
    await broker.start()
    try:
        assert broker.broker.partition("s", 0) is not None
        broker.broker.controller.commit([mr.PartitionChangeRecord(partition_id=0, topic_id=topic_id, replicas=[2],
                                                                  isr=[2], leader=2)])
        assert broker.broker.partition("s", 0) is None and not log_dir.exists()  # deleted at once when up
    finally:
        await broker.stop()
    shutil.copytree(kept, log_dir)  # as if it had been down: still on disk
    broker = EmbeddedBroker({"node.id": "1"}, data_dir=str(data))
    await broker.start()
    try:
        assert broker.broker.image.partition("s", 0).replicas == [2]
        assert broker.broker.partition("s", 0) is None
        assert not log_dir.exists() and ("s", 0) not in broker.broker.log_manager.partitions()
    finally:
        await broker.stop()
