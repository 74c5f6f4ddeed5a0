"""Broker registration, heartbeats, fencing, controlled shutdown and unregistration in the active
controller (kbroker/controller/cluster_control.py), as Kafka's ClusterControlManager and
BrokerHeartbeatManager have them."""

from __future__ import annotations

import uuid

from kbroker.controller.cluster_control import ClusterControl
from kbroker.metadata.image import FENCING_FENCE, FENCING_UNFENCE, NO_LEADER
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import (
    BrokerRegistrationChangeRecord,
    PartitionChangeRecord,
    RegisterBrokerRecord,
    UnregisterBrokerRecord,
)
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest
from tests.unit.cluster_helpers import (
    CLUSTER_ID,
    MemoryLog,
    V,
    heartbeat,
    new_cc,
    register,
    registration,
    running,
)

# -- registration ------------------------------------------------------------------------------


def test_new_registration_is_fenced_and_its_epoch_is_the_record_offset():
    log = MemoryLog()
    cc = new_cc(log)
    req = registration(1, rack="r1")
    resp, records = cc.register_broker(log.image, req, V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.NONE
    assert [type(r) for r in records] == [RegisterBrokerRecord]
    rec = records[0]
    assert rec.fenced is True
    assert rec.broker_epoch == resp.broker_epoch == log.next_offset
    assert rec.rack == "r1"
    assert [(e.name, e.host, e.port) for e in rec.end_points] == [("PLAINTEXT", "localhost", 9093)]
    assert rec.log_dirs == req.log_dirs
    log.commit(records)
    reg = log.image.brokers[1]
    assert reg.fenced and reg.epoch == resp.broker_epoch == reg.register_offset
    assert reg.rack == "r1" and reg.endpoints["PLAINTEXT"] == ("localhost", 9093, 0)
    assert reg.incarnation_id == req.incarnation_id


def test_wrong_cluster_id_is_inconsistent_and_writes_nothing():
    log = MemoryLog()
    cc = new_cc(log)
    resp, records = cc.register_broker(log.image, registration(1, cluster_id="other"), V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
    assert resp.broker_epoch == -1
    assert records == []


def test_duplicate_registration_while_the_other_incarnation_has_a_live_session():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = running(cc, log, 1, now=1000)
    other = registration(1)
    resp, records = cc.register_broker(log.image, other, V, 1000 + 9000, log.next_offset)
    assert resp.error_code == ErrorCode.DUPLICATE_BROKER_REGISTRATION and records == []
    # Once the session has expired (9000 ms without a heartbeat), the new incarnation registers.
    resp, records = cc.register_broker(log.image, other, V, 1000 + 9001, log.next_offset)
    assert resp.error_code == ErrorCode.NONE
    assert resp.broker_epoch == log.next_offset != epoch
    log.commit(records)
    assert log.image.brokers[1].incarnation_id == other.incarnation_id
    assert log.image.brokers[1].fenced


def test_reregistration_of_the_same_incarnation_keeps_epoch_and_fencing():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = running(cc, log, 1)
    req = registration(1, incarnation=log.image.brokers[1].incarnation_id, rack="r2")
    resp, records = cc.register_broker(log.image, req, V, 10, log.next_offset)
    assert resp.error_code == ErrorCode.NONE and resp.broker_epoch == epoch
    assert records[-1].fenced is False and records[-1].broker_epoch == epoch
    log.commit(records)
    assert log.image.brokers[1].rack == "r2" and not log.image.brokers[1].fenced


def test_unsupported_finalized_feature_level():
    log = MemoryLog()
    cc = new_cc(log)
    mv = log.image.features["metadata.version"]
    features = {"metadata.version": (7, mv - 1)}
    resp, records = cc.register_broker(log.image, registration(1, features=features), V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION and records == []


def test_finalized_feature_the_broker_does_not_list_must_be_level_zero():
    log = MemoryLog()
    cc = new_cc(log)
    assert log.image.features["group.version"] == 1
    features = {"metadata.version": (7, 33)}  # no group.version: the broker supports only 0
    resp, records = cc.register_broker(log.image, registration(1, features=features), V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION and records == []


def test_registration_without_metadata_version_is_invalid():
    log = MemoryLog(features={"metadata.version": 33})
    cc = new_cc(log)
    resp, _ = cc.register_broker(log.image, registration(1, features={}), V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.INVALID_REGISTRATION


def test_log_directory_checks():
    log = MemoryLog()
    cc = new_cc(log)
    d = uuid.uuid4()
    for dirs in ([], [uuid.UUID(int=1)], [d, d]):
        resp, records = cc.register_broker(log.image, registration(1, log_dirs=dirs), V, 0, log.next_offset)
        assert resp.error_code == ErrorCode.INVALID_REGISTRATION and records == [], dirs
    register(cc, log, 1, log_dirs=[d])
    resp, _ = cc.register_broker(log.image, registration(2, log_dirs=[d]), V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.INVALID_REGISTRATION


def test_new_incarnation_leaves_the_isr_of_the_old_one():
    log = MemoryLog()
    cc = new_cc(log)
    for b in (1, 2, 3):
        running(cc, log, b)
    topic_id = log.topic("t", [[1, 2, 3]])
    # Broker 1 restarts without a clean shutdown after its session expired: its partitions move.
    resp, records = cc.register_broker(log.image, registration(1), V, 20_000, log.next_offset)
    assert resp.error_code == ErrorCode.NONE
    assert isinstance(records[-1], RegisterBrokerRecord)
    assert resp.broker_epoch == log.next_offset  # the batch's first offset, as Kafka's nextWriteOffset
    change = records[0]
    assert isinstance(change, PartitionChangeRecord) and change.topic_id == topic_id
    assert change.leader == 2 and change.isr == [2, 3]


# -- heartbeats --------------------------------------------------------------------------------


def test_heartbeat_from_an_unregistered_broker_or_a_stale_epoch():
    log = MemoryLog()
    cc = new_cc(log)
    resp, records = cc.heartbeat(log.image, heartbeat(5, 0, 0), 0)
    assert resp.error_code == ErrorCode.STALE_BROKER_EPOCH and records == []
    epoch = register(cc, log, 1)
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch - 1, 100), 0)
    assert resp.error_code == ErrorCode.STALE_BROKER_EPOCH and records == []


def test_unfenced_only_once_caught_up_with_its_registration():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = register(cc, log, 1)
    register_offset = log.image.brokers[1].register_offset
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, register_offset - 1), 0)
    assert resp.error_code == ErrorCode.NONE
    assert resp.is_fenced and not resp.is_caught_up and not resp.should_shut_down
    assert records == []
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, register_offset), 1)
    assert not resp.is_fenced and resp.is_caught_up
    assert records == [BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=epoch, fenced=FENCING_UNFENCE)]
    log.commit(records)
    assert not log.image.brokers[1].fenced


def test_want_fence_keeps_a_caught_up_broker_fenced():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = register(cc, log, 1)
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, log.image.offset, want_fence=True), 0)
    assert resp.is_fenced and resp.is_caught_up and records == []


def test_unfencing_elects_the_returning_broker_for_leaderless_partitions():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = register(cc, log, 1)
    log.topic("t", [[1, 2]], isr=[[1]], leaders=[NO_LEADER])
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, log.image.offset), 0)
    assert not resp.is_fenced
    assert isinstance(records[0], BrokerRegistrationChangeRecord)
    assert isinstance(records[1], PartitionChangeRecord) and records[1].leader == 1
    log.commit(records)
    p = log.image.partition("t", 0)
    assert p.leader == 1 and p.leader_epoch == 1 and p.partition_epoch == 1


# -- session expiry ----------------------------------------------------------------------------


def test_fence_after_session_timeout_moves_leadership_and_bumps_epochs():
    log = MemoryLog()
    cc = new_cc(log)
    for b in (1, 2, 3):
        running(cc, log, b, now=0)
    log.topic("t", [[1, 2, 3], [2, 1, 3]])
    for b in (2, 3):
        cc.heartbeat(log.image, heartbeat(b, log.image.brokers[b].epoch, log.image.offset), 5000)
    assert cc.fence_expired(log.image, 9000) == []  # 9000 ms is not yet past the session
    records = cc.fence_expired(log.image, 9001)
    assert [type(r) for r in records] == [PartitionChangeRecord, PartitionChangeRecord,
                                         BrokerRegistrationChangeRecord]
    assert records[-1].broker_id == 1 and records[-1].fenced == FENCING_FENCE
    led, followed = records[0], records[1]
    assert led.partition_id == 0 and led.leader == 2 and led.isr == [2, 3]
    assert followed.partition_id == 1 and followed.leader == -2 and followed.isr == [2, 3]
    log.commit(records)
    assert log.image.brokers[1].fenced
    p0, p1 = log.image.partition("t", 0), log.image.partition("t", 1)
    assert (p0.leader, p0.leader_epoch, p0.partition_epoch) == (2, 1, 1)  # leader change: both epochs
    assert (p1.leader, p1.leader_epoch, p1.partition_epoch) == (2, 0, 1)  # ISR shrink: partition epoch only
    assert cc.fence_expired(log.image, 9002) == []  # brokers 2 and 3 are within their sessions


def test_partition_goes_leaderless_when_no_isr_member_is_alive():
    log = MemoryLog(features={"metadata.version": 33})  # no ELR
    cc = new_cc(log)
    running(cc, log, 1, now=0)
    running(cc, log, 2, now=0)
    log.topic("t", [[1, 2]], isr=[[1]])
    cc.heartbeat(log.image, heartbeat(2, log.image.brokers[2].epoch, log.image.offset), 5000)
    records = cc.fence_expired(log.image, 9001)
    change = records[0]
    assert change.leader == NO_LEADER
    assert change.isr is None  # without ELR the ISR never becomes empty: it keeps the last member
    log.commit(records)
    p = log.image.partition("t", 0)
    assert p.leader == NO_LEADER and p.isr == [1] and p.leader_epoch == 1


# -- controlled shutdown -----------------------------------------------------------------------


def test_controlled_shutdown_moves_leadership_then_shuts_down():
    log = MemoryLog()
    cc = new_cc(log)
    for b in (1, 2):
        running(cc, log, b)
    log.topic("t", [[1, 2]])
    epoch = log.image.brokers[1].epoch
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, log.image.offset, want_shut_down=True), 10)
    assert not resp.is_fenced and not resp.should_shut_down
    assert records[0].in_controlled_shutdown == 1 and records[0].broker_id == 1
    assert records[1].leader == 2 and records[1].isr == [2]
    last = log.commit(records)
    cc.heartbeat_committed(1, last)
    assert log.image.brokers[1].in_controlled_shutdown
    # Broker 2 has not yet caught up with the shutdown batch: not yet.
    cc.heartbeat(log.image, heartbeat(2, log.image.brokers[2].epoch, last - 1), 20)
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, last, want_shut_down=True), 20)
    assert not resp.should_shut_down and records == []
    cc.heartbeat(log.image, heartbeat(2, log.image.brokers[2].epoch, last), 30)
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, last, want_shut_down=True), 30)
    assert resp.should_shut_down and resp.is_fenced
    assert records == [BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=epoch, fenced=FENCING_FENCE)]


def test_shutdown_of_a_broker_leading_nothing_is_immediate():
    log = MemoryLog()
    cc = new_cc(log)
    for b in (1, 2):
        running(cc, log, b)
    log.topic("t", [[2, 1]])
    epoch = log.image.brokers[1].epoch
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, log.image.offset, want_shut_down=True), 10)
    assert resp.should_shut_down and resp.is_fenced
    assert records[0].isr == [2] and records[0].leader == -2
    assert records[-1].fenced == FENCING_FENCE


def test_fenced_broker_asking_to_shut_down_is_let_go():
    log = MemoryLog()
    cc = new_cc(log)
    epoch = register(cc, log, 1)
    resp, records = cc.heartbeat(log.image, heartbeat(1, epoch, 0, want_shut_down=True), 0)
    assert resp.should_shut_down and resp.is_fenced
    assert records[-1].fenced == FENCING_FENCE


# -- unregistration ----------------------------------------------------------------------------


def test_unregister():
    log = MemoryLog()
    cc = new_cc(log)
    resp, records = cc.unregister_broker(log.image, UnregisterBrokerRequest(broker_id=7), 0)
    assert resp.error_code == ErrorCode.BROKER_ID_NOT_REGISTERED and records == []
    assert resp.error_message == "Broker ID 7 is not currently registered"
    for b in (1, 2):
        running(cc, log, b)
    log.topic("t", [[1, 2]])
    resp, records = cc.unregister_broker(log.image, UnregisterBrokerRequest(broker_id=1), 0)
    assert resp.error_code == ErrorCode.NONE
    assert records[0].leader == 2 and records[0].isr == [2]
    assert records[-1] == UnregisterBrokerRecord(broker_id=1, broker_epoch=log.image.brokers[1].epoch)
    log.commit(records)
    assert 1 not in log.image.brokers


def test_a_controller_becoming_active_gives_unfenced_brokers_a_new_session():
    log = MemoryLog()
    cc = new_cc(log)
    running(cc, log, 1, now=0)
    successor = ClusterControl(CLUSTER_ID)
    successor.activate(log.image, 50_000)
    assert successor.fence_expired(log.image, 59_000) == []
    assert successor.fence_expired(log.image, 59_001)[-1].broker_id == 1
