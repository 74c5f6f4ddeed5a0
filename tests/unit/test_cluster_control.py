"""Broker registration, heartbeats, fencing, controlled shutdown and unregistration on the
controller (kbroker.controller.cluster_control), against Kafka 4.4's ClusterControlManager,
BrokerHeartbeatManager and ReplicationControlManager behaviour."""

from __future__ import annotations

import asyncio
import uuid

from kbroker.config import BrokerConfig
from kbroker.controller.cluster_control import ClusterControl
from kbroker.metadata.image import FENCING_FENCE, FENCING_UNFENCE, NO_LEADER
from kbroker.security.acls import Authorizer
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


# -- controller-listener handlers ----------------------------------------------------------------


def test_controller_only_apis_are_served_on_the_controller_listener_only():
    from kbroker.api import load_handlers
    from kbroker.api.api_versions import api_keys
    from kbroker.api.registry import HANDLERS, handlers_for

    load_handlers()
    controller_apis = {56, 62, 63}  # UnregisterBroker (64) is served on both listeners, as Kafka 4.4 has it
    assert controller_apis | {64} <= set(handlers_for("controller"))
    assert not controller_apis & set(HANDLERS)
    assert not controller_apis & {k.api_key for k in api_keys(False)}
    assert handlers_for("broker") is HANDLERS
    # UnregisterBroker is also served on the broker listeners (forwarded), as Kafka 4.4's KafkaApis
    assert 64 in HANDLERS and handlers_for("controller")[64] is not HANDLERS[64]


class _Controller:
    """A controller with the async ``write`` of the controller seam, over a MemoryLog."""

    def __init__(self, log: MemoryLog, active: bool = True) -> None:
        self.memory = log
        self.image = log.image
        self.writes: list[list] = []
        self.active = active
        self.cluster_control = None  # made by cluster_runtime.cluster_control_for
        # the term the tests' ClusterControl is built in (None, as a fresh one's): the sessions
        # the tests set up stay until a test moves the term
        self.term: int | None = None
        self._operation = asyncio.Lock()

    def is_active(self) -> bool:
        return self.active

    def exclusive(self) -> asyncio.Lock:
        return self._operation

    @property
    def next_write_offset(self) -> int:
        return self.memory.next_offset

    async def write(self, records: list) -> int:
        first = self.memory.next_offset
        self.writes.append(list(records))
        self.memory.commit(records)
        return first


class _Broker:
    def __init__(self, controller: _Controller) -> None:
        self.controller = controller
        self.cluster_id = CLUSTER_ID
        self.config = BrokerConfig({"broker.session.timeout.ms": "9000"}, warn=False)
        self.registered_locally = False
        self.authorizer = Authorizer()  # none configured: every request allowed


class _Ctx:
    def __init__(self, broker: _Broker, api_version: int) -> None:
        self.broker = broker
        self.api_version = api_version


def test_handlers_commit_before_answering():
    import asyncio

    from kbroker.api.broker_heartbeat import handle_broker_heartbeat
    from kbroker.api.broker_registration import handle_broker_registration
    from kbroker.api.unregister_broker import handle_unregister_broker

    log = MemoryLog()
    controller = _Controller(log)
    broker = _Broker(controller)

    async def scenario() -> None:
        resp = await handle_broker_registration(_Ctx(broker, 4), registration(1))
        assert resp.error_code == ErrorCode.NONE
        assert resp.broker_epoch == log.image.brokers[1].epoch == log.image.brokers[1].register_offset
        assert log.image.brokers[1].fenced
        resp = await handle_broker_heartbeat(_Ctx(broker, 2), heartbeat(1, resp.broker_epoch, log.image.offset))
        assert resp.error_code == ErrorCode.NONE and not resp.is_fenced
        assert not log.image.brokers[1].fenced  # committed before the answer
        resp = await handle_broker_registration(_Ctx(broker, 4), registration(2, cluster_id="x"))
        assert resp.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
        n = len(controller.writes)
        resp = await handle_unregister_broker(_Ctx(broker, 0), UnregisterBrokerRequest(broker_id=1))
        assert resp.error_code == ErrorCode.NONE and 1 not in log.image.brokers
        assert len(controller.writes) == n + 1

    asyncio.run(scenario())


def test_an_inactive_controller_neither_fences_nor_serves_heartbeats():
    # cluster_runtime.is_active read QuorumController.is_active, a method, as a flag: every
    # controller counted as active, fenced brokers and kept sessions on a standby controller
    import asyncio

    from kbroker.api.broker_heartbeat import handle_broker_heartbeat
    from kbroker.controller.cluster_runtime import cluster_control_for, fence_stale_brokers

    log = MemoryLog()
    controller = _Controller(log, active=False)
    broker = _Broker(controller)
    cc = cluster_control_for(broker)
    for b in (1, 2):
        running(cc, log, b, now=0)

    async def scenario() -> None:
        assert await fence_stale_brokers(broker, now=90_000) == 0
        resp = await handle_broker_heartbeat(_Ctx(broker, 2), heartbeat(1, log.image.brokers[1].epoch, log.image.offset))
        assert resp.error_code == ErrorCode.NOT_CONTROLLER and resp.is_fenced

    asyncio.run(scenario())
    assert controller.writes == []
    assert not log.image.brokers[1].fenced and not log.image.brokers[2].fenced


def test_runtime_timers_fence_stale_brokers_and_rebalance_leaders():
    import asyncio

    from kbroker.controller.cluster_runtime import balance_leaders, cluster_control_for, fence_stale_brokers

    log = MemoryLog()
    controller = _Controller(log)
    broker = _Broker(controller)
    cc = cluster_control_for(broker)
    assert cluster_control_for(broker) is cc
    for b in (1, 2, 3):
        running(cc, log, b, now=0)
    log.topic("t", [[1, 2], [2, 3]])

    async def scenario() -> None:
        assert await fence_stale_brokers(broker, now=9000) == 0
        for b in (2, 3):
            cc.heartbeat(log.image, heartbeat(b, log.image.brokers[b].epoch, log.image.offset), 8000)
        assert await fence_stale_brokers(broker, now=9001) == 1
        assert log.image.brokers[1].fenced and log.image.partition("t", 0).leader == 2
        # Broker 1 comes back: caught up, unfenced, in sync again; the rebalance returns it its leadership.
        epoch = log.image.brokers[1].epoch
        _, records = cc.heartbeat(log.image, heartbeat(1, epoch, log.image.offset), 9500)
        log.commit(records)
        assert await balance_leaders(broker) == 0  # not in the ISR yet
        log.commit([PartitionChangeRecord(topic_id=log.image.topic("t").topic_id, partition_id=0, isr=[2, 1])])
        assert await balance_leaders(broker) == 1
        assert log.image.partition("t", 0).leader == 1

    asyncio.run(scenario())


def test_an_inactive_controller_answers_not_controller_and_writes_nothing():
    import asyncio

    from kbroker.api.alter_partition import handle_alter_partition
    from kbroker.api.broker_heartbeat import handle_broker_heartbeat
    from kbroker.api.broker_registration import handle_broker_registration
    from kbroker.api.unregister_broker import handle_unregister_broker
    from kbroker_protocol.messages.alter_partition import AlterPartitionRequest

    log = MemoryLog()
    controller = _Controller(log)
    controller.active = False
    broker = _Broker(controller)

    async def scenario() -> None:
        cases = [
            (handle_broker_registration, 4, registration(1)),
            (handle_broker_heartbeat, 2, heartbeat(1, 0, 0)),
            (handle_alter_partition, 3, AlterPartitionRequest(broker_id=1, broker_epoch=0, topics=[])),
            (handle_unregister_broker, 0, UnregisterBrokerRequest(broker_id=1)),
        ]
        for handler, version, request in cases:
            resp = await handler(_Ctx(broker, version), request)
            assert resp.error_code == ErrorCode.NOT_CONTROLLER, handler
        assert controller.writes == []

    asyncio.run(scenario())


def test_a_failed_commit_answers_its_error():
    import asyncio

    from kbroker.api.broker_registration import handle_broker_registration
    from kbroker.controller.quorum import ControllerError

    log = MemoryLog()
    controller = _Controller(log)

    async def lost_leadership(records):
        raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.")

    controller.write = lost_leadership
    resp = asyncio.run(handle_broker_registration(_Ctx(_Broker(controller), 4), registration(1)))
    assert resp.error_code == ErrorCode.NOT_CONTROLLER and resp.broker_epoch == -1
    assert 1 not in log.image.brokers


def test_a_new_controller_term_rebuilds_the_sessions():
    import asyncio

    from kbroker.controller.cluster_runtime import cluster_control_for, fence_stale_brokers, operation

    log = MemoryLog()
    controller = _Controller(log)
    controller.term = 1
    broker = _Broker(controller)

    async def scenario() -> None:
        async with operation(broker) as cc:
            running(cc, log, 1, now=0)
        # This node loses and regains leadership: the broker's old contact time means nothing now.
        controller.term = 2
        assert await fence_stale_brokers(broker, now=9001) == 0
        assert cluster_control_for(broker).term == 2 and not log.image.brokers[1].fenced

    asyncio.run(scenario())


def test_install_controller_handlers_for_a_raw_dispatcher():
    import asyncio

    from kbroker.api.controller_listener import install_controller_handlers
    from kbroker_protocol.messages import RequestHeader

    log = MemoryLog()
    broker = _Broker(_Controller(log))
    table: dict = {}
    install_controller_handlers(broker, table)
    from kbroker.api.registry import handlers_for
    assert set(table) == set(handlers_for("controller")) and {56, 62, 63, 64} <= set(table)
    header = RequestHeader(request_api_key=62, request_api_version=4, correlation_id=1, client_id="t")
    resp = asyncio.run(table[62](header, registration(3)))
    assert resp.error_code == ErrorCode.NONE and 3 in log.image.brokers


def test_handlers_on_the_real_controller_and_its_metadata_log(tmp_path):
    """The handlers over QuorumController and a metadata log on disk: epochs are the offsets the
    records land at, and a replay of the log rebuilds the same registrations."""
    import asyncio

    from kbroker.api.broker_heartbeat import handle_broker_heartbeat
    from kbroker.api.broker_registration import handle_broker_registration
    from kbroker.controller.quorum import QuorumController
    from kbroker.log import PartitionLog
    from kbroker.metadata.image import MetadataImage
    from kbroker.metadata.metadata_log import METADATA_LOG_CONFIG

    plog = PartitionLog.open(tmp_path / "__cluster_metadata-0", METADATA_LOG_CONFIG)
    controller = QuorumController(1, plog, MetadataImage())
    controller.bootstrap_if_empty()
    broker = _Broker(controller)

    async def scenario() -> None:
        epochs = {}
        for b in (1, 2):
            end = plog.log_end_offset
            resp = await handle_broker_registration(_Ctx(broker, 4), registration(b))
            assert resp.error_code == ErrorCode.NONE and resp.broker_epoch == end
            epochs[b] = resp.broker_epoch
        resp = await handle_broker_heartbeat(_Ctx(broker, 2), heartbeat(2, epochs[2], controller.image.offset))
        assert not resp.is_fenced and resp.is_caught_up
        assert not controller.image.brokers[2].fenced and controller.image.brokers[1].fenced
        return epochs

    epochs = asyncio.run(scenario())
    replayed = QuorumController(1, plog, MetadataImage())
    replayed.replay()
    for b in (1, 2):
        a, r = controller.image.brokers[b], replayed.image.brokers[b]
        assert (r.epoch, r.fenced, r.register_offset, r.incarnation_id) == \
            (epochs[b], a.fenced, a.register_offset, a.incarnation_id)


def test_a_zookeeper_migrating_broker_is_refused():
    log = MemoryLog()
    cc = new_cc(log)
    req = registration(1)
    req.is_migrating_zk_broker = True
    resp, records = cc.register_broker(log.image, req, V, 0, log.next_offset)
    assert resp.error_code == ErrorCode.BROKER_ID_NOT_REGISTERED and records == []


def test_a_clean_restart_is_recognised_by_its_previous_epoch():
    """With ELR on, a broker that restarts without a clean shutdown leaves the ELR too (its log may
    have lost unflushed records); one that names its previous epoch (v3+) is treated as fenced."""
    log = MemoryLog()
    cc = new_cc(log)
    for b in (1, 2, 3):
        running(cc, log, b)
    log.topic("t", [[1, 2, 3]], configs={"min.insync.replicas": "3"})
    # Broker 1 is fenced by session expiry: with min ISR 3 it moves to the ELR.
    for b in (2, 3):
        cc.heartbeat(log.image, heartbeat(b, log.image.brokers[b].epoch, log.image.offset), 8000)
    log.commit(cc.fence_expired(log.image, 9001))
    p = log.image.partition("t", 0)
    assert p.isr == [2, 3] and p.elr == [1]
    old_epoch = log.image.brokers[1].epoch
    # An unclean restart: out of the ELR.
    _, records = cc.register_broker(log.image, registration(1), V, 20_000, log.next_offset)
    assert records[0].eligible_leader_replicas == []
    # A clean one (previous epoch given, v3+): the ELR keeps it.
    _, records = cc.register_broker(log.image, registration(1, previous_broker_epoch=old_epoch), V, 20_000,
                                    log.next_offset)
    assert [type(r) for r in records] == [RegisterBrokerRecord]
