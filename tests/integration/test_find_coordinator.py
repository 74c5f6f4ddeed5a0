"""FindCoordinator for groups and transactional ids, as Kafka's ``KafkaApis.getCoordinator``: the
leader of the key's internal-topic partition, found from the metadata alone (also while the
coordinator loads: the group and transaction APIs answer COORDINATOR_LOAD_IN_PROGRESS then);
COORDINATOR_NOT_AVAILABLE for a partition without a leader here."""

from __future__ import annotations

import uuid

import pytest
from wire import Wire, find_coordinator

from kbroker.coordinator.partitioning import partition_for
from kbroker.metadata import metadata_records as mr
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest

E = ErrorCode
GROUP, TRANSACTION = 0, 1
PARTITIONS = 5  # offsets.topic.num.partitions and transaction.state.log.num.partitions of BrokerThread


@pytest.fixture(scope="module")
def fbroker():
    with BrokerThread() as b:
        yield b


@pytest.fixture
def wire(fbroker):
    w = Wire(fbroker.bootstrap_servers)
    yield w
    w.close()


def find(wire: Wire, key_type: int, *keys: str) -> list[tuple[str, int, int]]:
    resp = wire.call(FindCoordinatorRequest(key_type=key_type, coordinator_keys=list(keys)), 4)
    return [(c.key, c.error_code, c.node_id) for c in resp.coordinators]


def find_v1(wire: Wire, key_type: int, key: str) -> tuple[int, int]:
    resp = wire.call(FindCoordinatorRequest(key=key, key_type=key_type), 1)
    return resp.error_code, resp.node_id


def init_pid(wire: Wire, transactional_id: str) -> int:
    resp = wire.call(InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=60000,
                                           producer_id=-1, producer_epoch=-1), 4)
    return resp.error_code


def keys_in_different_partitions(prefix: str) -> tuple[str, str]:
    first = f"{prefix}-{uuid.uuid4().hex[:8]}"
    while True:
        other = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if partition_for(other, PARTITIONS) != partition_for(first, PARTITIONS):
            return first, other


def set_leader(broker, topic_name: str, index: int, leader: int) -> None:
    def run():
        b = broker.broker
        topic = b.image.topic(topic_name)
        b.controller.commit([mr.PartitionChangeRecord(partition_id=index, topic_id=topic.topic_id, leader=leader)])
    broker.call(run)


def set_loaded(broker, coordinator: str, loaded: bool) -> None:
    def run():
        getattr(broker.broker, coordinator).loaded = loaded
    broker.call(run)


def warm_up(wire: Wire) -> None:
    """The internal topics exist (a first FindCoordinator of each type creates a missing one)."""
    for key_type in (GROUP, TRANSACTION):
        find_coordinator(wire, key_type, ["warm-up"])
        assert find(wire, key_type, "warm-up") == [("warm-up", E.NONE, 1)]


def test_transaction_coordinator_found_while_loading(fbroker, wire):
    warm_up(wire)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    set_loaded(fbroker, "txn_coordinator", False)
    try:
        assert find(wire, TRANSACTION, tid) == [(tid, E.NONE, 1)]
        assert find_v1(wire, TRANSACTION, tid) == (E.NONE, 1)
        assert init_pid(wire, tid) == E.COORDINATOR_LOAD_IN_PROGRESS
    finally:
        set_loaded(fbroker, "txn_coordinator", True)
    assert init_pid(wire, tid) == E.NONE


def test_group_coordinator_found_while_loading(fbroker, wire):
    warm_up(wire)
    group = f"g-{uuid.uuid4().hex[:8]}"
    set_loaded(fbroker, "group_coordinator", False)
    try:
        assert find(wire, GROUP, group) == [(group, E.NONE, 1)]
        hb = wire.call(ConsumerGroupHeartbeatRequest(
            group_id=group, member_id="m", member_epoch=0, rebalance_timeout_ms=30000, subscribed_topic_names=[],
            topic_partitions=[]), 0)
        assert hb.error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    finally:
        set_loaded(fbroker, "group_coordinator", True)


@pytest.mark.parametrize("key_type,topic", [(TRANSACTION, "__transaction_state"), (GROUP, "__consumer_offsets")])
def test_partition_without_leader_is_not_available(fbroker, wire, key_type, topic):
    warm_up(wire)
    key, other = keys_in_different_partitions("k")
    index = partition_for(key, PARTITIONS)
    set_leader(fbroker, topic, index, -1)
    try:
        assert find(wire, key_type, key, other) == [(key, E.COORDINATOR_NOT_AVAILABLE, -1), (other, E.NONE, 1)]
        assert find_v1(wire, key_type, key) == (E.COORDINATOR_NOT_AVAILABLE, -1)
        if key_type == TRANSACTION:
            # The transaction APIs: this broker is not the coordinator of the id.
            assert init_pid(wire, key) == E.NOT_COORDINATOR
            assert init_pid(wire, other) == E.NONE
    finally:
        set_leader(fbroker, topic, index, 1)
    assert find(wire, key_type, key) == [(key, E.NONE, 1)]
    if key_type == TRANSACTION:
        assert init_pid(wire, key) == E.NONE
