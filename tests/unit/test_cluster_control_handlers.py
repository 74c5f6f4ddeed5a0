"""The controller-listener handlers of cluster control (BrokerRegistration, BrokerHeartbeat,
UnregisterBroker): served on the controller listener only, committing before answering, an inactive
controller's answers, the runtime timers, a new controller term, and the real controller over its
metadata log."""

from __future__ import annotations

import asyncio

from kbroker.config import BrokerConfig
from kbroker.security.acls import Authorizer
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import (
    PartitionChangeRecord,
    RegisterBrokerRecord,
)
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest
from tests.unit.cluster_helpers import (
    CLUSTER_ID,
    MemoryLog,
    V,
    heartbeat,
    new_cc,
    registration,
    running,
)

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
