"""Delayed delivery (a kbroker extension, docs/delayed-delivery.md).

A record produced with the header ``kbroker-deliver-after-ms`` (a delay, decimal ASCII) or
``kbroker-deliver-at`` (an epoch time in ms) is not appended to its topic: its batch is diverted
to the internal topic ``__kbroker_delayed`` and acknowledged from there (the Produce response's
base offset is the offset in the internal topic). The leader of each internal partition runs a
scheduler that appends every record, once due, to its target partition, and records its progress
in the same internal partition, so that a restart or a leadership move neither loses a record nor
delivers it twice: exactly-once (kbroker/delayed_scheduler.py).

The Produce hot path pays nothing for it: the record validation, which reads every header key
anyway, counts keys starting with ``kbroker-deliver-`` (``kbroker_protocol.record_walk``); only a batch
with such a key comes here (``ReplicaManager._divert``), after its validation. Progress is a watermark ``(due, offset)``: records are delivered
in ``(due time, internal offset)`` order, and every record at or below the watermark has been
delivered. A due time is never before the produce time nor before the last watermark, so records
stored later never fall below it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from kbroker.delayed_records import (  # noqa: F401 - re-exported: the names of the extension
    CREATE_TIME_HEADER,
    DELAYED_TOPIC,
    DELIVER_AFTER,
    DELIVER_AT,
    H_DUE,
    H_PARTITION,
    H_PLAN,
    H_PROGRESS,
    H_TOPIC,
    INTERNAL_PREFIX,
    MAX_DECOMPRESSED,
    Pending,
    Plan,
    State,
    decode_stored,
    due_time,
    stored_record,
)
from kbroker.delayed_scheduler import PRODUCE_VERSION, DelayedHost, DelayedScheduler, produce_request  # noqa: F401
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.validation import validate_produce_batch
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import InvalidRecordBatch
from kbroker_protocol.records import Buffer, build_batch, iter_records

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

_due = due_time  # the name tests and older callers use
_Pending = Pending
_State = State


class DelayedDelivery(DelayedScheduler):
    """The broker service: diverts delayed batches on Produce; its scheduler (the mixin) delivers
    them when due."""

    topic_name = DELAYED_TOPIC

    def __init__(self, broker: DelayedHost) -> None:
        self.broker = broker
        self.states: dict[int, State] = {}
        self.loaded = False
        self.diverted = 0  # records stored in the internal topic
        self.delivered = 0  # records appended to their targets
        self.dropped = 0  # records whose target partition no longer exists
        self.duplicates = 0  # records a finished-again step found already delivered

    # -- configuration -----------------------------------------------------------------------

    def now_ms(self) -> int:
        clock = self.broker.clock
        return clock.now_ms() if clock is not None else int(time.time() * 1000)

    def topic_partitions(self) -> int:
        return int(self.broker.config["kbroker.delayed.topic.num.partitions"])

    def topic_configs(self) -> dict[str, str]:
        from kbroker.replication.topics import internal_min_isr

        return {
            "cleanup.policy": "delete",
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "message.timestamp.type": "CreateTime",
            "message.timestamp.before.max.ms": str(2**63 - 1),
            "message.timestamp.after.max.ms": str(2**63 - 1),
            "min.insync.replicas": str(internal_min_isr(self.broker, "kbroker.delayed.topic.min.isr")),
        }

    def ensure_topic(self) -> bool:
        from kbroker.replication.topics import ensure_internal_topic, internal_replication_factor

        return ensure_internal_topic(self.broker, DELAYED_TOPIC, self.topic_partitions(), self.topic_configs(),
                                     internal_replication_factor(self.broker, "kbroker.delayed.topic.replication.factor"))

    async def await_topic(self) -> bool:
        """:meth:`ensure_topic` with a bounded wait for the controller's answer."""
        from kbroker.replication.topics import await_internal_topic, internal_replication_factor

        return await await_internal_topic(
            self.broker, DELAYED_TOPIC, self.topic_partitions(), self.topic_configs(),
            internal_replication_factor(self.broker, "kbroker.delayed.topic.replication.factor"))

    # -- Produce: diverting a batch ----------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.broker.config["kbroker.delayed.enable"])

    def divert(self, partition: Partition, records: Buffer, version: int, acks: int, transactional_id: str | None,
               now_ms: int) -> AppendResult | Awaitable[AppendResult] | None:
        """Store a produced batch that may carry delay headers: an :class:`AppendResult` (or an
        awaitable of it for acks=all with followers), or the batch, unchanged, for the normal path
        (``None``) when no record carries a delay header after all. Raises :class:`ProduceError`."""
        header, records = validate_produce_batch(records, version, partition.config["max.message.bytes"],
                                                 f"{partition.topic}-{partition.index}")
        try:
            parsed = list(iter_records(records, max_decompressed_size=MAX_DECOMPRESSED))
        except InvalidRecordBatch as exc:
            raise ProduceError(ErrorCode.CORRUPT_MESSAGE, str(exc)) from None
        dues: list[int] = []
        errors: list[tuple[int, str]] = []
        found = False
        max_delay = self.broker.config["kbroker.delayed.max.delay.ms"]
        for i, record in enumerate(parsed):
            due, error, has = due_time(record, now_ms, max_delay)
            found = found or has
            if error is not None:
                errors.append((i, error))
            dues.append(due)
        if not found:
            return None
        if errors:
            raise ProduceError(ErrorCode.INVALID_RECORD, errors[0][1], errors)
        if header.is_transactional:
            raise ProduceError(ErrorCode.INVALID_RECORD,
                               "Delayed delivery (kbroker-deliver-*) is not supported in transactions")
        producer_state = self.broker.replica_manager.producer_state
        idempotent = header.producer_id >= 0 and producer_state is not None
        if idempotent and producer_state is not None:
            # The producer's sequence numbers belong to the target partition: they are checked and
            # recorded there (a retry is answered with the first answer's offset).
            duplicate = producer_state.check_append(partition, header, None, version)
            if duplicate is not None:
                duplicate.last_offset = -1
                return duplicate
        if not self.ensure_topic():
            # asked of the controller (kbroker.replication.topics): this batch waits a bounded
            # time for it, then is diverted again
            return self._divert_once_created(partition, records, version, acks, transactional_id, now_ms)
        internal = self._internal_partition(partition.topic, partition.index)
        if internal is None:
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                               f"Broker {self.broker.node_id} leads no partition of {DELAYED_TOPIC}")
        state = self.states.get(internal.index)
        floor = state.watermark[0] if state is not None else -1
        stored = []
        for record, due in zip(parsed, dues, strict=True):
            due = max(due, now_ms, floor)
            stored.append((stored_record(record, partition.topic, partition.index, due), due))
        batch = build_batch([r for r, _ in stored])
        base = self.broker.replica_manager.append_internal(internal, batch)
        self.diverted += len(stored)
        last = base + len(stored) - 1
        if idempotent and producer_state is not None:
            producer_state.on_append(partition, header, base, last)
        if state is not None:
            for i, (_r, due) in enumerate(stored):
                heapq.heappush(state.heap, Pending(due, base + i, partition.topic, partition.index))
            self._schedule(state)
        result = AppendResult(ErrorCode.NONE, base)
        # A scheduler still fetching its producer id (a new leader): answered once it has one,
        # so that a record acknowledged is one the scheduler can deliver as soon as it is due.
        fetching = state.task if state is not None and state.producer_id < 0 else None
        replicate = acks == -1 and internal.followers and internal.high_watermark <= last
        if replicate or fetching is not None:
            return self._acknowledge(internal, last + 1 if replicate else None, result, fetching)
        return result

    async def _divert_once_created(self, partition: Partition, records: Buffer, version: int, acks: int,
                                   transactional_id: str | None, now_ms: int) -> AppendResult:
        if not await self.await_topic():
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"{DELAYED_TOPIC} is not available yet")
        result = self.divert(partition, records, version, acks, transactional_id, now_ms)
        if result is None:  # (the batch had delay headers the first time: it has them now)
            raise ProduceError(ErrorCode.UNKNOWN_SERVER_ERROR, "a delayed batch lost its delay headers")
        return result if isinstance(result, AppendResult) else await result

    async def _acknowledge(self, internal: Partition, required: int | None, result: AppendResult,
                           fetching: asyncio.Task[None] | None) -> AppendResult:
        from kbroker.replication.deadline import Deadline

        if fetching is not None:
            await asyncio.wait([fetching], timeout=30)
        if required is not None:
            code = await self.broker.replica_manager.wait_for_replication(
                internal, required, Deadline(30_000, self.broker.clock))
            if code != ErrorCode.NONE:
                raise ProduceError(code)
        return result

    def _internal_partition(self, topic: str, index: int) -> Partition | None:
        """The internal partition a target partition's delayed records go to: by a hash of the
        target, or, when another broker leads that one, one this broker leads."""
        image_topic = self.broker.image.topic(DELAYED_TOPIC)
        if image_topic is None or not image_topic.partitions:
            return None
        n = len(image_topic.partitions)
        h = zlib.crc32(f"{topic}-{index}".encode())
        p = self.broker.partition(DELAYED_TOPIC, h % n)
        if p is not None and p.is_leader:
            return p
        led = sorted(i for i in image_topic.partitions
                     if (q := self.broker.partition(DELAYED_TOPIC, i)) is not None and q.is_leader)
        return self.broker.partition(DELAYED_TOPIC, led[h % len(led)]) if led else None

    # -- service lifecycle and leadership ----------------------------------------------------

    def start(self) -> None:
        topic = self.broker.image.topic(DELAYED_TOPIC)
        for index in sorted(topic.partitions) if topic is not None else ():
            p = self.broker.partition(DELAYED_TOPIC, index)
            if p is not None and p.is_leader:
                self._load(p)
        self.loaded = True

    async def stop(self) -> None:
        for index in list(self.states):
            self._unload(index)

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        if topic != DELAYED_TOPIC or not self.loaded:
            return
        if leader:
            p = self.broker.partition(DELAYED_TOPIC, index)
            if p is not None and index not in self.states:
                self._load(p)
        else:
            self._unload(index)

    def on_partition_deleted(self, topic: str, index: int) -> None:
        if topic == DELAYED_TOPIC:
            self._unload(index)

    def _unload(self, index: int) -> None:
        state = self.states.pop(index, None)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
        if state.task is not None:
            state.task.cancel()
        log.info("delayed delivery: unloaded %s-%d (%d pending)", DELAYED_TOPIC, index, len(state.heap))

    def _load(self, partition: Partition) -> None:
        """Read the internal partition: its stored records, its last progress watermark and an
        unfinished step (a plan after the last progress record), finished first."""
        state = State(partition.index)
        stored: list[Pending] = []
        last_plan: Plan | None = None
        topics: dict[str, str] = {}  # one string per target topic
        for header, data in partition.log.iter_batches():
            if header.is_control:
                continue
            try:
                records = list(iter_records(data, max_decompressed_size=MAX_DECOMPRESSED))
            except InvalidRecordBatch as exc:
                log.warning("delayed delivery: skipping unreadable batch at %d of %s-%d: %s", header.base_offset,
                            DELAYED_TOPIC, partition.index, exc)
                continue
            for r in records:
                entry = decode_stored(r)
                if isinstance(entry, tuple):
                    if entry >= state.delivered_watermark:
                        state.delivered_watermark = entry
                        state.progress_offset = r.offset if r.offset is not None else -1
                elif isinstance(entry, Plan):
                    last_plan = entry
                elif entry is not None:
                    entry.record = None  # read back when due
                    entry.topic = topics.setdefault(entry.topic, entry.topic)
                    stored.append(entry)
        state.watermark = state.delivered_watermark
        state.heap = [e for e in stored if (e.due, e.offset) > state.delivered_watermark]
        heapq.heapify(state.heap)
        if last_plan is not None and last_plan.watermark > state.delivered_watermark:
            while state.heap and (state.heap[0].due, state.heap[0].offset) <= last_plan.watermark:
                e = heapq.heappop(state.heap)
                last_plan.groups.setdefault((e.topic, e.partition), []).append(e)
            state.plan = last_plan
            state.watermark = last_plan.watermark
        self.states[partition.index] = state
        unfinished = sum(len(g) for g in state.plan.groups.values()) if state.plan is not None else 0
        log.info("delayed delivery: loaded %s-%d: %d pending, progress at %s, %d in an unfinished step",
                 DELAYED_TOPIC, partition.index, len(state.heap) + unfinished, state.delivered_watermark, unfinished)
        self._has_producer_id(state, step=False)  # fetched ahead of the first due record
        self._schedule(state)
