"""JBOD in KRaft on the controller (kbroker.controller.dir_control, directories): a heartbeat naming
an offline log dir moves ISR and leadership off the broker's replicas in that dir and drops the dir
from its registration; AssignReplicasToDirs records each replica's dir; a replica in an offline dir
is never elected. As Kafka 4.4's ReplicationControlManager.handleDirectoriesOffline /
handleAssignReplicasToDirs and LeaderAcceptor."""

from __future__ import annotations

import uuid

from kbroker.controller.dir_control import assign_replicas_to_dirs
from kbroker.controller.replication_control import (
    ReplicationSettings,
    is_active,
    leader_acceptor,
    unclean_leader_elections,
)
from kbroker.metadata.directories import DIR_LOST, DIR_MIGRATING, has_online_dir, is_online
from kbroker.metadata.image import DIR_UNASSIGNED, NO_LEADER
from kbroker.metadata.snapshot import image_to_records, records_to_image
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.assign_replicas_to_dirs import AssignReplicasToDirsRequest
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kbroker_protocol.messages.metadata_records import (
    BrokerRegistrationChangeRecord,
    PartitionChangeRecord,
)
from tests.unit.cluster_helpers import MemoryLog, heartbeat, new_cc, register, running

D1, D2 = uuid.uuid4(), uuid.uuid4()
A = AssignReplicasToDirsRequest


def assign(broker_id: int, epoch: int, placement: dict[uuid.UUID, list[tuple[uuid.UUID, int]]]) -> A:
    dirs = []
    for d, parts in placement.items():
        by_topic: dict[uuid.UUID, list[int]] = {}
        for t, p in parts:
            by_topic.setdefault(t, []).append(p)
        dirs.append(A.DirectoryData(id=d, topics=[
            A.DirectoryData.TopicData(topic_id=t, partitions=[A.DirectoryData.TopicData.PartitionData(partition_index=p)
                                                              for p in ps]) for t, ps in by_topic.items()]))
    return A(broker_id=broker_id, broker_epoch=epoch, directories=dirs)


def offline_heartbeat(broker_id: int, epoch: int, offset: int, dirs: list[uuid.UUID]) -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=offset,
                                  offline_log_dirs=dirs)


def jbod_cluster(features: dict[str, int] | None = None, configs: dict[str, str] | None = None):
    """Brokers 1-3 running, broker 1 with dirs D1 and D2; topic t: p0 led by 1 in D1, p1 led by 1
    in D2, p2 led by 2 with 1's replica in D1."""
    log = MemoryLog(features)
    cc = new_cc(log)
    register(cc, log, 1, log_dirs=[D1, D2])
    resp, records = cc.heartbeat(log.image, heartbeat(1, log.image.brokers[1].epoch, log.image.offset), 0)
    log.commit(records)
    running(cc, log, 2)
    running(cc, log, 3)
    t = log.topic("t", [[1, 2, 3], [1, 3, 2], [2, 1, 3]], configs)
    resp, records = assign_replicas_to_dirs(log.image, ReplicationSettings(),
                                            assign(1, log.image.brokers[1].epoch, {D1: [(t, 0), (t, 2)], D2: [(t, 1)]}))
    assert resp.error_code == ErrorCode.NONE
    assert [p.error_code for d in resp.directories for tp in d.topics for p in tp.partitions] == [0, 0, 0]
    assert [type(r) for r in records] == [PartitionChangeRecord] * 3
    log.commit(records)
    return log, cc, t


def test_assignment_records_each_replicas_directory():
    log, _, _ = jbod_cluster()
    p0, p1, p2 = (log.image.partition("t", i) for i in range(3))
    assert p0.directories == [D1, DIR_UNASSIGNED, DIR_UNASSIGNED]
    assert p1.directories == [D2, DIR_UNASSIGNED, DIR_UNASSIGNED]
    assert p2.directories == [DIR_UNASSIGNED, D1, DIR_UNASSIGNED]
    # a directory-only change keeps the leader epoch and bumps the partition epoch
    assert (p0.leader, p0.leader_epoch, p0.partition_epoch) == (1, 0, 1)
    # the same assignment again writes nothing
    again = assign(1, log.image.brokers[1].epoch, {D1: [(p0.topic_id, 0)]})
    resp, records = assign_replicas_to_dirs(log.image, ReplicationSettings(), again)
    assert resp.error_code == ErrorCode.NONE and records == []


def test_offline_dir_in_a_heartbeat_moves_leadership_and_isr_off_its_replicas_only():
    log, cc, _ = jbod_cluster()
    epoch = log.image.brokers[1].epoch
    resp, records = cc.heartbeat(log.image, offline_heartbeat(1, epoch, log.image.offset, [D1]), 1000)
    assert resp.error_code == ErrorCode.NONE and not resp.is_fenced
    assert [type(r) for r in records] == [PartitionChangeRecord, PartitionChangeRecord, BrokerRegistrationChangeRecord]
    p0_change, p2_change, reg_change = records
    assert (p0_change.partition_id, p0_change.leader, p0_change.isr) == (0, 2, [2, 3])
    assert (p2_change.partition_id, p2_change.isr) == (2, [2, 3]) and p2_change.leader == -2  # leader kept
    assert reg_change.broker_id == 1 and reg_change.broker_epoch == epoch and reg_change.log_dirs == [D2]
    log.commit(records)
    assert log.image.brokers[1].log_dirs == [D2] and not log.image.brokers[1].fenced
    p1 = log.image.partition("t", 1)
    assert p1.leader == 1 and p1.isr == [1, 3, 2]  # the partition in the live dir stays where it was
    # the dir is already known offline: the next heartbeats change nothing
    _, records = cc.heartbeat(log.image, offline_heartbeat(1, epoch, log.image.offset, [D1]), 2000)
    assert records == []


def test_a_replica_in_an_offline_dir_is_never_elected():
    # no ELR, unclean election on: once the ISR is gone any live replica may lead, but not one
    # whose dir is offline
    log, cc, _ = jbod_cluster({"metadata.version": 33}, {"unclean.leader.election.enable": "true"})
    _, records = cc.heartbeat(log.image, offline_heartbeat(1, log.image.brokers[1].epoch, log.image.offset, [D1]), 1)
    log.commit(records)
    p0 = log.image.partition("t", 0)
    assert is_active(log.image, 1) and not leader_acceptor(log.image, p0)(1)
    assert leader_acceptor(log.image, log.image.partition("t", 1))(1)
    # brokers 2 and 3 (p0's ISR) stop heartbeating; broker 1 keeps its session
    cc.heartbeat(log.image, offline_heartbeat(1, log.image.brokers[1].epoch, log.image.offset, [D1]), 5000)
    while True:
        records = cc.fence_expired(log.image, 9001)
        if not records:
            break
        log.commit(records)
    assert log.image.brokers[2].fenced and log.image.brokers[3].fenced and not log.image.brokers[1].fenced
    assert unclean_leader_elections(log.image) == []
    assert log.image.partition("t", 0).leader == NO_LEADER
    # p1's replica on broker 1 is in the live dir: it still leads
    assert log.image.partition("t", 1).leader == 1


def test_assigning_a_replica_to_an_offline_dir_moves_it_off_leadership():
    log, cc, t = jbod_cluster()
    _, records = cc.heartbeat(log.image, offline_heartbeat(1, log.image.brokers[1].epoch, log.image.offset, [D1]), 1)
    log.commit(records)
    # broker 1 reports p1 (which it leads) in the offline dir D1
    resp, records = assign_replicas_to_dirs(log.image, ReplicationSettings(),
                                            assign(1, log.image.brokers[1].epoch, {D1: [(t, 1)]}))
    assert resp.error_code == ErrorCode.NONE
    log.commit(records)
    p1 = log.image.partition("t", 1)
    assert p1.directories[0] == D1 and p1.leader == 3 and 1 not in p1.isr


def test_assignment_errors():
    log, _, t = jbod_cluster()
    epoch = log.image.brokers[1].epoch
    settings = ReplicationSettings()
    resp, records = assign_replicas_to_dirs(log.image, settings, assign(1, epoch + 1, {D1: [(t, 0)]}))
    assert resp.error_code == ErrorCode.STALE_BROKER_EPOCH and records == []
    resp, records = assign_replicas_to_dirs(log.image, settings, assign(9, 0, {D1: [(t, 0)]}))
    # Kafka's checkBrokerEpoch comes first: an unregistered broker is a stale epoch there
    assert resp.error_code == ErrorCode.STALE_BROKER_EPOCH and records == []
    u = log.topic("u", [[2, 3]])
    resp, records = assign_replicas_to_dirs(log.image, settings,
                                            assign(1, epoch, {D1: [(uuid.uuid4(), 0), (t, 7), (u, 0)]}))
    assert resp.error_code == ErrorCode.NONE and records == []
    codes = [p.error_code for d in resp.directories for tp in d.topics for p in tp.partitions]
    assert codes == [ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER]


def test_reregistration_with_the_repaired_dir_makes_it_online_again():
    log, cc, _ = jbod_cluster()
    _, records = cc.heartbeat(log.image, offline_heartbeat(1, log.image.brokers[1].epoch, log.image.offset, [D1]), 1)
    log.commit(records)
    assert not has_online_dir(log.image, 1, log.image.partition("t", 0))
    register(cc, log, 1, now=60_000, log_dirs=[D1, D2])  # the restart, session long expired
    assert sorted(log.image.brokers[1].log_dirs) == sorted([D1, D2])
    assert has_online_dir(log.image, 1, log.image.partition("t", 0))


def test_directory_ids():
    assert is_online(DIR_UNASSIGNED, [D1]) and is_online(DIR_MIGRATING, [D1]) and not is_online(DIR_LOST, [D1])
    assert is_online(D2, []) and is_online(D1, [D1]) and not is_online(D2, [D1])


def test_directories_follow_replica_changes_and_survive_a_snapshot():
    log, _, t = jbod_cluster()
    # a reassignment changing replicas without saying their dirs: the kept replica keeps its dir
    log.commit([PartitionChangeRecord(topic_id=t, partition_id=0, replicas=[3, 1, 4])])
    p0 = log.image.partition("t", 0)
    assert p0.directories == [DIR_UNASSIGNED, D1, DIR_UNASSIGNED]
    copy = records_to_image(image_to_records(log.image), log.image.offset)
    assert [copy.partition("t", i).directories for i in range(3)] == \
        [log.image.partition("t", i).directories for i in range(3)]
    assert copy.partition("t", 1).leader != NO_LEADER
