"""The share coordinator's state (KIP-932): ``__share_group_state`` as Kafka keeps it.

Each share partition (group id, topic id, partition) lives in partition
``abs(javaHashCode("group:topicId:partition")) % partitions`` of ``__share_group_state``
(Kafka's ``SharePartitionKey.asCoordinatorKey``), created on first use with Kafka's topic configs
(``cleanup.policy=delete``, ``retention.ms=-1``, ``share.coordinator.state.topic.*``). Its records
are Kafka's ``ShareSnapshotKey/Value`` (type 0) and ``ShareUpdateKey/Value`` (type 1), so Kafka's
tools can read what this broker writes. kbroker writes a ShareSnapshot (the whole state of the
share partition) on every write; replay at start-up reads snapshots and applies updates on top of
the latest one, as Kafka's ``ShareCoordinatorShard.replay`` does, so a topic written by either
loads.

The store serves the share partitions of this broker (:class:`~kbroker.coordinator.share_partition.SharePartition`
persists through :meth:`ShareStateStore.write`) and the share coordinator's RPCs (Read/Write/
Initialize/Delete ShareGroupState, ReadShareGroupStateSummary) with Kafka's checks: a write or
initialize with an older state epoch is FENCED_STATE_EPOCH, a write with an older leader epoch
FENCED_LEADER_EPOCH.

Every ``share.coordinator.state.topic.prune.interval.ms`` (5 min) the records before each
partition's oldest latest snapshot are deleted (the log start moves), as Kafka prunes the topic, so
it does not grow without bound.

On one node ``share.coordinator.state.topic.replication.factor`` (Kafka's default 3) cannot be met:
the topic is created with the replication factor the cluster allows and ``min.insync.replicas``
capped by it, so the defaults just work.
"""

from __future__ import annotations

import logging
import struct
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.coordinator.partitioning import partition_for
from kbroker.coordinator.share_partition import StateBatch
from kbroker.log.batch_records import offset_of
from kbroker.replication.topics import (
    await_internal_topic,
    ensure_internal_topic,
    internal_min_isr,
    internal_replication_factor,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch, iter_records

if TYPE_CHECKING:
    from kbroker.coordinator.group_classic_model import Timer
    from kbroker.coordinator.hosts import CoordinatorHost
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

STATE_TOPIC = "__share_group_state"
# Kafka's share.coordinator.write.timeout.ms default (kbroker has no such key yet): how long a state
# write waits for the state partition's in-sync replicas.
WRITE_TIMEOUT_MS = 5000
SNAPSHOT_TYPE, UPDATE_TYPE = 0, 1

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_BATCH = struct.Struct(">qqbh")


# -- the records' codec (share-coordinator/src/main/resources/common/message/Share*.json) ------------


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise ValueError("varint too long")


def encode_key(kind: int, group_id: str, topic_id: uuid.UUID, partition: int) -> bytes:
    g = group_id.encode()
    return _I16.pack(kind) + _I16.pack(len(g)) + g + topic_id.bytes + _I32.pack(partition)


def decode_key(key: bytes) -> tuple[int, str, uuid.UUID, int]:
    (kind,) = _I16.unpack_from(key, 0)
    (n,) = _I16.unpack_from(key, 2)
    group = bytes(key[4:4 + n]).decode()
    pos = 4 + n
    topic_id = uuid.UUID(bytes=bytes(key[pos:pos + 16]))
    (partition,) = _I32.unpack_from(key, pos + 16)
    return kind, group, topic_id, partition


@dataclass
class ShareState:
    snapshot_epoch: int = 0
    state_epoch: int = 0
    leader_epoch: int = -1
    start_offset: int = -1
    delivery_complete_count: int = -1
    create_timestamp: int = -1
    write_timestamp: int = -1
    batches: list[StateBatch] = field(default_factory=list)
    updates_since_snapshot: int = 0


def _encode_batches(batches: list[StateBatch]) -> bytes:
    out = bytearray(_uvarint(len(batches) + 1))
    for b in batches:
        out += _BATCH.pack(b.first_offset, b.last_offset, b.state, b.delivery_count)
        out += b"\x00"  # no tagged fields
    return bytes(out)


def _tagged_count(count: int) -> bytes:
    if count == -1:
        return b"\x00"
    return b"\x01" + _uvarint(0) + _uvarint(4) + _I32.pack(count)


def encode_snapshot_value(s: ShareState) -> bytes:
    return (_I16.pack(0) + _I32.pack(s.snapshot_epoch) + _I32.pack(s.state_epoch) + _I32.pack(s.leader_epoch)
            + _I64.pack(s.start_offset) + _I64.pack(s.create_timestamp) + _I64.pack(s.write_timestamp)
            + _encode_batches(s.batches) + _tagged_count(s.delivery_complete_count))


def encode_update_value(snapshot_epoch: int, leader_epoch: int, start_offset: int, batches: list[StateBatch],
                        delivery_complete_count: int = -1) -> bytes:
    return (_I16.pack(0) + _I32.pack(snapshot_epoch) + _I32.pack(leader_epoch) + _I64.pack(start_offset)
            + _encode_batches(batches) + _tagged_count(delivery_complete_count))


def _decode_batches(buf: bytes, pos: int) -> tuple[list[StateBatch], int]:
    n, pos = _read_uvarint(buf, pos)
    batches = []
    for _ in range(max(n - 1, 0)):
        first, last, state, count = _BATCH.unpack_from(buf, pos)
        pos += _BATCH.size
        pos = _skip_tags(buf, pos)[1]
        batches.append(StateBatch(first, last, state, count))
    return batches, pos


def _skip_tags(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a tagged-field section; returns (DeliveryCompleteCount or -1, position after)."""
    n, pos = _read_uvarint(buf, pos)
    count = -1
    for _ in range(n):
        tag, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        if tag == 0 and size == 4:
            (count,) = _I32.unpack_from(buf, pos)
        pos += size
    return count, pos


def decode_snapshot_value(value: bytes) -> ShareState:
    buf = bytes(value)
    snapshot_epoch, state_epoch, leader_epoch = struct.unpack_from(">iii", buf, 2)
    start_offset, create_ts, write_ts = struct.unpack_from(">qqq", buf, 14)
    batches, pos = _decode_batches(buf, 38)
    count, _ = _skip_tags(buf, pos)
    return ShareState(snapshot_epoch, state_epoch, leader_epoch, start_offset, count, create_ts, write_ts, batches)


def decode_update_value(value: bytes) -> tuple[int, int, int, list[StateBatch], int]:
    buf = bytes(value)
    snapshot_epoch, leader_epoch = struct.unpack_from(">ii", buf, 2)
    (start_offset,) = _I64.unpack_from(buf, 10)
    batches, pos = _decode_batches(buf, 18)
    count, _ = _skip_tags(buf, pos)
    return snapshot_epoch, leader_epoch, start_offset, batches, count


def merge_batches(old: list[StateBatch], new: list[StateBatch], start_offset: int) -> list[StateBatch]:
    """``old`` overwritten by ``new`` where they overlap, without anything below ``start_offset``
    (Kafka's ``PersisterStateBatchCombiner``), as sorted non-overlapping runs."""
    per: dict[int, tuple[int, int]] = {}
    for b in old:
        for o in range(max(b.first_offset, start_offset), b.last_offset + 1):
            per[o] = (b.state, b.delivery_count)
    for b in new:
        for o in range(max(b.first_offset, start_offset), b.last_offset + 1):
            per[o] = (b.state, b.delivery_count)
    out: list[StateBatch] = []
    for o in sorted(per):
        st, dc = per[o]
        if out and out[-1].last_offset == o - 1 and out[-1].state == st and out[-1].delivery_count == dc:
            out[-1].last_offset = o
        else:
            out.append(StateBatch(o, o, st, dc))
    return out


Key = tuple[str, uuid.UUID, int]


class ShareStateStore:
    """Kafka's share coordinator over ``__share_group_state`` (one node leads every partition)."""

    def __init__(self, broker: CoordinatorHost, timer: Timer) -> None:
        self.broker = broker
        self.timer = timer
        self.states: dict[Key, ShareState] = {}
        self.snapshot_offsets: dict[Key, int] = {}  # where each share partition's latest snapshot is
        self.loaded = False

    # -- the topic --------------------------------------------------------------------------------------

    @property
    def num_partitions(self) -> int:
        topic = self.broker.image.topic(STATE_TOPIC)
        if topic is not None and topic.partitions:
            return len(topic.partitions)
        configured: int = self.broker.config["share.coordinator.state.topic.num.partitions"]
        return configured

    def topic_configs(self) -> dict[str, str]:
        c = self.broker.config
        return {
            "cleanup.policy": "delete",
            "compression.type": "producer",
            "segment.bytes": str(c["share.coordinator.state.topic.segment.bytes"]),
            "min.insync.replicas": str(internal_min_isr(self.broker, "share.coordinator.state.topic.min.isr")),
            "retention.ms": "-1",
        }

    def ensure_topic(self) -> bool:
        return ensure_internal_topic(self.broker, STATE_TOPIC, self.num_partitions, self.topic_configs(),
                                     internal_replication_factor(self.broker, "share.coordinator.state.topic.replication.factor"))

    async def await_topic(self) -> bool:
        """:meth:`ensure_topic` with a bounded wait for the controller's answer (none while the
        broker is stopping)."""
        if self.broker.stopping:
            return self.ensure_topic()
        return await await_internal_topic(
            self.broker, STATE_TOPIC, self.num_partitions, self.topic_configs(),
            internal_replication_factor(self.broker, "share.coordinator.state.topic.replication.factor"))

    def partition_for(self, group_id: str, topic_id: uuid.UUID, partition: int) -> int:
        return partition_for(f"{group_id}:{_uuid_text(topic_id)}:{partition}", self.num_partitions)

    def load(self) -> None:
        topic = self.broker.image.topic(STATE_TOPIC)
        if topic is not None:
            count = 0
            for index in sorted(topic.partitions):
                p = self.broker.partition(STATE_TOPIC, index)
                if p is not None:
                    count += self._load_log(p, index)
            if count:
                log.info("loaded %d records of %s (%d share partitions)", count, STATE_TOPIC, len(self.states))
        self.loaded = True

    def _load_log(self, p: Partition, index: int) -> int:
        count = 0
        for header, data in p.log.iter_batches():
            if header.is_control:
                continue
            for record in iter_records(data):
                if record.key is None:
                    continue
                try:
                    self._replay(record.key, record.value, offset_of(record))
                except (ValueError, struct.error) as e:
                    log.error("skipping undecodable record at %s-%d offset %d: %s", STATE_TOPIC, index,
                              record.offset, e)
                count += 1
        return count

    def reload_partition(self, index: int) -> None:
        """This broker became the leader of ``__share_group_state-<index>`` (Kafka's share coordinator
        loading a shard on election): the state of its share partitions is read again from the
        replicated log, which may hold what the previous leader wrote since start-up."""
        for key in [k for k in self.states if self.partition_for(*k) == index]:
            del self.states[key]
            self.snapshot_offsets.pop(key, None)
        p = self.broker.partition(STATE_TOPIC, index)
        count = self._load_log(p, index) if p is not None else 0
        log.info("loaded %d records of %s-%d (now its leader)", count, STATE_TOPIC, index)

    async def wait_replicated(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        """Wait until what was appended for the key is below its state partition's high watermark
        (Kafka's share coordinator writes with acks=all); NOT_COORDINATOR when leadership moved,
        COORDINATOR_NOT_AVAILABLE for too few replicas or a timeout (as the group coordinator's
        writes)."""
        from kbroker.replication.deadline import Deadline

        topic = self.broker.image.topic(STATE_TOPIC)
        if topic is None:
            return ErrorCode.NONE
        p = self.broker.partition(STATE_TOPIC, self.partition_for(group_id, topic_id, partition))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        deadline = Deadline(WRITE_TIMEOUT_MS, self.broker.clock)
        code: ErrorCode = await self.broker.replica_manager.wait_for_replication(p, p.log.log_end_offset, deadline)
        if code == ErrorCode.NONE:
            return code
        if code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
            return ErrorCode.NOT_COORDINATOR
        return ErrorCode.COORDINATOR_NOT_AVAILABLE

    def leads(self, group_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        """True when this broker is the share coordinator of the key: one broker in the cluster, or
        the leader of its ``__share_group_state`` partition."""
        if len(self.broker.image.brokers) < 2 or self.broker.image.topic(STATE_TOPIC) is None:
            return True
        p = self.broker.partition(STATE_TOPIC, self.partition_for(group_id, topic_id, partition))
        return p is not None and p.is_leader

    def _replay(self, key: bytes, value: bytes | None, offset: int = -1) -> None:
        kind, group, topic_id, partition = decode_key(key)
        k = (group, topic_id, partition)
        if value is None:
            if kind == SNAPSHOT_TYPE:
                self.states.pop(k, None)
                self.snapshot_offsets.pop(k, None)
            return
        if kind == SNAPSHOT_TYPE:
            self.states[k] = decode_snapshot_value(value)
            self.snapshot_offsets[k] = offset
        elif kind == UPDATE_TYPE:
            state = self.states.get(k)
            if state is None:
                return
            snapshot_epoch, leader_epoch, start_offset, batches, count = decode_update_value(value)
            if snapshot_epoch != state.snapshot_epoch:
                return
            if start_offset >= 0:
                state.start_offset = start_offset
            state.leader_epoch = max(state.leader_epoch, leader_epoch)
            state.batches = merge_batches(state.batches, batches, state.start_offset)
            state.delivery_complete_count = count
            state.updates_since_snapshot += 1

    def _append(self, group_id: str, topic_id: uuid.UUID, partition: int,
                records: list[tuple[bytes, bytes | None]]) -> int:
        """Append ``records`` of one share partition; returns the offset of the first."""
        if not self.ensure_topic():
            raise RuntimeError(f"{STATE_TOPIC} cannot be created")
        index = self.partition_for(group_id, topic_id, partition)
        p = self.broker.partition(STATE_TOPIC, index)
        if p is None:
            raise RuntimeError(f"{STATE_TOPIC}-{index} is not hosted here")
        now = self.timer.now_ms()
        batch = build_batch([Record(key=k, value=v, timestamp=now) for k, v in records])
        offset: int = self.broker.replica_manager.append_internal(p, batch)
        return offset

    def prune(self) -> dict[int, int]:
        """Kafka's pruning of ``__share_group_state`` (``share.coordinator.state.topic.prune.interval.ms``):
        in each partition, the records before the oldest latest snapshot of its share partitions
        (everything, without live ones) are deleted by moving the log start offset. Returns the new
        log start offsets of the partitions that moved."""
        topic = self.broker.image.topic(STATE_TOPIC)
        if topic is None:
            return {}
        oldest: dict[int, int] = {}
        for key, offset in self.snapshot_offsets.items():
            index = self.partition_for(*key)
            oldest[index] = min(oldest.get(index, offset), offset)
        moved = {}
        for index in sorted(topic.partitions):
            p = self.broker.partition(STATE_TOPIC, index)
            if p is None:
                continue
            target = oldest.get(index, p.log.high_watermark)
            if target > p.log.log_start_offset:
                moved[index] = p.log.advance_log_start(target)
        return moved

    # -- the share coordinator's operations -----------------------------------------------------------

    def read(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ShareState | None:
        return self.states.get((group_id, topic_id, partition))

    def write(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int, leader_epoch: int,
              start_offset: int, batches: list[StateBatch], delivery_complete_count: int = -1) -> ErrorCode:
        """Kafka's WriteShareGroupState: the batches overwrite the stored ones where they overlap,
        a start offset >= 0 moves the start (dropping what is below)."""
        key = (group_id, topic_id, partition)
        old = self.states.get(key)
        if old is not None:
            if state_epoch < old.state_epoch:
                return ErrorCode.FENCED_STATE_EPOCH
            if leader_epoch >= 0 and leader_epoch < old.leader_epoch:
                return ErrorCode.FENCED_LEADER_EPOCH
        now = self.timer.now_ms()
        new = ShareState(
            snapshot_epoch=(old.snapshot_epoch + 1) if old else 0,
            state_epoch=state_epoch,
            leader_epoch=max(leader_epoch, old.leader_epoch if old else -1),
            start_offset=start_offset if start_offset >= 0 else (old.start_offset if old else 0),
            delivery_complete_count=delivery_complete_count,
            create_timestamp=old.create_timestamp if old and old.create_timestamp >= 0 else now,
            write_timestamp=now,
        )
        new.batches = merge_batches(old.batches if old else [], batches, new.start_offset)
        self.snapshot_offsets[key] = self._append(group_id, topic_id, partition, [
            (encode_key(SNAPSHOT_TYPE, group_id, topic_id, partition), encode_snapshot_value(new))])
        self.states[key] = new
        return ErrorCode.NONE

    def replace(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int, leader_epoch: int,
                start_offset: int, batches: list[StateBatch], delivery_complete_count: int = -1) -> None:
        """The whole state of a share partition, as this broker's share partitions write it."""
        key = (group_id, topic_id, partition)
        old = self.states.get(key)
        now = self.timer.now_ms()
        new = ShareState(
            snapshot_epoch=(old.snapshot_epoch + 1) if old else 0, state_epoch=state_epoch,
            leader_epoch=leader_epoch, start_offset=start_offset, delivery_complete_count=delivery_complete_count,
            create_timestamp=old.create_timestamp if old and old.create_timestamp >= 0 else now,
            write_timestamp=now, batches=list(batches))
        self.snapshot_offsets[key] = self._append(group_id, topic_id, partition, [
            (encode_key(SNAPSHOT_TYPE, group_id, topic_id, partition), encode_snapshot_value(new))])
        self.states[key] = new

    def initialize(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int,
                   start_offset: int) -> ErrorCode:
        """Kafka's InitializeShareGroupState: a fresh state at ``start_offset`` (-1: from the group's
        ``share.auto.offset.reset`` when a share partition first loads it)."""
        old = self.states.get((group_id, topic_id, partition))
        if old is not None and state_epoch < old.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH
        self.replace(group_id, topic_id, partition, state_epoch, old.leader_epoch if old else -1, start_offset, [])
        return ErrorCode.NONE

    def delete(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        key = (group_id, topic_id, partition)
        if key not in self.states:
            return ErrorCode.NONE
        self._append(group_id, topic_id, partition,
                     [(encode_key(SNAPSHOT_TYPE, group_id, topic_id, partition), None),
                      (encode_key(UPDATE_TYPE, group_id, topic_id, partition), None)])
        del self.states[key]
        self.snapshot_offsets.pop(key, None)
        return ErrorCode.NONE

    def group_keys(self, group_id: str) -> list[Key]:
        return [k for k in self.states if k[0] == group_id]


def _uuid_text(topic_id: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def uuid_from_text(text: str) -> uuid.UUID:
    """Kafka's ``Uuid.fromString`` (URL-safe base64 of 16 bytes)."""
    import base64

    if len(text) > 24:
        raise ValueError(f"Invalid topic ID: {text}")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"Invalid topic ID: {text}")
    return uuid.UUID(bytes=raw)


def parse_share_key(key: str) -> tuple[str, uuid.UUID, int]:
    """Kafka's ``SharePartitionKey.getInstance(String)``: ``groupId:topicId:partition`` (the group
    id may itself contain ':'); raises ValueError with Kafka's message."""
    if not key:
        raise ValueError("Share partition key cannot be empty")
    tokens = key.split(":")
    if len(tokens) < 3:
        raise ValueError(f"Invalid key format: expected - groupId:topicId:partition, found - {key}")
    group = ":".join(tokens[:-2])
    if not group:
        raise ValueError("GroupId must not be empty")
    topic_id = uuid_from_text(tokens[-2])
    try:
        partition = int(tokens[-1])
    except ValueError:
        raise ValueError(f"Invalid partition: {tokens[-1]}") from None
    return group, topic_id, partition


class ShareKeyCoordinator:
    """The share coordinator as FindCoordinator (key type 2) sees it: keys are share partition keys."""

    topic_name = STATE_TOPIC

    def __init__(self, store: ShareStateStore) -> None:
        self.store = store

    def ensure_topic(self) -> bool:
        return self.store.ensure_topic()

    def partition_for(self, key: str) -> int:
        return self.store.partition_for(*parse_share_key(key))
