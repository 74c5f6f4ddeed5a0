"""A partition this broker hosts: its log, leader state, and the fetches waiting for new data.

The partition is a leader or a follower replica, as the metadata image says (``leader_id``).
As leader it keeps each follower's fetch state (:class:`FollowerState`, Kafka's ``Replica``),
the committed ISR and the ISR change it has asked the controller for (:class:`PendingIsr`,
Kafka's ``PendingExpandIsr``/``PendingShrinkIsr``); the rules that use them are in
``kbroker/replication/leadership.py``. With one replica the broker is the whole ISR and the high
watermark moves with every append.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.replication.validation import AppendOrder

if TYPE_CHECKING:
    from kbroker.log import PartitionLog
    from kbroker.log.group_commit import GroupCommit
    from kbroker.replication.producer_state import PartitionProducerState
    from kbroker_protocol.record_validation import Policy


UNKNOWN_OFFSET = -1


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower replica, from its fetches (Kafka's ``ReplicaState``)."""

    log_end_offset: int = UNKNOWN_OFFSET
    log_start_offset: int = UNKNOWN_OFFSET
    last_fetch_leader_log_end_offset: int = UNKNOWN_OFFSET
    last_fetch_time_ms: int = 0
    last_caught_up_time_ms: int = 0
    broker_epoch: int | None = None  # None: no fetch seen since this broker became leader

    def is_caught_up(self, leader_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        return leader_end_offset == self.log_end_offset or now_ms - self.last_caught_up_time_ms <= max_lag_ms


@dataclass(slots=True)
class PendingIsr:
    """An ISR change sent to the controller and not yet answered or seen in the metadata."""

    expand: bool  # True: PendingExpandIsr; False: PendingShrinkIsr
    new_isr: list[int]
    committed_isr: list[int]
    partition_epoch: int  # the partition epoch the request was sent with
    leader_epoch: int


class Partition:
    __slots__ = ("topic", "index", "topic_id", "log", "leader_epoch", "isr", "replicas", "_waiters",
                 "producer_state", "config", "append_order", "bytes_in", "messages_in", "bytes_out",
                 "produce_requests", "failed_produce", "fetch_requests", "failed_fetch",
                 "node_id", "leader_id", "partition_epoch", "epoch_start_offset", "followers", "pending_isr",
                 "_hw_waiters", "group_commit", "policy_args")

    def __init__(self, topic: str, index: int, topic_id: uuid.UUID, log: PartitionLog,
                 leader_epoch: int, replicas: list[int], isr: list[int], config: dict[str, Any] | None = None,
                 *, node_id: int = -1, leader_id: int | None = None, partition_epoch: int = 0) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.leader_epoch = leader_epoch
        self.replicas = replicas
        self.isr = isr  # the committed ISR (the metadata's, or the controller's AlterPartition answer)
        self.node_id = node_id
        # The leader as the metadata says; None (not known yet) counts as this broker, the one-node case.
        self.leader_id = node_id if leader_id is None else leader_id
        self.partition_epoch = partition_epoch
        self.epoch_start_offset: int | None = None  # leader only: the log end when the epoch began
        self.followers: dict[int, FollowerState] = {}  # leader only: the other replicas
        self.pending_isr: PendingIsr | None = None
        # the fetches waiting for data, in arrival order (a dict as an ordered set: has_waiter is
        # asked on each leader append for every held follower fetch)
        self._waiters: dict[asyncio.Future[None], None] = {}
        self._hw_waiters: list[asyncio.Future[None]] = []
        self.producer_state: PartitionProducerState | None = None
        self.config: dict[str, Any] = config or {}  # effective topic-level settings (typed), by Kafka key
        self.append_order = AppendOrder()  # appends from clients, in request order
        self.group_commit: GroupCommit | None = None  # fsyncs of flush.messages appends (created on use)
        # (validation.validation_policy's reading of ``config``, kept while ``config`` is the same
        # dict, and the last policy it made)
        self.policy_args: tuple[dict[str, Any], tuple[Any, ...], Policy] | None = None
        # Counters read by the metrics endpoint at scrape time (kbroker.metrics): plain ints, as
        # Kafka's BrokerTopicMetrics count them (client appends and fetch responses only).
        self.bytes_in = 0
        self.messages_in = 0
        self.bytes_out = 0
        self.produce_requests = 0
        self.failed_produce = 0
        self.fetch_requests = 0
        self.failed_fetch = 0

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    @property
    def maximal_isr(self) -> list[int]:
        """The ISR the high watermark and acks=all count: the committed one, plus the replica
        being added while an expansion is pending (a pending shrink still counts the old ISR)."""
        pending = self.pending_isr
        if pending is not None and pending.expand:
            return pending.new_isr
        return self.isr

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        """First offset of the earliest open transaction, capped by the high watermark."""
        return self.last_stable_offset_at(self.log.high_watermark)

    def last_stable_offset_at(self, hw: int) -> int:
        """The last stable offset given the high watermark ``hw`` just read: ``hw`` itself while no
        transaction is open (the common case, read for every partition of every Fetch), without
        loading the producer state for it."""
        state = self.producer_state
        if state is not None and not state.open_txns:
            return hw
        first_open = partition_state(self).first_unstable_offset()
        return hw if first_open is None else min(first_open, hw)

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions overlapping ``[start, end)``,
        from the ``.txnindex`` files of the log's segments."""
        return [(a.producer_id, a.first_offset) for a in self.log.collect_aborted_transactions(start, end)]

    def add_waiter(self, fut: asyncio.Future[None]) -> None:
        self._waiters[fut] = None

    def has_waiter(self, fut: asyncio.Future[object]) -> bool:
        return fut in self._waiters

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        self._waiters.pop(fut, None)

    def add_hw_waiter(self, fut: asyncio.Future[None]) -> None:
        self._hw_waiters.append(fut)

    def remove_hw_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._hw_waiters.remove(fut)
        except ValueError:
            pass

    def notify_hw(self) -> None:
        """The high watermark, the ISR or the leadership changed: wake the acks=all produces
        waiting on this partition (and the fetches, which read up to the high watermark)."""
        if self._hw_waiters:
            waiters, self._hw_waiters = self._hw_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self.notify()

    def notify(self) -> None:
        """New data is visible: wake the fetches waiting on this partition."""
        if self._waiters:
            waiters, self._waiters = self._waiters, {}
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)


def partition_state(partition: Partition) -> PartitionProducerState:
    """The producer state of a partition, rebuilt from its log on first use (its newest usable
    snapshot and the batches after it: ``kbroker/replication/producer_snapshot.py``)."""
    state = partition.producer_state
    if state is None:
        from kbroker.replication.producer_snapshot import load_state

        state = partition.producer_state = load_state(partition.log)
    return state
