"""Delayed delivery (a kbroker extension, docs/delayed-delivery.md).

A record produced with the header ``kbroker-deliver-after-ms`` (a delay, decimal ASCII) or
``kbroker-deliver-at`` (an epoch time in ms) is not appended to its topic: its batch is diverted
to the internal topic ``__kbroker_delayed`` and acknowledged from there (the Produce response's
base offset is the offset in the internal topic). The leader of each internal partition runs a
scheduler that appends every record, once due, to its target partition, and records its progress
in the same internal partition, so that a restart or a leadership move neither loses a record nor
(outside the narrow window documented) delivers it twice: at-least-once.

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
from dataclasses import dataclass, field
from typing import Any

from kbroker.replication.produce_batch import AppendResult, ProduceError, validate_produce_batch
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import InvalidRecordBatch
from kbroker_protocol.records import Record, build_batch, iter_records

log = logging.getLogger(__name__)

DELAYED_TOPIC = "__kbroker_delayed"
DELIVER_AFTER = "kbroker-deliver-after-ms"
DELIVER_AT = "kbroker-deliver-at"
CREATE_TIME_HEADER = "kbroker-delayed-create-time"  # the original timestamp, on delivered records
# Headers of the stored records (stripped on delivery).
H_TOPIC = "__kbroker.delayed.topic"
H_PARTITION = "__kbroker.delayed.partition"
H_DUE = "__kbroker.delayed.due"
H_PROGRESS = "__kbroker.delayed.progress"
INTERNAL_PREFIX = "__kbroker.delayed."
MAX_DECOMPRESSED = 64 << 20
RETRY_MS = 100


@dataclass(order=True, slots=True)
class _Pending:
    due: int
    offset: int
    topic: str = field(compare=False)
    partition: int = field(compare=False)
    record: Record = field(compare=False)


@dataclass(slots=True)
class _State:
    """One internal partition this broker leads."""

    index: int
    heap: list[_Pending] = field(default_factory=list)
    watermark: tuple[int, int] = (-1, -1)
    timer: Any = None
    timer_due: int = 0
    task: asyncio.Task | None = None
    delivered: int = 0


class DelayedDelivery:
    """The broker service: diverts delayed batches on Produce, delivers them when due."""

    topic_name = DELAYED_TOPIC

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.states: dict[int, _State] = {}
        self.loaded = False
        self.diverted = 0  # records stored in the internal topic
        self.delivered = 0  # records appended to their targets
        self.dropped = 0  # records whose target partition no longer exists

    # -- configuration -----------------------------------------------------------------------

    def now_ms(self) -> int:
        clock = getattr(self.broker, "clock", None)
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

    # -- Produce: diverting a batch ----------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.broker.config["kbroker.delayed.enable"])

    def divert(self, partition: Any, records: Any, version: int, acks: int, transactional_id: str | None,
               now_ms: int) -> AppendResult | Any:
        """Store a produced batch that may carry delay headers: an :class:`AppendResult` (or an
        awaitable of it for acks=all with followers), or the batch, unchanged, for the normal path
        (``None``) when no record carries a delay header after all. Raises :class:`ProduceError`."""
        header, records = validate_produce_batch(records, version, partition.config["max.message.bytes"])
        try:
            parsed = list(iter_records(records, max_decompressed_size=MAX_DECOMPRESSED))
        except InvalidRecordBatch as exc:
            raise ProduceError(ErrorCode.CORRUPT_MESSAGE, str(exc)) from None
        dues: list[int] = []
        errors: list[tuple[int, str]] = []
        found = False
        max_delay = self.broker.config["kbroker.delayed.max.delay.ms"]
        for i, record in enumerate(parsed):
            due, error, has = _due(record, now_ms, max_delay)
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
        if idempotent:
            # The producer's sequence numbers belong to the target partition: they are checked and
            # recorded there (a retry is answered with the first answer's offset).
            duplicate = producer_state.check_append(partition, header, None, version)
            if duplicate is not None:
                duplicate.last_offset = -1
                return duplicate
        if not self.ensure_topic():
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"{DELAYED_TOPIC} is not available yet")
        internal = self._internal_partition(partition.topic, partition.index)
        if internal is None:
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                               f"Broker {self.broker.node_id} leads no partition of {DELAYED_TOPIC}")
        state = self.states.get(internal.index)
        floor = state.watermark[0] if state is not None else -1
        target = ((H_TOPIC, partition.topic.encode()), (H_PARTITION, str(partition.index).encode()))
        stored = []
        for record, due in zip(parsed, dues, strict=True):
            due = max(due, now_ms, floor)
            headers = tuple(h for h in record.headers if h[0] not in (DELIVER_AFTER, DELIVER_AT)
                            and not h[0].startswith(INTERNAL_PREFIX))
            stored.append((Record(key=record.key, value=record.value, timestamp=record.timestamp,
                                  headers=headers + target + ((H_DUE, str(due).encode()),)), due))
        batch = build_batch([r for r, _ in stored])
        base = self.broker.replica_manager.append_internal(internal, batch)
        self.diverted += len(stored)
        last = base + len(stored) - 1
        if idempotent:
            producer_state.on_append(partition, header, base, last)
        if state is not None:
            for i, (r, due) in enumerate(stored):
                heapq.heappush(state.heap, _Pending(due, base + i, partition.topic, partition.index, r))
            self._schedule(state)
        result = AppendResult(ErrorCode.NONE, base)
        if acks == -1 and internal.followers and internal.high_watermark <= last:
            return self._replicated(internal, last + 1, result)
        return result

    async def _replicated(self, internal: Any, required: int, result: AppendResult) -> AppendResult:
        from kbroker.replication.deadline import Deadline

        code = await self.broker.replica_manager.wait_for_replication(
            internal, required, Deadline(30_000, getattr(self.broker, "clock", None)))
        if code != ErrorCode.NONE:
            raise ProduceError(code)
        return result

    def _internal_partition(self, topic: str, index: int) -> Any:
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

    def _load(self, partition: Any) -> None:
        """Read the internal partition: its stored records and its last progress watermark."""
        state = _State(partition.index)
        stored: list[_Pending] = []
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
                entry = _decode_stored(r)
                if isinstance(entry, tuple):
                    state.watermark = max(state.watermark, entry)
                elif entry is not None:
                    stored.append(entry)
        state.heap = [e for e in stored if (e.due, e.offset) > state.watermark]
        heapq.heapify(state.heap)
        self.states[partition.index] = state
        log.info("delayed delivery: loaded %s-%d: %d pending, progress at %s", DELAYED_TOPIC, partition.index,
                 len(state.heap), state.watermark)
        self._schedule(state)

    # -- the scheduler -----------------------------------------------------------------------

    def _schedule(self, state: _State) -> None:
        if state.task is not None or not state.heap:
            return
        due = state.heap[0].due
        if state.timer is not None:
            if state.timer_due <= due:
                return
            state.timer.cancel()
        clock = getattr(self.broker, "clock", None)
        index = state.index
        if clock is not None:
            state.timer = clock.call_at(due, lambda: self._tick(index))
        else:
            delay = max(0.0, (due - self.now_ms()) / 1000)
            state.timer = asyncio.get_running_loop().call_later(delay, self._tick, index)
        state.timer_due = due

    def _tick(self, index: int) -> None:
        state = self.states.get(index)
        if state is None:
            return
        state.timer = None
        try:
            self._deliver_due(state)
        except Exception:
            log.exception("delayed delivery of %s-%d failed", DELAYED_TOPIC, index)
            self._retry(state)
            return
        self._schedule(state)

    def _retry(self, state: _State) -> None:
        clock = getattr(self.broker, "clock", None)
        index = state.index
        if clock is not None:  # the next advance retries
            state.timer = clock.call_at(clock.now_ms() + RETRY_MS, lambda: self._tick(index))
        else:
            state.timer = asyncio.get_running_loop().call_later(RETRY_MS / 1000, self._tick, index)
        state.timer_due = self.now_ms() + RETRY_MS

    def _deliver_due(self, state: _State) -> None:
        """Append every due record of ``state`` to its target (in (due, offset) order), then the
        progress watermark. Targets led by other brokers are sent Produce requests (a task)."""
        internal = self.broker.partition(DELAYED_TOPIC, state.index)
        if internal is None or not internal.is_leader:
            self._unload(state.index)
            return
        now = self.now_ms()
        due: list[_Pending] = []
        while state.heap and state.heap[0].due <= now:
            due.append(heapq.heappop(state.heap))
        if not due:
            return
        groups: dict[tuple[str, int], list[_Pending]] = {}
        for e in due:
            groups.setdefault((e.topic, e.partition), []).append(e)
        remote: dict[tuple[str, int], list[_Pending]] = {}
        for (topic, index), entries in groups.items():
            target = self.broker.partition(topic, index)
            if target is not None and target.is_leader:
                try:
                    self.broker.replica_manager.append_internal(target, self._delivery_batch(entries, now))
                except Exception as exc:  # noqa: BLE001 - a full disk, a log being closed: retried
                    log.warning("delayed delivery to %s-%d failed: %s; retrying", topic, index, exc)
                    remote[(topic, index)] = entries
                    continue
                self.delivered += len(entries)
            elif self.broker.image.partition(topic, index) is None:
                log.warning("delayed delivery: %d records for %s-%d dropped: the partition does not exist",
                            len(entries), topic, index)
                self.dropped += len(entries)
            else:
                remote[(topic, index)] = entries
        if remote:
            state.task = asyncio.get_running_loop().create_task(self._deliver_remote(state, remote, due[-1], now))
            return
        self._write_progress(internal, state, (due[-1].due, due[-1].offset))

    def _write_progress(self, internal: Any, state: _State, watermark: tuple[int, int]) -> None:
        record = Record(value=f"{watermark[0]},{watermark[1]}".encode(), timestamp=self.now_ms(),
                        headers=((H_PROGRESS, b""),))
        self.broker.replica_manager.append_internal(internal, build_batch([record]))
        state.watermark = watermark

    def _delivery_batch(self, entries: list[_Pending], now: int) -> bytes:
        return build_batch([
            Record(key=e.record.key, value=e.record.value, timestamp=now,
                   headers=tuple(h for h in e.record.headers if not h[0].startswith(INTERNAL_PREFIX))
                   + ((CREATE_TIME_HEADER, str(e.record.timestamp).encode()),))
            for e in entries])

    async def _deliver_remote(self, state: _State, remote: dict[tuple[str, int], list[_Pending]], last: _Pending,
                              now: int) -> None:
        """Produce (acks=all) the records of targets led elsewhere; retried until each leader
        takes them or the target is gone; then the progress watermark."""
        from kbroker.replication.replica_fetcher import BrokerConnection

        broker = self.broker
        connections: dict[int, Any] = {}
        try:
            while remote and state.index in self.states:
                for (topic, index), entries in list(remote.items()):
                    part = broker.image.partition(topic, index)
                    if part is None:
                        self.dropped += len(entries)
                        del remote[(topic, index)]
                        continue
                    local = broker.partition(topic, index)
                    if local is not None and local.is_leader:
                        try:
                            broker.replica_manager.append_internal(local, self._delivery_batch(entries, now))
                        except Exception as exc:  # noqa: BLE001 - retried after the backoff
                            log.warning("delayed delivery to %s-%d failed: %s; retrying", topic, index, exc)
                            continue
                        self.delivered += len(entries)
                        del remote[(topic, index)]
                        continue
                    reg = broker.image.brokers.get(part.leader)
                    listener = broker.config.inter_broker_listener
                    if reg is None or listener not in reg.endpoints:
                        continue
                    request = produce_request(topic, index, self._delivery_batch(entries, now))
                    try:
                        conn = connections.get(part.leader)
                        if conn is None:
                            host, port, _protocol = reg.endpoints[listener]
                            conn = BrokerConnection(host, port, f"broker-{broker.node_id}-delayed", 100 << 20)
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
                        del remote[(topic, index)]
                    else:
                        log.info("delayed delivery to %s-%d: %s; retrying", topic, index, ErrorCode(code).name)
                if remote:
                    await asyncio.sleep(RETRY_MS / 1000)
            internal = broker.partition(DELAYED_TOPIC, state.index)
            if state.index in self.states and internal is not None and internal.is_leader:
                self._write_progress(internal, state, (last.due, last.offset))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delayed delivery of %s-%d failed", DELAYED_TOPIC, state.index)
        finally:
            for conn in connections.values():
                conn.close()
            state.task = None
            if state.index in self.states:
                self._schedule(state)


PRODUCE_VERSION = 9  # by topic name (v13 addresses topics by id)


def produce_request(topic: str, index: int, batch: bytes) -> Any:
    """The Produce (acks=all) a scheduler sends a target partition's leader on another broker."""
    from kbroker_protocol.messages.produce import ProduceRequest as Req

    return Req(transactional_id=None, acks=-1, timeout_ms=30_000, topic_data=[
        Req.TopicProduceData(name=topic, partition_data=[
            Req.TopicProduceData.PartitionProduceData(index=index, records=batch)])])


def _due(record: Record, now_ms: int, max_delay: int) -> tuple[int, str | None, bool]:
    """``(due time, error or None, carries a delay header)`` of a produced record."""
    found = [(key, value) for key, value in record.headers if key in (DELIVER_AFTER, DELIVER_AT)]
    if not found:
        return now_ms, None, False
    if len(found) > 1:
        return now_ms, f"A record may carry only one of {DELIVER_AFTER} and {DELIVER_AT}", True
    name, raw = found[0]
    if not raw or not raw.isdigit() or len(raw) > 19:
        shown = raw.decode("ascii", "replace")[:40] if raw is not None else "null"
        return now_ms, f"Header {name} must be a non-negative decimal integer of milliseconds, got '{shown}'", True
    value = int(raw)
    due = now_ms + value if name == DELIVER_AFTER else value
    if due - now_ms > max_delay:
        return now_ms, (f"Header {name} asks for a delay of {due - now_ms} ms, above "
                        f"kbroker.delayed.max.delay.ms={max_delay}"), True
    return due, None, True


def _decode_stored(record: Record) -> _Pending | tuple[int, int] | None:
    headers = dict(record.headers)
    if H_PROGRESS in headers:
        try:
            due_text, offset_text = (record.value or b"").split(b",")
            return int(due_text), int(offset_text)
        except ValueError:
            log.warning("delayed delivery: unreadable progress record at %s", record.offset)
            return None
    try:
        topic = (headers[H_TOPIC] or b"").decode()
        partition = int(headers[H_PARTITION] or b"")
        due = int(headers[H_DUE] or b"")
    except (KeyError, ValueError, UnicodeDecodeError):
        log.warning("delayed delivery: unreadable stored record at %s", record.offset)
        return None
    assert record.offset is not None
    return _Pending(due, record.offset, topic, partition, record)
