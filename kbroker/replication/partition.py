"""A partition this broker hosts: its log, leader state, and the fetches waiting for new data.

With one node the broker leads every partition and is its whole ISR, so the high watermark moves
with every append. Replication will add followers here without changing the callers.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from kbroker.replication.validation import AppendOrder

if TYPE_CHECKING:
    from kbroker.log import PartitionLog


class Partition:
    __slots__ = ("topic", "index", "topic_id", "log", "leader_epoch", "isr", "replicas", "_waiters",
                 "producer_state", "config", "append_order", "bytes_in", "messages_in", "bytes_out",
                 "produce_requests", "failed_produce", "fetch_requests", "failed_fetch")

    def __init__(self, topic: str, index: int, topic_id: uuid.UUID, log: PartitionLog,
                 leader_epoch: int, replicas: list[int], isr: list[int], config: dict | None = None) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.leader_epoch = leader_epoch
        self.replicas = replicas
        self.isr = isr
        self._waiters: list[asyncio.Future] = []
        self.producer_state = None
        self.config: dict = config or {}  # effective topic-level settings (typed), by Kafka key
        self.append_order = AppendOrder()  # appends from clients, in request order
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
        from kbroker.replication.producer_manager import partition_state

        hw = self.log.high_watermark
        first_open = partition_state(self).first_unstable_offset()
        return hw if first_open is None else min(first_open, hw)

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions overlapping ``[start, end)``,
        from the ``.txnindex`` files of the log's segments."""
        return [(a.producer_id, a.first_offset) for a in self.log.collect_aborted_transactions(start, end)]

    def add_waiter(self, fut: asyncio.Future) -> None:
        self._waiters.append(fut)

    def remove_waiter(self, fut: asyncio.Future) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    def notify(self) -> None:
        """New data is visible: wake the fetches waiting on this partition."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
