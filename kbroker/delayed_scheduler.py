"""The scheduler of delayed delivery (docs/delayed-delivery.md): the leader of each
``__kbroker_delayed`` partition delivers its records when due, exactly once.

Each step pops the due records (in (due, offset) order), writes a *plan* (delayed_records.py) to
the internal partition, appends one batch per target partition with the scheduler's own
idempotent producer id (allocated as InitProducerId allocates them) and the target's next
sequence numbers, then a *progress* record. A leader that takes over (a restart, a failover)
finishes an unfinished plan with the same producer id, sequences and records: a batch the
target already took is answered as a duplicate and not appended twice.

Targets led by this broker are appended directly; targets led by another broker get a Produce
(acks=all) over the inter-broker listener, retried (following leadership moves) until taken.
Every ``clean_interval_ms`` the log start offset of the internal partition is moved up to its
lowest pending record or its last progress record, whichever is lower (as DeleteRecords does;
followers follow the leader's log start), so delivered records do not stay forever.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kbroker.coordinator.hosts import CoordinatorHost
from kbroker.delayed_records import (
    DELAYED_TOPIC,
    MAX_DECOMPRESSED,
    Cancellable,
    Pending,
    Plan,
    State,
    Target,
    delivered_record,
    progress_record,
)
from kbroker.log import LogError
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.producer_ids import ProducerIdsUnavailable
from kbroker.replication.producer_manager import partition_state
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import InvalidRecordBatch, parse_header
from kbroker_protocol.records import Record, build_batch, iter_records

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_ids import ProducerIdManager
    from kbroker.replication.replica_fetcher import InternodeSecurity
    from kbroker.replication.replica_manager import ReplicaClock
    from kbroker_protocol.messages.produce import ProduceRequest

log = logging.getLogger(__name__)

RETRY_MS = 100
MAX_PLAN_RECORDS = 500  # records per delivery step (one batch per target each)
CLEAN_RETRY_S = 1.0  # a cleaning waiting for its progress record to be replicated looks again
STEPS_PER_TICK = 20  # steps run at once before yielding to the event loop
INT_MAX = 2**31 - 1
PRODUCE_VERSION = 9  # by topic name (v13 addresses topics by id)
# A target that refuses the scheduler's sequence (its log lost the previous batch: an unclean
# election) gets the batch without a producer id rather than never.
SEQUENCE_ERRORS = (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.INVALID_PRODUCER_EPOCH,
                   ErrorCode.UNKNOWN_PRODUCER_ID)


class DelayedHost(CoordinatorHost, Protocol):
    """What delayed delivery uses of its broker: an internal topic's coordinator
    (:class:`~kbroker.coordinator.hosts.CoordinatorHost`: the topic, its partitions, appends and
    their replication), producer ids for its idempotent deliveries, and the manual clock, whose
    timers run its steps (None: the loop's)."""

    @property
    def producer_ids(self) -> ProducerIdManager: ...

    @property
    def clock(self) -> ReplicaClock | None: ...

    @property
    def internode_security(self) -> InternodeSecurity: ...  # its deliveries to other leaders


class DelayedScheduler:
    """The delivery half of :class:`kbroker.delayed.DelayedDelivery` (a mixin)."""

    broker: DelayedHost
    states: dict[int, State]
    delivered: int
    dropped: int
    duplicates: int
    clean_interval_ms: int = 10_000
    # Tests: called with "appended" after each batch appended to a target led here and with
    # "delivered" once every batch of a step is taken, before its progress record is written
    # (raise to simulate a crash at that point).
    fault_hook: Callable[[str], None] | None = None

    def now_ms(self) -> int:
        raise NotImplementedError

    def _unload(self, index: int) -> None:
        raise NotImplementedError

    # -- timers ------------------------------------------------------------------------------

    def _schedule(self, state: State, at_once: bool = False) -> None:
        """A timer for the next step: the earliest due time (on the manual clock a time already
        past waits for its next advance, as every clock timer), or at once for an unfinished step
        (``at_once``: a due step that waited for the producer id)."""
        if state.task is not None:
            return
        at_once = at_once or state.plan is not None
        if state.plan is not None:
            due = self.now_ms()
        elif state.heap:
            due = state.heap[0].due
        else:
            return
        if state.timer is not None:
            if state.timer_due <= due:
                return
            state.timer.cancel()
        clock = self.broker.clock
        index = state.index
        loop = asyncio.get_running_loop()
        if at_once and due <= self.now_ms():
            state.timer = loop.call_soon(self._tick, index)
        elif clock is not None:
            state.timer = clock.call_at(due, lambda: self._tick(index))
        else:
            state.timer = loop.call_later((due - self.now_ms()) / 1000, self._tick, index)
        state.timer_due = due

    def _tick(self, index: int) -> None:
        state = self.states.get(index)
        if state is None:
            return
        state.timer = None
        try:
            for _ in range(STEPS_PER_TICK):
                before = state.delivered_watermark
                self._deliver_due(state)
                if (state.task is not None or state.plan is not None or state.delivered_watermark == before
                        or not state.heap or state.heap[0].due > self.now_ms()):
                    break
            else:  # more due: the loop's other work first
                self._schedule(state, at_once=True)
                return
        except Exception:
            log.exception("delayed delivery of %s-%d failed", DELAYED_TOPIC, index)
            self._retry(state)
            return
        self._schedule(state)

    def _retry(self, state: State) -> None:
        clock = self.broker.clock
        index = state.index
        timer: Cancellable
        if clock is not None:  # the next advance retries
            timer = clock.call_at(clock.now_ms() + RETRY_MS, lambda: self._tick(index))
        else:
            timer = asyncio.get_running_loop().call_later(RETRY_MS / 1000, self._tick, index)
        state.timer = timer
        state.timer_due = self.now_ms() + RETRY_MS

    # -- one step ----------------------------------------------------------------------------

    def _deliver_due(self, state: State) -> None:
        if state.task is not None:  # fetching the producer id, or delivering to other brokers
            return
        internal = self.broker.partition(DELAYED_TOPIC, state.index)
        if internal is None or not internal.is_leader:
            self._unload(state.index)
            return
        if state.plan is None:
            now = self.now_ms()
            if not state.heap or state.heap[0].due > now or not self._has_producer_id(state):
                return
            due: list[Pending] = []
            while state.heap and state.heap[0].due <= now and len(due) < MAX_PLAN_RECORDS:
                due.append(heapq.heappop(state.heap))
            plan = self._new_plan(state, due, now)
            try:
                self.broker.replica_manager.append_internal(internal, build_batch([plan.encode(now)]))
            except Exception:
                for e in due:
                    heapq.heappush(state.heap, e)
                raise
            for target, entries in plan.groups.items():
                state.sequences[target] = (plan.sequences[target] + len(entries)) % (INT_MAX + 1)
            state.plan = plan
            state.watermark = plan.watermark
        self._read_records(internal, state.plan)
        remote = self._deliver_local(state.plan)
        if remote:
            state.task = asyncio.get_running_loop().create_task(self._deliver_remote(state, state.plan, remote))
            return
        self._finish(internal, state)

    def _has_producer_id(self, state: State, step: bool = True) -> bool:
        """The scheduler's producer id for this leadership (a fresh one each time it loads, as an
        idempotent producer gets from InitProducerId); False while one is being fetched."""
        if state.producer_id >= 0:
            return True
        if state.task is not None:
            return False
        try:
            state.producer_id = self.broker.producer_ids.allocate()
            return True
        except ProducerIdsUnavailable:
            state.task = asyncio.get_running_loop().create_task(self._fetch_producer_id(state, step))
            return False

    async def _fetch_producer_id(self, state: State, step: bool) -> None:
        """``step``: a due step waits for it (run at once when it comes)."""
        try:
            while state.index in self.states and state.producer_id < 0:
                try:
                    await self.broker.producer_ids.ensure()
                    state.producer_id = self.broker.producer_ids.allocate()
                except ProducerIdsUnavailable as exc:
                    log.info("delayed delivery of %s-%d waits for a producer id: %s", DELAYED_TOPIC, state.index, exc)
                    await asyncio.sleep(RETRY_MS / 1000)
        finally:
            state.task = None
            if state.index in self.states:
                self._schedule(state, at_once=step)

    @staticmethod
    def _new_plan(state: State, due: list[Pending], now: int) -> Plan:
        plan = Plan(state.producer_id, state.epoch, now, (due[-1].due, due[-1].offset), {})
        for e in due:
            plan.groups.setdefault((e.topic, e.partition), []).append(e)
        for target in plan.groups:
            plan.sequences[target] = state.sequences.get(target, 0)
        return plan

    def _read_records(self, internal: Partition, plan: Plan) -> None:
        """Read the step's records back from the internal partition (one read per stored batch);
        a record that cannot be read (a damaged log) is left out, logged."""
        cache: dict[int, Record] = {}
        for target, entries in plan.groups.items():
            for e in entries:
                if e.record is not None:
                    continue
                if e.offset not in cache:
                    try:
                        data = internal.log.read(e.offset, 1).read()
                        header = parse_header(data)
                        for r in iter_records(data[:header.size], max_decompressed_size=MAX_DECOMPRESSED):
                            if r.offset is not None:
                                cache[r.offset] = r
                    except (LogError, InvalidRecordBatch, OSError) as exc:
                        log.error("delayed delivery: cannot read %s-%d at %d: %s", DELAYED_TOPIC,
                                  internal.index, e.offset, exc)
                e.record = cache.get(e.offset)
            lost = [e for e in entries if e.record is None]
            if lost:
                log.error("delayed delivery: %d records for %s-%d lost: unreadable in %s", len(lost), target[0],
                          target[1], DELAYED_TOPIC)
                self.dropped += len(lost)
                entries[:] = [e for e in entries if e.record is not None]

    def _batch(self, plan: Plan, target: Target, entries: list[Pending]) -> bytes:
        records = [delivered_record(e, plan.time) for e in entries]
        seq = plan.sequences.get(target, -1)
        if seq < 0:
            return build_batch(records)
        return build_batch(records, producer_id=plan.producer_id, producer_epoch=plan.epoch, base_sequence=seq)

    def _append_local(self, partition: Partition, plan: Plan, target: Target, entries: list[Pending]) -> None:
        """Append to a partition this broker leads, checking the scheduler's sequence there as
        a Produce would: a batch already appended (a step finished again) is not appended twice."""
        batch = self._batch(plan, target, entries)
        header = parse_header(batch)
        if header.producer_id >= 0:
            producers = partition_state(partition)
            try:
                duplicate = producers.check(header)
            except ProduceError as exc:
                self._drop_sequence(plan, target, exc.code)
                self._append_local(partition, plan, target, entries)
                return
            if duplicate is not None:
                self.duplicates += len(entries)
                log.info("delayed delivery to %s-%d: %d records were already delivered (offsets %d-%d)",
                         target[0], target[1], len(entries), duplicate.first_offset, duplicate.last_offset)
                return
        # (the append records a batch with a producer id in the partition's producer state)
        self.broker.replica_manager.append_internal(partition, batch)
        self.delivered += len(entries)

    @staticmethod
    def _drop_sequence(plan: Plan, target: Target, code: int) -> None:
        log.warning("delayed delivery to %s-%d: the target refuses the scheduler's sequence (%s); "
                    "delivering without a producer id", target[0], target[1], ErrorCode(code).name)
        plan.sequences[target] = -1

    def _deliver_local(self, plan: Plan) -> dict[Target, list[Pending]]:
        """Deliver the plan's targets led here (or deleted); returns the others."""
        remote: dict[Target, list[Pending]] = {}
        for target, entries in plan.groups.items():
            if target in plan.done or not entries:
                continue
            topic, index = target
            partition = self.broker.partition(topic, index)
            if partition is not None and partition.is_leader:
                try:
                    self._append_local(partition, plan, target, entries)
                except Exception as exc:  # noqa: BLE001 - a full disk, a log being closed: retried
                    log.warning("delayed delivery to %s-%d failed: %s; retrying", topic, index, exc)
                    remote[target] = entries
                    continue
                plan.done.add(target)
                if self.fault_hook is not None:
                    self.fault_hook("appended")
            elif self.broker.image.partition(topic, index) is None:
                log.warning("delayed delivery: %d records for %s-%d dropped: the partition does not exist",
                            len(entries), topic, index)
                self.dropped += len(entries)
                plan.done.add(target)
            else:
                remote[target] = entries
        return remote

    def _finish(self, internal: Partition, state: State) -> None:
        plan = state.plan
        assert plan is not None
        if self.fault_hook is not None:
            self.fault_hook("delivered")
        offset = self.broker.replica_manager.append_internal(
            internal, build_batch([progress_record(plan.watermark, self.now_ms())]))
        state.delivered += sum(len(e) for e in plan.groups.values())
        state.delivered_watermark = plan.watermark
        state.progress_offset = offset
        state.plan = None
        self._clean(internal, state)

    def _clean(self, internal: Partition, state: State) -> None:
        """Move the internal partition's log start up to what a new leader still needs: the
        lowest pending record and the last progress record, once that progress record is
        replicated (the target is chosen when a step finishes, at most every
        ``clean_interval_ms``, and applied then or at a later step once the high watermark
        passes it: a new leader then finds that progress record, and every record and plan
        after it)."""
        now = self.now_ms()
        if state.clean_to < 0 and state.progress_offset >= 0 and now - state.last_clean >= self.clean_interval_ms:
            state.last_clean = now
            low = min((e.offset for e in state.heap), default=state.progress_offset)
            state.clean_to = min(low, state.progress_offset)
            state.clean_after = state.progress_offset
        if state.clean_to < 0:
            return
        if state.clean_after >= internal.log.high_watermark:
            asyncio.get_running_loop().call_later(CLEAN_RETRY_S, self._clean_later, state)
            return
        target, state.clean_to = state.clean_to, -1
        if target > internal.log.log_start_offset:
            start = internal.log.advance_log_start(target)
            log.info("delayed delivery: %s-%d starts at %d now", DELAYED_TOPIC, state.index, start)

    def _clean_later(self, state: State) -> None:
        internal = self.broker.partition(DELAYED_TOPIC, state.index)
        if self.states.get(state.index) is state and internal is not None and internal.is_leader:
            self._clean(internal, state)

    async def _deliver_remote(self, state: State, plan: Plan, remote: dict[Target, list[Pending]]) -> None:
        """Produce (acks=all) the batches of targets led elsewhere; retried until each leader
        takes them or the target is gone; then the progress record."""
        from kbroker.replication.broker_connection import BrokerConnection

        broker = self.broker
        connections: dict[int, BrokerConnection] = {}
        try:
            while remote and state.index in self.states:
                for target, entries in list(remote.items()):
                    topic, index = target
                    part = broker.image.partition(topic, index)
                    local = broker.partition(topic, index)
                    if part is None or (local is not None and local.is_leader):
                        del remote[target]  # _deliver_local below drops or appends it
                        continue
                    reg = broker.image.brokers.get(part.leader)
                    listener = broker.config.inter_broker_listener
                    if reg is None or listener not in reg.endpoints:
                        continue
                    request = produce_request(topic, index, self._batch(plan, target, entries))
                    try:
                        conn = connections.get(part.leader)
                        if conn is None:
                            host, port, _protocol = reg.endpoints[listener]
                            conn = BrokerConnection(host, port, f"broker-{broker.node_id}-delayed", 100 << 20,
                                                    broker.internode_security.inter_broker, part.leader,
                                                    receive_buffer=broker.config["socket.receive.buffer.bytes"])
                            await conn.open(5.0)
                            connections[part.leader] = conn
                        response = await conn.request(request, PRODUCE_VERSION, 35.0)
                    except Exception as exc:  # noqa: BLE001 - refused, reset, timed out: retry
                        log.info("delayed delivery to %s-%d via broker %d failed: %s", topic, index, part.leader, exc)
                        bad = connections.pop(part.leader, None)
                        if bad is not None:
                            bad.close()
                        continue
                    code = response.responses[0].partition_responses[0].error_code
                    if code == ErrorCode.NONE:
                        self.delivered += len(entries)
                        plan.done.add(target)
                        del remote[target]
                    elif code in SEQUENCE_ERRORS:
                        self._drop_sequence(plan, target, code)
                    else:
                        log.info("delayed delivery to %s-%d: %s; retrying", topic, index, ErrorCode(code).name)
                if not remote and state.index in self.states:
                    remote = self._deliver_local(plan)  # targets that moved here meanwhile
                if remote:
                    await asyncio.sleep(RETRY_MS / 1000)
            internal = broker.partition(DELAYED_TOPIC, state.index)
            if state.index in self.states and internal is not None and internal.is_leader:
                self._finish(internal, state)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delayed delivery of %s-%d failed", DELAYED_TOPIC, state.index)
        finally:
            for conn in connections.values():
                conn.close()
            state.task = None
            if state.index in self.states:
                if state.plan is not None:
                    self._retry(state)
                else:
                    self._schedule(state)


def produce_request(topic: str, index: int, batch: bytes) -> ProduceRequest:
    """The Produce (acks=all) a scheduler sends a target partition's leader on another broker."""
    from kbroker_protocol.messages.produce import ProduceRequest as Req

    return Req(transactional_id=None, acks=-1, timeout_ms=30_000, topic_data=[
        Req.TopicProduceData(name=topic, partition_data=[
            Req.TopicProduceData.PartitionProduceData(index=index, records=batch)])])
