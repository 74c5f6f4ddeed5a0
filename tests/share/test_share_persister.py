"""A share partition whose share coordinator is another broker (Kafka's ``DefaultStatePersister``
path, ``kbroker/coordinator/share_persister.py``): the manager's persister is replaced by a fake
coordinator, so the leader's side is checked on one in-process broker: state read and initialized
there, every acknowledgement written there before it is answered, Kafka's error mapping
(``SharePartition.fetchPersisterError``), a failed write reloading the share partition, and the
persister's retries of NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS. The real RPCs between
brokers are exercised by tests/cluster/test_share_cluster.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from share_wire import ACCEPT, E, ShareClient, acquired, part, topic_id
from wire import Wire, create_topic, produce

from kbroker.coordinator import share_persister
from kbroker.coordinator.share_persister import PersisterError, SharePersister, _Retry, share_partition_error
from kbroker.coordinator.share_state import ShareState
from kbroker.testing import BrokerThread


class FakeCoordinator:
    """The share coordinator on "another broker": state per key, errors to answer next."""

    def __init__(self) -> None:
        self.states: dict[tuple, ShareState] = {}
        self.calls: list[tuple] = []
        self.fail_reads: list[ErrorCodeLike] = []
        self.fail_writes: list[ErrorCodeLike] = []

    def is_local(self, group_id, topic_id, partition) -> bool:
        return False

    async def read(self, group_id, topic_id, partition, leader_epoch):
        self.calls.append(("read", group_id, partition, leader_epoch))
        if self.fail_reads:
            raise PersisterError(self.fail_reads.pop(0))
        s = self.states.get((group_id, topic_id, partition))
        return None if s is None else ShareState(state_epoch=s.state_epoch, start_offset=s.start_offset,
                                                 batches=list(s.batches))

    async def initialize(self, group_id, topic_id, partition, state_epoch, start_offset):
        self.calls.append(("initialize", group_id, partition, state_epoch, start_offset))
        self.states[(group_id, topic_id, partition)] = ShareState(state_epoch=state_epoch, start_offset=start_offset)

    async def write(self, group_id, topic_id, partition, state_epoch, leader_epoch, start_offset, batches, complete):
        await asyncio.sleep(0)  # the answer comes later, as over the network
        self.calls.append(("write", group_id, partition, start_offset, [(b.first_offset, b.last_offset, b.state)
                                                                        for b in batches]))
        if self.fail_writes:
            raise PersisterError(self.fail_writes.pop(0))
        self.states[(group_id, topic_id, partition)] = ShareState(state_epoch=state_epoch, start_offset=start_offset,
                                                                  batches=list(batches))


ErrorCodeLike = E


@pytest.fixture
def broker():
    with BrokerThread({}, clock="manual") as b:
        yield b


@pytest.fixture
def fake(broker):
    f = FakeCoordinator()
    broker.call(lambda: setattr(broker.broker.share_coordinator.manager, "persister", f))
    return f


def _setup(wire: Wire) -> tuple[str, uuid.UUID]:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    produce(wire, topic, 0, 3)  # before the group: auto.offset.reset=latest starts after these
    return topic, topic_id(wire, topic)


def test_state_initialized_and_acknowledgements_written_at_the_share_coordinator(broker, fake, wire):
    topic, tid = _setup(wire)
    c = ShareClient(wire, "g1")
    assert c.fetch(tid).error_code == E.NONE
    assert fake.calls[:2] == [("read", "g1", 0, 0), ("initialize", "g1", 0, 0, 3)]
    produce(wire, topic, 0, 2)
    assert acquired(c.fetch(tid)) == [(3, 4, 1)]
    ack = c.ack(tid, [(3, 4, [ACCEPT])])
    assert part(ack).error_code == E.NONE
    # Answered after the write: the share coordinator has the new start offset.
    assert fake.calls[-1][0] == "write" and fake.calls[-1][3] == 5
    assert fake.states[("g1", tid, 0)].start_offset == 5
    # The local store was never used for this share partition.
    assert broker.call(lambda: broker.broker.share_coordinator.store.read("g1", tid, 0)) is None


def test_failed_write_fails_the_acknowledgement_and_reloads_from_the_coordinator(broker, fake, wire):
    topic, tid = _setup(wire)
    c = ShareClient(wire, "g2")
    c.fetch(tid)
    produce(wire, topic, 0, 2)
    assert acquired(c.fetch(tid)) == [(3, 4, 1)]
    fake.fail_writes.append(E.FENCED_STATE_EPOCH)
    ack = c.ack(tid, [(3, 4, [ACCEPT])])
    assert part(ack).error_code == E.FENCED_STATE_EPOCH
    # The share partition left the cache and reads its state again: the records come again.
    assert acquired(c.fetch(tid)) == [(3, 4, 1)]
    assert [call[0] for call in fake.calls].count("read") == 2
    assert part(c.ack(tid, [(3, 4, [ACCEPT])])).error_code == E.NONE
    assert fake.states[("g2", tid, 0)].start_offset == 5


@pytest.mark.parametrize("code, expected", [
    (E.FENCED_LEADER_EPOCH, E.NOT_LEADER_OR_FOLLOWER),
    (E.COORDINATOR_LOAD_IN_PROGRESS, E.COORDINATOR_NOT_AVAILABLE),
    (E.FENCED_STATE_EPOCH, E.FENCED_STATE_EPOCH),
    (E.INVALID_REQUEST, E.UNKNOWN_SERVER_ERROR),
])
def test_failed_read_is_the_partition_error(broker, fake, wire, code, expected):
    _topic, tid = _setup(wire)
    c = ShareClient(wire, "g3")
    fake.fail_reads.append(code)
    resp = c.fetch(tid)
    assert resp.error_code == E.NONE and part(resp).error_code == expected
    again = c.fetch(tid)  # the next fetch loads it (nothing to deliver: the partition is left out)
    assert again.error_code == E.NONE and again.responses == []
    assert ("initialize", "g3", 0, 0, 3) in fake.calls
    assert broker.call(lambda: ("g3", tid, 0) in broker.broker.share_coordinator.manager.partitions)


def test_persister_retries_coordinator_errors_then_maps_them(monkeypatch):
    monkeypatch.setattr(share_persister, "BACKOFF_INITIAL_MS", 0)
    p = SharePersister(broker=None, store=None)
    answers: list = [_Retry(E.NOT_COORDINATOR, "moved"), _Retry(E.COORDINATOR_LOAD_IN_PROGRESS, "loading"), "ok"]
    attempts = []

    async def attempt(*args):
        attempts.append(args)
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(p, "_attempt", attempt)
    assert asyncio.run(p._call("g", uuid.uuid4(), 0, 84, 0, None)) == "ok"
    assert len(attempts) == 3

    answers[:] = [_Retry(E.COORDINATOR_LOAD_IN_PROGRESS, "loading")] * share_persister.MAX_ATTEMPTS
    attempts.clear()
    with pytest.raises(PersisterError) as err:
        asyncio.run(p._call("g", uuid.uuid4(), 0, 85, 1, None))
    assert len(attempts) == share_persister.MAX_ATTEMPTS
    assert err.value.code == E.COORDINATOR_LOAD_IN_PROGRESS
    assert share_partition_error(err.value.code) == E.COORDINATOR_NOT_AVAILABLE


def test_own_write_through_the_rpc_keeps_the_share_partition(broker, wire):
    """The persister of a share partition may write to its own broker (the state topic's partition
    turned out to be led here): WriteShareGroupState must not drop the writer's share partition and
    its acquisitions (they would be delivered again)."""
    from kbroker_protocol.messages.write_share_group_state import WriteShareGroupStateRequest as W

    topic, tid = _setup(wire)
    c = ShareClient(wire, "g4")
    c.fetch(tid)
    produce(wire, topic, 0, 2)
    assert acquired(c.fetch(tid)) == [(3, 4, 1)]
    manager = broker.call(lambda: broker.broker.share_coordinator.manager)
    sp = broker.call(lambda: manager.partitions[("g4", tid, 0)])
    broker.call(lambda: manager._remote.add(("g4", tid, 0)))  # as a share partition loaded through the persister
    resp = wire.call(W(group_id="g4", topics=[W.WriteStateData(topic_id=tid, partitions=[W.WriteStateData.PartitionData(
        partition=0, state_epoch=0, leader_epoch=0, start_offset=3, delivery_complete_count=0, state_batches=[])])]),
        1)
    assert resp.results[0].partitions[0].error_code == E.NONE
    assert broker.call(lambda: manager.partitions.get(("g4", tid, 0))) is sp
    assert c.fetch(tid).responses == []  # 3 and 4 stay acquired by the member: nothing to give
