"""The leader/follower rules of kbroker/replication/leadership.py, without brokers (sans-IO)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from kbroker.replication import leadership as L
from kbroker.replication.partition import Partition
from kbroker_protocol.errors import ErrorCode

E = ErrorCode
LAG = 30_000
T = 1_700_000_000_000  # a wall-clock time: a replica never caught up counts as caught up at 0


class FakeLog:
    def __init__(self, end: int = 0) -> None:
        self.log_end_offset = end
        self.log_start_offset = 0
        self._hw = 0
        self.epochs: list[tuple[int, int]] = []

    @property
    def high_watermark(self) -> int:
        return self._hw

    @high_watermark.setter
    def high_watermark(self, value: int) -> None:
        self._hw = max(self.log_start_offset, min(value, self.log_end_offset))

    def assign_epoch_start(self, epoch: int, offset: int) -> bool:
        self.epochs.append((epoch, offset))
        return True


def state(leader: int, replicas: list[int], isr: list[int], leader_epoch: int = 0, partition_epoch: int = 0):
    return SimpleNamespace(leader=leader, replicas=replicas, isr=isr, leader_epoch=leader_epoch,
                           partition_epoch=partition_epoch)


def partition(end: int = 0, min_isr: int = 1) -> Partition:
    return Partition("t", 0, uuid.uuid4(), FakeLog(end), -1, [], [], {"min.insync.replicas": min_isr}, node_id=1,
                     leader_id=-1, partition_epoch=-1)


def anyone(_replica: int, _epoch: int | None) -> bool:
    return True


def test_new_leader_starts_its_epoch_at_its_log_end_and_waits_for_followers():
    p = partition(end=10)
    assert L.make_leader(p, state(1, [1, 2, 3], [1, 2, 3], leader_epoch=4), 1000, LAG, anyone)
    assert p.is_leader and p.leader_epoch == 4 and p.epoch_start_offset == 10
    assert p.log.epochs == [(4, 10)]
    assert sorted(p.followers) == [2, 3]
    assert p.log.high_watermark == 0  # the followers' positions are unknown yet
    L.update_follower_fetch_state(p, 2, 10, 0, 1001, 10, -1)
    assert not L.maybe_increment_hw(p, 1001, LAG, anyone)  # 3 is in the ISR, position unknown
    L.update_follower_fetch_state(p, 3, 7, 0, 1001, 10, -1)
    assert L.maybe_increment_hw(p, 1001, LAG, anyone) and p.log.high_watermark == 7
    assert L.replication_check(p, 7) == (True, E.NONE)
    assert L.replication_check(p, 8) == (False, E.NONE)


def test_high_watermark_does_not_move_under_min_isr():
    p = partition(end=5, min_isr=2)
    L.make_leader(p, state(1, [1, 2], [1]), 0, LAG, anyone)
    assert L.is_under_min_isr(p)
    assert not L.maybe_increment_hw(p, 0, LAG, anyone) and p.log.high_watermark == 0
    # min.insync.replicas above the replication factor counts as the replication factor.
    q = partition(end=5, min_isr=3)
    L.make_leader(q, state(1, [1, 2], [1, 2]), 0, LAG, anyone)
    assert L.effective_min_isr(q) == 2 and not L.is_under_min_isr(q)


def test_not_enough_replicas_after_append_when_the_isr_shrank_below_the_minimum():
    p = partition(end=5, min_isr=2)
    L.make_leader(p, state(1, [1, 2, 3], [1, 2, 3]), 0, LAG, anyone)
    p.log.high_watermark = 5
    p.isr = [1]  # the ISR shrank after the batch was appended
    assert L.replication_check(p, 5) == (True, E.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
    L.make_follower(p, state(2, [1, 2, 3], [2], leader_epoch=1, partition_epoch=1))
    assert L.replication_check(p, 5) == (True, E.NOT_LEADER_OR_FOLLOWER)


def test_expansion_is_pending_and_counts_the_joining_replica_shrink_does_not():
    p = partition(end=4)
    L.make_leader(p, state(1, [1, 2], [1]), T, LAG, anyone)
    assert p.log.high_watermark == 4  # ISR [1]
    L.update_follower_fetch_state(p, 2, 4, 0, T + 10, 4, -1)
    pending = L.expand_candidate(p, 2, anyone)
    assert pending is not None and pending.expand and pending.new_isr == [1, 2] and pending.partition_epoch == 0
    assert p.maximal_isr == [1, 2] and p.isr == [1]
    assert L.expand_candidate(p, 2, anyone) is None  # one change at a time
    assert L.apply_alter_partition_result(p, pending, E.NONE, 0, [1, 2], 1) == "applied"
    assert p.isr == [1, 2] and p.partition_epoch == 1 and p.pending_isr is None
    # Broker 2 stops fetching while the leader's log grows: out of sync after the lag.
    p.log.log_end_offset = 6
    assert L.out_of_sync_replicas(p, T + 10 + LAG, LAG) == []
    shrink = L.shrink_candidate(p, T + 11 + LAG, LAG)
    assert shrink is not None and not shrink.expand and shrink.new_isr == [1]
    assert p.maximal_isr == [1, 2]  # a pending shrink still counts the old ISR
    # The controller says the epoch is stale: wait for metadata; a stale answer is ignored.
    assert L.apply_alter_partition_result(p, shrink, E.INVALID_UPDATE_VERSION, 0, [], 0) == "wait"
    assert p.pending_isr is shrink
    assert L.apply_alter_partition_result(p, shrink, E.INELIGIBLE_REPLICA, 0, [], 0) == "reset"
    assert p.pending_isr is None and p.isr == [1, 2]


def test_ineligible_replica_is_not_added():
    p = partition(end=0)
    L.make_leader(p, state(1, [1, 2], [1]), 0, LAG, anyone)
    L.update_follower_fetch_state(p, 2, 0, 0, 1, 0, 7)
    assert L.expand_candidate(p, 2, lambda r, epoch: epoch == 8) is None
    assert p.pending_isr is None


def test_stale_partition_epoch_is_skipped_and_follower_restarts_on_a_new_epoch():
    p = partition(end=3)
    assert L.make_follower(p, state(2, [1, 2], [1, 2], leader_epoch=1, partition_epoch=2))
    assert not p.is_leader and p.leader_id == 2 and p.followers == {}
    assert not L.make_follower(p, state(2, [1, 2], [2], leader_epoch=1, partition_epoch=3))  # ISR change only
    assert not L.make_leader(p, state(1, [1, 2], [1], leader_epoch=2, partition_epoch=1), 0, LAG, anyone)
    assert not p.is_leader


def test_accepted_isr_changes_are_counted_for_the_metrics():
    """Kafka's IsrExpandsPerSec / IsrShrinksPerSec: marked when the controller accepts the change
    (kafka_server_replicamanager_isrexpands_total / _isrshrinks_total), not when it is proposed."""
    from kbroker.replication.replica_manager import ReplicaManager

    broker = SimpleNamespace(config={"replica.lag.time.max.ms": LAG, "num.replica.fetchers": 1}, clock=None,
                             image=SimpleNamespace(brokers={2: SimpleNamespace(fenced=False, broker_epoch=5)}))
    manager = ReplicaManager(broker)
    p = partition(end=4)
    L.make_leader(p, state(1, [1, 2], [1]), T, LAG, anyone)
    L.update_follower_fetch_state(p, 2, 4, 0, T + 10, 4, -1)

    def answer(error: int, isr: list[int], partition_epoch: int) -> SimpleNamespace:
        return SimpleNamespace(error_code=E.NONE, topics=[SimpleNamespace(topic_id=p.topic_id, partitions=[
            SimpleNamespace(partition_index=0, error_code=error, leader_epoch=0, isr=isr,
                            partition_epoch=partition_epoch)])])

    expand = L.expand_candidate(p, 2, anyone)
    assert expand is not None
    assert manager._apply_alter_partition_response(p, expand, answer(E.NONE, [1, 2], 1)) == "applied"
    assert (manager.isr_expands, manager.isr_shrinks) == (1, 0)
    p.log.log_end_offset = 6
    shrink = L.shrink_candidate(p, T + 11 + LAG, LAG)
    assert shrink is not None
    assert manager._apply_alter_partition_response(p, shrink, answer(E.INELIGIBLE_REPLICA, [], 0)) == "reset"
    assert (manager.isr_expands, manager.isr_shrinks) == (1, 0)  # refused: not counted
    shrink = L.shrink_candidate(p, T + 12 + LAG, LAG)
    assert shrink is not None
    assert manager._apply_alter_partition_response(p, shrink, answer(E.NONE, [1], 2)) == "applied"
    assert (manager.isr_expands, manager.isr_shrinks) == (1, 1)


class FullDiskLog(FakeLog):
    def assign_epoch_start(self, epoch: int, offset: int) -> bool:
        raise OSError(28, "No space left on device")


def test_a_storage_error_writing_the_epoch_leaves_the_partition_as_it_was():
    # A disk-full fault run: the leader epoch file's write failed while applying the record that
    # made the broker leader, and the partition was left half made leader.
    p = Partition("t", 0, uuid.uuid4(), FullDiskLog(5), -1, [], [], {"min.insync.replicas": 1}, node_id=1,
                  leader_id=2, partition_epoch=3)
    p.leader_epoch = 4
    try:
        L.make_leader(p, state(1, [1, 2, 3], [1, 2], leader_epoch=5, partition_epoch=4), T, LAG, anyone)
    except OSError:
        pass
    else:
        raise AssertionError("the storage error was swallowed")
    assert (p.leader_id, p.leader_epoch, p.partition_epoch, p.replicas, p.isr) == (2, 4, 3, [], [])
    assert not p.is_leader and not p.followers and p.epoch_start_offset is None
