"""KIP-858: the controller records each new replica's log dir as Kafka 4.4's
ReplicationControlManager does (ClusterControlManager.defaultDir): the broker's only registered
dir, MIGRATING when it registered none, UNASSIGNED when it registered several; nothing below
metadata.version 17. For CreateTopics, CreatePartitions and a reassignment's added replicas."""

from __future__ import annotations

import asyncio
import random
import uuid
from types import SimpleNamespace

from kbroker.controller.placement import partition_records, place_replicas
from kbroker.controller.reassignment import alter_partition_reassignments
from kbroker.controller.topic_plans import plan_partitions, plan_topic
from kbroker.metadata.directories import DIR_MIGRATING, MV_DIRECTORY_ASSIGNMENT, default_dir, has_online_dir
from kbroker.metadata.features import METADATA_VERSION, bootstrap_levels
from kbroker.metadata.image import DIR_UNASSIGNED
from kbroker.metadata.metadata_records import decode_frame, encode_frame
from kbroker.metadata.new_topic import NewTopic
from kbroker.wiring.jbod import JbodAgent, pending_assignments
from kbroker_protocol.messages.alter_partition_reassignments import AlterPartitionReassignmentsRequest as Req
from kbroker_protocol.messages.metadata_records import (
    FeatureLevelRecord,
    PartitionChangeRecord,
    PartitionRecord,
)
from tests.unit.cluster_helpers import MemoryLog, heartbeat, new_cc, register

ONE, SEVERAL_A, SEVERAL_B = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _cluster(mv: int | None = None) -> MemoryLog:
    """Broker 3 registered with no dirs before metadata.version 17, then metadata.version raised
    (to ``mv``, default the latest); broker 1 with one dir (ONE), broker 2 with two; all unfenced."""
    levels = dict(bootstrap_levels())
    latest = levels[METADATA_VERSION] if mv is None else mv
    levels[METADATA_VERSION] = MV_DIRECTORY_ASSIGNMENT - 1
    log = MemoryLog(levels)
    cc = new_cc(log)
    for b, dirs in ((3, []), (1, [ONE]), (2, [SEVERAL_A, SEVERAL_B])):
        register(cc, log, b, log_dirs=dirs)
        if b == 3:
            log.commit([FeatureLevelRecord(name=METADATA_VERSION, feature_level=latest)])
        _, records = cc.heartbeat(log.image, heartbeat(b, log.image.brokers[b].epoch, log.image.offset), 0)
        log.commit(records)
        assert not log.image.brokers[b].fenced
    return log


def _partitions(records: list[object]) -> list[PartitionRecord]:
    return [r for r in records if isinstance(r, PartitionRecord)]


def _expected(replicas: list[int]) -> list[uuid.UUID]:
    return [{1: ONE, 2: DIR_UNASSIGNED, 3: DIR_MIGRATING}[b] for b in replicas]


def test_default_dir_is_the_only_dir_migrating_without_dirs_unassigned_with_several_or_unknown():
    log = _cluster()
    assert default_dir(log.image, 1) == ONE
    assert default_dir(log.image, 2) == DIR_UNASSIGNED
    assert default_dir(log.image, 3) == DIR_MIGRATING
    assert default_dir(log.image, 99) == DIR_UNASSIGNED


def test_create_topics_records_each_replicas_default_dir():
    log = _cluster()
    records = plan_topic(log.image, NewTopic("t", num_partitions=3, replication_factor=3), 1, 1)
    parts = _partitions(records)
    assert len(parts) == 3
    for p in parts:
        assert p.directories == _expected(p.replicas)
    manual = plan_topic(log.image, NewTopic("m", assignments={0: [2, 1], 1: [3, 2]}), 1, 1)
    assert [p.directories for p in _partitions(manual)] == [[DIR_UNASSIGNED, ONE], [DIR_MIGRATING, DIR_UNASSIGNED]]
    # the field survives the metadata log's frame, and the image keeps it
    for r in records:
        log.commit([decode_frame(encode_frame(r))])
    p0 = log.image.partition("t", 0)
    assert p0 is not None and p0.directories == _expected(p0.replicas)
    # a single-dir broker's replica is in its online dir: nothing changes for offline replicas
    assert all(has_online_dir(log.image, b, p0) for b in p0.replicas)


def test_create_partitions_records_each_replicas_default_dir():
    log = _cluster()
    log.commit(plan_topic(log.image, NewTopic("t", num_partitions=1, replication_factor=2), 1, 1))
    added = plan_partitions(log.image, "t", 3, None)
    assert [p.partition_id for p in added] == [1, 2]
    for p in added:
        assert p.directories == _expected(p.replicas)
    manual = plan_partitions(log.image, "t", 2, [[3, 1]])
    assert manual[0].directories == [DIR_MIGRATING, ONE]


def test_placed_partition_records_carry_the_default_dirs():
    log = _cluster()
    assignments = place_replicas(log.image, 4, 3, random.Random(7))
    for r in partition_records(log.image, uuid.uuid4(), 0, assignments):
        assert r.directories == _expected(r.replicas)


def test_no_directories_below_metadata_version_17():
    log = _cluster(MV_DIRECTORY_ASSIGNMENT - 1)
    for p in _partitions(plan_topic(log.image, NewTopic("t", num_partitions=2, replication_factor=3), 1, 1)):
        assert p.directories == []
    log.commit(plan_topic(log.image, NewTopic("u", assignments={0: [1]}), 1, 1))
    _, records = alter_partition_reassignments(log.image, _reassign({("u", 0): [1, 2]}))
    assert [r.directories for r in records if isinstance(r, PartitionChangeRecord)] == [None]


def _reassign(targets: dict[tuple[str, int], list[int]]) -> Req:
    return Req(timeout_ms=30000, allow_replication_factor_change=True, topics=[
        Req.ReassignableTopic(name=n, partitions=[Req.ReassignableTopic.ReassignablePartition(
            partition_index=i, replicas=replicas)]) for (n, i), replicas in targets.items()])


def test_a_reassignment_gives_added_replicas_their_default_dir_and_keeps_the_others():
    log = _cluster()
    log.commit(plan_topic(log.image, NewTopic("t", assignments={0: [2]}), 1, 1))
    # broker 2 said where its replica is (AssignReplicasToDirs)
    p = log.image.partition("t", 0)
    assert p is not None and p.directories == [DIR_UNASSIGNED]
    log.commit([PartitionChangeRecord(topic_id=p.topic_id, partition_id=0, directories=[SEVERAL_B])])
    _, records = alter_partition_reassignments(log.image, _reassign({("t", 0): [1, 3, 2]}))
    changes = [r for r in records if isinstance(r, PartitionChangeRecord)]
    assert len(changes) == 1
    # the target replicas first, then the ones being removed (none here): 1 and 3 are added
    assert changes[0].replicas == [1, 3, 2]
    assert changes[0].directories == [ONE, DIR_MIGRATING, SEVERAL_B]
    log.commit(records)
    p = log.image.partition("t", 0)
    assert p is not None and p.directories == [ONE, DIR_MIGRATING, SEVERAL_B]


def test_a_partition_without_recorded_dirs_keeps_them_migrating_when_a_replica_is_added():
    log = _cluster()
    topic_id = log.topic("old", [[3]])  # written before directories were recorded
    assert log.image.partition("old", 0).directories == []
    _, records = alter_partition_reassignments(log.image, _reassign({("old", 0): [3, 1]}))
    change = next(r for r in records if isinstance(r, PartitionChangeRecord))
    assert change.topic_id == topic_id and change.directories == [DIR_MIGRATING, ONE]


def test_a_single_dir_broker_reassigns_replicas_recorded_in_a_dir_it_no_longer_has(tmp_path):
    """A broker whose only dir was formatted again (new directory.id) says where its replicas are
    (Kafka's ReplicaManager.maybeUpdateTopicAssignment); replicas already in its dir need nothing."""
    log = _cluster()
    log.commit(plan_topic(log.image, NewTopic("t", assignments={0: [1, 2], 1: [1, 3]}), 1, 1))
    p0 = log.image.partition("t", 0)
    assert p0 is not None
    here = tmp_path / "data"
    assert pending_assignments(log.image, 1, lambda name, i: here, {here: ONE}, set()) == {}
    reformatted = uuid.uuid4()
    assert pending_assignments(log.image, 1, lambda name, i: here, {here: reformatted}, set()) == {
        reformatted: {p0.topic_id: [0, 1]}}
    # an offline dir, or a log this broker does not have, is not reported
    assert pending_assignments(log.image, 1, lambda name, i: here, {here: reformatted}, {here}) == {}
    assert pending_assignments(log.image, 1, lambda name, i: None, {here: reformatted}, set()) == {}


def test_no_assignment_is_sent_below_metadata_version_17(tmp_path):
    log = _cluster(MV_DIRECTORY_ASSIGNMENT - 1)
    log.topic("t", [[1]])
    here = tmp_path / "data"
    sent: list[object] = []

    class Channel:
        async def send(self, *args: object, **kw: object) -> object:
            sent.append(args)
            raise AssertionError("no AssignReplicasToDirs below metadata.version 17")

    broker = SimpleNamespace(
        image=log.image, node_id=1, config={"broker.heartbeat.interval.ms": 1000},
        lifecycle=SimpleNamespace(broker_epoch=log.image.brokers[1].epoch),
        log_manager=SimpleNamespace(log_dir_of=lambda name, i: here, offline_dirs=[]))

    async def once() -> bool:
        agent = JbodAgent(broker, {here: uuid.uuid4()}, 1000, Channel())
        return await agent.assign_once()

    assert asyncio.run(once()) is False and sent == []
