"""Random broker lifecycles against the controller logic (registration, heartbeats, session expiry,
controlled shutdown, restarts, AlterPartition from leaders, topic creation by placement), with
Kafka's leader/ISR invariants checked after every committed batch, with and without ELR."""

from __future__ import annotations

import random
import uuid

import pytest

from kbroker.controller.cluster_control import ClusterControl
from kbroker.controller.placement import PlacementError, partition_records, place_replicas
from kbroker.controller.replication_control import is_active
from kbroker.metadata.image import NO_LEADER
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest
from kbroker_protocol.messages.metadata_records import TopicRecord
from tests.unit.cluster_helpers import CLUSTER_ID, MemoryLog, heartbeat, registration

BROKERS = (1, 2, 3, 4)
APD = AlterPartitionRequest.TopicData.PartitionData


class Sim:
    def __init__(self, seed: int, elr: bool) -> None:
        self.rng = random.Random(seed)
        self.log = MemoryLog(None if elr else {"metadata.version": 33})
        self.elr = elr
        self.cc = ClusterControl(CLUSTER_ID)
        self.cc.attach(self.log.image)
        self.cc.activate(self.log.image, 0)
        self.now = 0
        self.alive: set[int] = set()  # brokers whose process runs and heartbeats
        self.incarnations: dict[int, uuid.UUID] = {}
        self.epochs_seen: dict[tuple[uuid.UUID, int], tuple[int, int]] = {}
        self.topics = 0

    @property
    def image(self):
        return self.log.image

    def commit(self, records) -> int:
        last = self.log.commit(records)
        self.check()
        return last

    # -- actions ------------------------------------------------------------------------------

    def start(self, b: int) -> None:
        incarnation = uuid.uuid4()
        resp, records = self.cc.register_broker(self.image, registration(b, incarnation), 4, self.now,
                                                self.log.next_offset)
        if resp.error_code == ErrorCode.DUPLICATE_BROKER_REGISTRATION:
            return  # the old session has not expired yet
        assert resp.error_code == ErrorCode.NONE, resp
        self.commit(records)
        self.alive.add(b)
        self.incarnations[b] = incarnation

    def beat(self, b: int, **kw) -> None:
        reg = self.image.brokers.get(b)
        if reg is None or reg.incarnation_id != self.incarnations.get(b):
            return
        resp, records = self.cc.heartbeat(self.image, heartbeat(b, reg.epoch, self.image.offset, **kw), self.now)
        assert resp.error_code == ErrorCode.NONE
        last = self.commit(records) if records else self.log.next_offset - 1
        self.cc.heartbeat_committed(b, last)
        if resp.should_shut_down:
            self.alive.discard(b)
            assert self.image.brokers[b].fenced

    def alter_isr(self) -> None:
        parts = [(t, p) for t in self.image.topics.values() for p in t.partitions.values() if p.leader != NO_LEADER]
        if not parts:
            return
        t, p = self.rng.choice(parts)
        if p.leader not in self.alive:
            return
        others = [r for r in p.replicas if r != p.leader]
        new_isr = [p.leader] + [r for r in others if self.rng.random() < 0.6]
        epochs = [self.image.brokers[r].epoch if r in self.image.brokers else -1 for r in new_isr]
        req = AlterPartitionRequest(broker_id=p.leader, broker_epoch=self.image.brokers[p.leader].epoch, topics=[
            AlterPartitionRequest.TopicData(topic_id=t.topic_id, partitions=[APD(
                partition_index=p.partition, leader_epoch=p.leader_epoch, partition_epoch=p.partition_epoch,
                new_isr_with_epochs=[APD.BrokerState(broker_id=r, broker_epoch=e) for r, e in zip(new_isr, epochs,
                                                                                              strict=True)],
                leader_recovery_state=0)])])
        from kbroker.controller.replication_control import alter_partition

        resp, records = alter_partition(self.image, req, 3)
        error = resp.topics[0].partitions[0].error_code
        eligible = all(is_active(self.image, r) for r in new_isr)
        assert (error == ErrorCode.NONE) == eligible, (error, new_isr)
        self.commit(records)

    def create_topic(self) -> None:
        try:
            assignments = place_replicas(self.image, self.rng.randrange(1, 4), self.rng.randrange(1, 4), self.rng)
            topic_id = uuid.uuid4()
            records = partition_records(self.image, topic_id, 0, assignments)
        except PlacementError:
            return
        self.topics += 1
        self.commit([TopicRecord(name=f"t{self.topics}", topic_id=topic_id), *records])

    def step(self) -> None:
        rng = self.rng
        action = rng.randrange(10)
        if action == 0:
            b = rng.choice(BROKERS)
            if b not in self.alive:
                self.start(b)
        elif action == 1 and self.alive:
            self.alive.discard(rng.choice(sorted(self.alive)))  # crash: no more heartbeats
        elif action == 2 and self.alive:
            self.beat(rng.choice(sorted(self.alive)), want_shut_down=True)
        elif action == 3:
            self.create_topic()
        elif action == 4:
            self.alter_isr()
        else:
            self.now += rng.choice([100, 1000, 3000])
            for b in sorted(self.alive):
                reg = self.image.brokers.get(b)
                shutting_down = reg is not None and reg.in_controlled_shutdown
                self.beat(b, want_shut_down=shutting_down)
            while True:
                found, records = self.cc.fence_stale_broker(self.image, self.now)
                if not found:
                    break
                self.commit(records)

    # -- invariants -----------------------------------------------------------------------------

    def check(self) -> None:
        image = self.image
        for t in image.topics.values():
            for p in t.partitions.values():
                key = (t.topic_id, p.partition)
                where = f"{t.name}-{p.partition} {p}"
                assert len(set(p.isr)) == len(p.isr) and set(p.isr) <= set(p.replicas), where
                assert set(p.elr) <= set(p.replicas) and not set(p.elr) & set(p.isr), where
                if p.leader != NO_LEADER:
                    assert p.leader in p.isr, where
                    assert is_active(image, p.leader), where
                if self.elr:
                    for r in p.isr:
                        reg = image.brokers.get(r)
                        assert reg is not None and not reg.fenced, where
                elif p.leader == NO_LEADER:
                    assert len(p.isr) >= 1, where
                else:
                    assert all(not image.brokers[r].fenced for r in p.isr if r in image.brokers), where
                before = self.epochs_seen.get(key)
                if before is not None:
                    assert p.leader_epoch >= before[0] and p.partition_epoch >= before[1], where
                self.epochs_seen[key] = (p.leader_epoch, p.partition_epoch)


@pytest.mark.parametrize("elr", [True, False], ids=["elr", "no-elr"])
@pytest.mark.parametrize("seed", range(40))
def test_random_lifecycles_keep_kafkas_invariants(seed, elr):
    sim = Sim(seed, elr)
    for b in BROKERS:
        sim.start(b)
    for _ in range(150):
        sim.step()
    # The brokers still running keep their sessions and can all be unfenced.
    for b in sorted(sim.alive):
        sim.beat(b)
    for b in sorted(sim.alive):
        reg = sim.image.brokers[b]
        assert reg.in_controlled_shutdown or not reg.fenced
