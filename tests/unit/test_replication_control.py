"""Leader/ISR changes (kbroker.controller.replication_control) as Kafka 4.4's PartitionChangeBuilder
and ReplicationControlManager.alterPartition: epochs, elections, ELR, AlterPartition errors."""

from __future__ import annotations

import uuid

from kbroker.controller.replication_control import (
    Election,
    PartitionChangeBuilder,
    ReplicationSettings,
    generate_leader_and_isr_updates,
    partitions_with_broker_in_isr,
    preferred_leader_elections,
)
from kbroker.metadata.image import LEADER_UNCHANGED, NO_LEADER
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord
from tests.unit.cluster_helpers import TID, alter_isr, part, partition_error, running_cluster

NO_ELR = {"metadata.version": 33}


def builder(p, alive, *, min_isr=1, elr=False):
    return PartitionChangeBuilder(p, TID, 0, lambda r: r in alive, min_isr, elr)


# -- PartitionChangeBuilder ------------------------------------------------------------------


def test_no_change_builds_no_record():
    assert builder(part([1, 2, 3], [1, 2, 3], 1), {1, 2, 3}).build() is None


def test_isr_shrink_and_expand_do_not_set_the_leader():
    b = builder(part([1, 2, 3], [1, 2, 3], 1), {1, 2, 3})
    b.target_isr = [1, 2]
    r = b.build()
    assert r.isr == [1, 2] and r.leader == LEADER_UNCHANGED  # partition epoch only
    b = builder(part([1, 2, 3], [1], 1), {1, 2, 3})
    b.target_isr = [1, 3]
    r = b.build()
    assert r.isr == [1, 3] and r.leader == LEADER_UNCHANGED


def test_leader_leaving_the_isr_elects_the_first_live_isr_member_in_replica_order():
    b = builder(part([1, 3, 2], [2, 3, 1], 1), {2, 3})
    b.target_isr = [2, 3]
    r = b.build()
    assert r.leader == 3 and r.isr == [2, 3]


def test_no_live_isr_member_gives_no_leader_and_unclean_picks_a_live_replica():
    p = part([1, 2, 3], [1], 1)
    b = builder(p, {2, 3})
    r = b.build()
    assert r.leader == NO_LEADER
    b = builder(p, {2, 3})
    b.election = Election.UNCLEAN
    r = b.build()
    assert r.leader == 2 and r.isr == [2] and r.leader_recovery_state == 1  # RECOVERING


def test_preferred_election_returns_leadership_to_the_first_replica():
    b = builder(part([1, 2], [1, 2], 2), {1, 2})
    b.election = Election.PREFERRED
    assert b.build().leader == 1
    b = builder(part([1, 2], [2], 2), {1, 2})  # preferred out of the ISR: nothing to do
    b.election = Election.PREFERRED
    assert b.build() is None


def test_elr_keeps_replicas_leaving_the_isr_below_min_isr_electable():
    # RF 3, min ISR 2: the ISR shrinks to 1, the leaver goes to the ELR.
    b = builder(part([1, 2, 3], [1, 2], 1), {1, 3}, min_isr=2, elr=True)
    b.target_isr = [1]
    r = b.build()
    assert r.isr == [1] and r.eligible_leader_replicas == [2] and r.leader == LEADER_UNCHANGED
    # The last ISR member dies: the ISR becomes empty, the leader -1 remembered in LastKnownElr.
    p = part([1, 2, 3], [1], 1, elr=[2])
    b = builder(p, {3}, min_isr=2, elr=True)
    b.target_isr = []
    r = b.build()
    assert r.isr == [] and r.leader == NO_LEADER
    assert r.eligible_leader_replicas == [1, 2]
    assert r.last_known_elr == [1]
    # An ELR member coming back is elected cleanly and becomes the ISR.
    p = part([1, 2, 3], [], NO_LEADER, elr=[1, 2], last_known_elr=[1])
    b = builder(p, {2}, min_isr=2, elr=True)
    r = b.build()
    assert r.leader == 2 and r.isr == [2] and r.eligible_leader_replicas == [1] and r.last_known_elr == []


def test_elr_is_cleared_once_the_isr_reaches_min_isr():
    b = builder(part([1, 2, 3], [1], 1, elr=[2]), {1, 2, 3}, min_isr=2, elr=True)
    b.target_isr = [1, 3]
    r = b.build()
    assert r.isr == [1, 3] and r.eligible_leader_replicas == []


def test_reassignment_dropping_a_replica_bumps_the_leader_epoch():
    p = part([1, 2, 3, 4], [1, 2, 3, 4], 1)
    p.removing_replicas, p.adding_replicas = [3], [4]
    r = builder(p, {1, 2, 3, 4}).build()
    assert r.replicas == [1, 2, 4] and r.isr == [1, 2, 4]
    assert r.leader == 1  # same leader, set to bump the leader epoch
    assert r.removing_replicas == [] and r.adding_replicas == []


# -- the image applies the epochs ----------------------------------------------------------------


def test_unclean_election_when_the_topic_enables_it():
    log, cc = running_cluster(NO_ELR)
    log.topic("t", [[1, 2, 3]], configs={"unclean.leader.election.enable": "true"}, isr=[[1]])
    records: list = []
    generate_leader_and_isr_updates(log.image, ReplicationSettings(), 1, NO_LEADER, NO_LEADER,
                                    partitions_with_broker_in_isr(log.image, 1), records)
    assert records[0].leader == 2 and records[0].isr == [2] and records[0].leader_recovery_state == 1
    log.commit(records)
    p = log.image.partition("t", 0)
    assert (p.leader, p.isr, p.leader_epoch, p.partition_epoch, p.leader_recovery_state) == (2, [2], 1, 1, 1)


def test_auto_leader_rebalance_moves_leadership_back_to_preferred_replicas():
    log, cc = running_cluster()
    log.topic("t", [[1, 2], [2, 1], [3, 1]], leaders=[2, 2, 1], isr=[[1, 2], [2, 1], [1]])
    records = preferred_leader_elections(log.image)
    assert [(r.partition_id, r.leader) for r in records] == [(0, 1)]  # p2: replica 3 not in the ISR


# -- AlterPartition ------------------------------------------------------------------------------

def test_alter_partition_shrinks_the_isr_and_answers_the_new_state():
    log, _ = running_cluster()
    tid = log.topic("t", [[1, 2, 3]])
    resp, records = alter_isr(log, 1, tid, isr=[1, 2])
    assert resp.error_code == ErrorCode.NONE
    out = resp.topics[0].partitions[0]
    assert (out.error_code, out.leader_id, out.leader_epoch, out.partition_epoch, out.isr) == (0, 1, 0, 1, [1, 2])
    assert records[0].isr == [1, 2] and records[0].leader == LEADER_UNCHANGED
    log.commit(records)
    p = log.image.partition("t", 0)
    assert (p.isr, p.leader_epoch, p.partition_epoch) == ([1, 2], 0, 1)
    # The next request must carry the new partition epoch; the old one is stale.
    resp, records = alter_isr(log, 1, tid, isr=[1, 2, 3], partition_epoch=0)
    assert partition_error(resp) == ErrorCode.INVALID_UPDATE_VERSION and records == []
    resp, records = alter_isr(log, 1, tid, isr=[1, 2, 3], partition_epoch=1, version=2)
    assert partition_error(resp) == ErrorCode.NONE and records[0].isr == [1, 2, 3]


def test_alter_partition_errors():
    log, cc = running_cluster()
    tid = log.topic("t", [[1, 2, 3]])
    log.topic("u", [[2, 1]])
    resp, records = alter_isr(log, 1, tid, isr=[1, 2], broker_epoch=12345)
    assert resp.error_code == ErrorCode.STALE_BROKER_EPOCH and records == []
    resp, _ = alter_isr(log, 1, uuid.uuid4(), isr=[1, 2])
    assert partition_error(resp) == ErrorCode.UNKNOWN_TOPIC_ID
    resp, _ = alter_isr(log, 1, tid, isr=[1, 2], index=5)
    assert partition_error(resp) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    resp, _ = alter_isr(log, 1, tid, isr=[1, 2], leader_epoch=1)
    assert partition_error(resp) == ErrorCode.NOT_CONTROLLER  # an epoch from a newer controller
    resp, _ = alter_isr(log, 2, tid, isr=[1, 2])
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST  # not the leader (Kafka answers INVALID_REQUEST)
    resp, _ = alter_isr(log, 1, tid, isr=[2, 3])
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST  # the ISR must keep the leader
    resp, _ = alter_isr(log, 1, tid, isr=[1, 4], epochs=[log.image.brokers[1].epoch, -1])
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST  # 4 is not a replica
    resp, _ = alter_isr(log, 1, tid, isr=[1, 2], epochs=[log.image.brokers[1].epoch, 999])
    assert partition_error(resp) == ErrorCode.INELIGIBLE_REPLICA  # broker epoch mismatch
    # A leader change moves the epoch: the old leader's request is fenced.
    records: list = []
    generate_leader_and_isr_updates(log.image, ReplicationSettings(), 1, NO_LEADER, NO_LEADER,
                                    partitions_with_broker_in_isr(log.image, 1), records)
    log.commit(records)
    resp, _ = alter_isr(log, 2, tid, isr=[2, 3, 1], leader_epoch=0, partition_epoch=1)
    assert partition_error(resp) == ErrorCode.FENCED_LEADER_EPOCH
    # A fenced replica may not join the ISR.
    log.commit([BrokerRegistrationChangeRecord(broker_id=3, broker_epoch=log.image.brokers[3].epoch, fenced=1)])
    p = log.image.partition("t", 0)
    resp, _ = alter_isr(log, 2, tid, isr=[2, 3], leader_epoch=p.leader_epoch, partition_epoch=p.partition_epoch)
    assert partition_error(resp) == ErrorCode.INELIGIBLE_REPLICA


def test_a_replica_in_controlled_shutdown_is_ineligible():
    log, cc = running_cluster()
    tid = log.topic("t", [[1, 2]], isr=[[1]])
    log.commit([BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=log.image.brokers[2].epoch,
                                               in_controlled_shutdown=1)])
    resp, records = alter_isr(log, 1, tid, isr=[1, 2])
    assert partition_error(resp) == ErrorCode.INELIGIBLE_REPLICA and records == []


def test_a_snapshot_keeps_elr_recovery_state_and_broker_lifecycle_fields():
    from kbroker.metadata.snapshot import image_to_records, records_to_image

    log, cc = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2, 3]], configs={"min.insync.replicas": "2"}, isr=[[1, 2]])
    log.topic("u", [[3, 1]], configs={"unclean.leader.election.enable": "true"}, isr=[[1]])
    records: list = []
    generate_leader_and_isr_updates(log.image, ReplicationSettings(), 1, NO_LEADER, NO_LEADER,
                                    partitions_with_broker_in_isr(log.image, 1), records)
    log.commit(records)
    log.commit([BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=log.image.brokers[2].epoch,
                                               in_controlled_shutdown=1)])
    t, u = log.image.partition("t", 0), log.image.partition("u", 0)
    assert t.elr == [1] and u.leader_recovery_state == 1  # ELR kept broker 1; u was elected uncleanly
    copy = records_to_image(image_to_records(log.image), log.image.offset + 1)
    for name in ("t", "u"):
        a, b = log.image.partition(name, 0), copy.partition(name, 0)
        assert (a.elr, a.last_known_elr, a.leader_recovery_state, a.removing_replicas, a.adding_replicas) == \
            (b.elr, b.last_known_elr, b.leader_recovery_state, b.removing_replicas, b.adding_replicas)
    for broker_id, reg in log.image.brokers.items():
        other = copy.brokers[broker_id]
        assert (reg.in_controlled_shutdown, reg.log_dirs, reg.supported_features) == \
            (other.in_controlled_shutdown, other.log_dirs, other.supported_features)
    assert copy.brokers[2].in_controlled_shutdown and copy.brokers[1].log_dirs


def test_alter_partition_completing_a_reassignment_that_removes_the_leader_is_new_leader_elected():
    from kbroker_protocol.messages.metadata_records import PartitionChangeRecord

    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    tid = log.topic("t", [[1, 2, 3]])
    # Reassignment [1, 2, 3] -> [2, 3, 4] under way: 4 added, 1 (the leader) leaving.
    log.commit([PartitionChangeRecord(topic_id=tid, partition_id=0, replicas=[1, 2, 3, 4],
                                      removing_replicas=[1], adding_replicas=[4])])
    p = log.image.partition("t", 0)
    leader_epoch, partition_epoch = p.leader_epoch, p.partition_epoch
    resp, records = alter_isr(log, 1, tid, isr=[1, 2, 3, 4], leader_epoch=leader_epoch,
                           partition_epoch=partition_epoch)
    assert partition_error(resp) == ErrorCode.NEW_LEADER_ELECTED
    r = records[0]
    assert r.replicas == [2, 3, 4] and r.isr == [2, 3, 4] and r.leader == 2
    assert r.removing_replicas == [] and r.adding_replicas == []
    log.commit(records)
    p2 = log.image.partition("t", 0)
    assert (p2.leader, p2.leader_epoch, p2.partition_epoch) == (2, leader_epoch + 1, partition_epoch + 1)


def test_alter_partition_ends_leader_recovery_after_an_unclean_election():
    log, _ = running_cluster(NO_ELR)
    tid = log.topic("t", [[1, 2]], configs={"unclean.leader.election.enable": "true"}, isr=[[1]])
    records: list = []
    generate_leader_and_isr_updates(log.image, ReplicationSettings(), 1, NO_LEADER, NO_LEADER,
                                    partitions_with_broker_in_isr(log.image, 1), records)
    log.commit(records)
    p = log.image.partition("t", 0)
    assert (p.leader, p.leader_recovery_state) == (2, 1)
    # While recovering, the ISR may not grow beyond the leader.
    data = dict(leader_epoch=p.leader_epoch, partition_epoch=p.partition_epoch)
    resp, _ = alter_isr(log, 2, tid, isr=[2, 1], recovery=1, **data)
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST
    resp, records = alter_isr(log, 2, tid, isr=[2], **data)  # leader_recovery_state 0: recovered
    out = resp.topics[0].partitions[0]
    assert out.error_code == ErrorCode.NONE and out.leader_recovery_state == 0
    assert records[0].leader_recovery_state == 0 and records[0].leader == LEADER_UNCHANGED
    log.commit(records)
    assert log.image.partition("t", 0).leader_recovery_state == 0
    # Once recovered, a partition cannot go back to RECOVERING.
    p = log.image.partition("t", 0)
    resp, records = alter_isr(log, 2, tid, isr=[2], recovery=1, leader_epoch=p.leader_epoch,
                           partition_epoch=p.partition_epoch)
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST and records == []


def test_elect_leader_as_kafkas_election_leaders():
    from kbroker.controller.replication_control import ELECTION_PREFERRED, ELECTION_UNCLEAN, elect_leader

    log, _ = running_cluster(NO_ELR)
    log.topic("t", [[1, 2], [2, 1], [3, 1], [1, 2]], isr=[[1, 2], [1, 2], [1], [1]], leaders=[1, 1, 1, NO_LEADER])
    records: list = []
    assert elect_leader(log.image, "t", 0, ELECTION_PREFERRED, records)[0] == ErrorCode.ELECTION_NOT_NEEDED
    assert elect_leader(log.image, "t", 1, ELECTION_PREFERRED, records)[0] == ErrorCode.NONE
    assert records[-1].leader == 2
    # Replica 3 not in the ISR: the current leader stays, nothing to write.
    assert elect_leader(log.image, "t", 2, ELECTION_PREFERRED, records)[0] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert elect_leader(log.image, "t", 0, ELECTION_UNCLEAN, records)[0] == ErrorCode.ELECTION_NOT_NEEDED
    # Leaderless, its ISR member 1 alive: an unclean request elects it (cleanly).
    assert elect_leader(log.image, "t", 3, ELECTION_UNCLEAN, records)[0] == ErrorCode.NONE
    assert records[-1].leader == 1 and records[-1].isr is None
    assert elect_leader(log.image, "u", 0, ELECTION_PREFERRED, records)[0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert elect_leader(log.image, "t", 9, ELECTION_PREFERRED, records)[0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_turning_unclean_election_on_brings_offline_partitions_back():
    from kbroker.controller.replication_control import unclean_leader_elections
    from kbroker.metadata.image import RESOURCE_TOPIC
    from kbroker_protocol.messages.metadata_records import ConfigRecord

    log, _ = running_cluster(NO_ELR)
    log.topic("t", [[1, 2]], isr=[[1]], leaders=[NO_LEADER])
    log.commit([BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=log.image.brokers[1].epoch, fenced=1)])
    assert unclean_leader_elections(log.image) == []
    log.commit([ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name="t", name="unclean.leader.election.enable",
                             value="true")])
    records = unclean_leader_elections(log.image)
    assert [(r.leader, r.isr, r.leader_recovery_state) for r in records] == [(2, [2], 1)]
