"""A share partition (KIP-932): one share group's delivery state of one topic partition.

As Kafka's ``SharePartition`` keeps it: the share-partition start offset (SPSO, ``start_offset``),
the end of the in-flight window (SPEO, ``end_offset``: the last offset ever acquired), and for each
in-flight offset between them its state (Available, Acquired, Acknowledged, Archived), delivery
count and, while acquired, the member holding it and its acquisition lock.

- ``acquire`` takes the batches read from the log at :meth:`next_fetch_offset` and acquires whole
  batches of new records (past the SPEO) and Available records already in flight, up to the
  ``max_records`` asked (batch boundaries may exceed it, as in Kafka) and the partition's in-flight
  limit (``group.share.partition.max.record.locks``). Each acquisition's records are locked for
  ``group.share.record.lock.duration.ms``; when the lock expires still Acquired they go back to
  Available, or are Archived once their delivery count reached ``group.share.delivery.count.limit``.
- ``acknowledge`` applies ACCEPT (Acknowledged), RELEASE (Available, or Archived at the limit),
  REJECT and GAP (Archived) and RENEW (the lock restarts) to records the member holds. A request
  naming any record not Acquired by that member changes nothing and fails with
  INVALID_RECORD_STATE, offsets past the window with INVALID_REQUEST (Kafka's messages; Kafka rolls
  the whole request back).
- ``release_member`` gives back a leaving member's records (share session closed, member left).
- The SPSO moves past every leading Acknowledged/Archived record; the state of what changed is
  written through the persister (``share_state``) before the caller answers, so delivery counts and
  states survive a restart. Acquisition itself is not persisted (as in Kafka): after a restart an
  acquired record is Available again with the delivery count it had before that acquisition.

Record state ids are Kafka's ``RecordState`` ids (the ones persisted): 0 Available, 1 Acquired,
2 Acknowledged, 4 Archived.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import parse_header

if TYPE_CHECKING:
    from kbroker.coordinator.group_classic_model import Timer

log = logging.getLogger(__name__)

AVAILABLE, ACQUIRED, ACKNOWLEDGED, ARCHIVED = 0, 1, 2, 4
STATE_NAMES = {AVAILABLE: "Available", ACQUIRED: "Acquired", ACKNOWLEDGED: "Acknowledged", ARCHIVED: "Archived"}
TERMINAL = (ACKNOWLEDGED, ARCHIVED)

# AcknowledgeType of ShareFetch/ShareAcknowledge.
ACK_GAP, ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW = 0, 1, 2, 3, 4

_lock_ids = itertools.count(1)


@dataclass(slots=True)
class InFlight:
    state: int
    delivery_count: int
    member_id: str = ""
    lock_id: int = 0


@dataclass(slots=True)
class StateBatch:
    """A persisted run of offsets with one state and delivery count (Kafka's PersisterStateBatch)."""

    first_offset: int
    last_offset: int
    state: int
    delivery_count: int


@dataclass(slots=True)
class Acquired:
    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(slots=True)
class FetchedBatch:
    base_offset: int
    last_offset: int
    is_control: bool  # transaction markers, and (read_committed) batches of aborted transactions
    data: bytes
    producer_id: int = -1
    transactional: bool = False


def split_batches(data: bytes) -> list[FetchedBatch]:
    """The record batches of ``data`` (whole batches as the log returns them)."""
    out = []
    pos = 0
    while pos < len(data):
        h = parse_header(data, pos)
        out.append(FetchedBatch(h.base_offset, h.last_offset, bool(h.attributes & 0x20), data[pos:pos + h.size],
                                h.producer_id, bool(h.attributes & 0x10)))
        pos += h.size
    return out


def mark_aborted(batches: list[FetchedBatch], aborted: list[tuple[int, int]]) -> None:
    """read_committed (``share.isolation.level``): the data batches of aborted transactions
    (``aborted``: (producer id, first offset) from the transaction index) are never delivered,
    as Kafka's share partition archives them; they are treated like transaction markers."""
    if not aborted:
        return
    starts = sorted(aborted, key=lambda a: a[1])
    open_aborts: set[int] = set()
    i = 0
    for b in batches:
        while i < len(starts) and starts[i][1] <= b.base_offset:
            open_aborts.add(starts[i][0])
            i += 1
        if b.is_control:
            open_aborts.discard(b.producer_id)  # the marker ends that producer's transaction
        elif b.transactional and b.producer_id in open_aborts:
            b.is_control = True


def runs(states: dict[int, InFlight], first: int, last: int) -> list[StateBatch]:
    """Offsets ``first..last`` of ``states`` as runs of equal (state, delivery count). An acquisition
    is not persisted (as in Kafka, whose writes carry only the records whose delivery completed or
    was given back): an acquired record is written as it was before, Available with the delivery
    count before this delivery."""
    out: list[StateBatch] = []
    for offset in range(first, last + 1):
        rec = states.get(offset)
        if rec is None:
            continue
        st, dc = (AVAILABLE, rec.delivery_count - 1) if rec.state == ACQUIRED else (rec.state, rec.delivery_count)
        if out and out[-1].last_offset == offset - 1 and out[-1].state == st and out[-1].delivery_count == dc:
            out[-1].last_offset = offset
        else:
            out.append(StateBatch(offset, offset, st, dc))
    return out


@dataclass
class SharePartitionConfig:
    record_lock_duration_ms: int
    delivery_count_limit: int
    max_in_flight: int


class SharePartition:
    def __init__(self, group_id: str, topic: str, topic_id: uuid.UUID, partition: int, timer: Timer,
                 config: Callable[[], SharePartitionConfig], persist: Callable[[SharePartition], None],
                 on_available: Callable[[], None] | None = None,
                 dead_letter: Callable[[SharePartition, list[tuple[int, int]], str], None] | None = None) -> None:
        self.group_id = group_id
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.timer = timer
        self._config = config
        self._persist = persist
        self._on_available = on_available
        # (share partition, [(offset, delivery count)], cause): records given up on (REJECTed, or
        # at the delivery count limit), before they are archived (share_dlq).
        self._dead_letter = dead_letter
        self.start_offset = 0
        self.end_offset = -1  # the last offset in flight; start_offset - 1 when nothing is
        self.state_epoch = 0
        self.leader_epoch = 0
        self.states: dict[int, InFlight] = {}
        self._locks: dict[int, list[int]] = {}
        self.initialized = False

    def __repr__(self) -> str:
        return f"SharePartition({self.group_id} {self.topic}-{self.partition} [{self.start_offset}, {self.end_offset}])"

    # -- initialization ---------------------------------------------------------------------------------

    def initialize(self, start_offset: int, state_epoch: int, batches: list[StateBatch]) -> None:
        """From the persisted state (``start_offset`` and its state batches)."""
        self.start_offset = start_offset
        self.state_epoch = state_epoch
        self.states.clear()
        for b in batches:
            if b.first_offset < start_offset or b.last_offset < b.first_offset:
                raise ValueError(f"invalid state batch {b} for start offset {start_offset}")
            state = AVAILABLE if b.state == ACQUIRED else b.state
            for offset in range(b.first_offset, b.last_offset + 1):
                self.states[offset] = InFlight(state, b.delivery_count)
        self.end_offset = max(self.states) if self.states else start_offset - 1
        self.initialized = True
        self._advance_start()

    def reset_start(self, offset: int) -> None:
        """AlterShareGroupOffsets: start over at ``offset`` with nothing in flight."""
        self._cancel_locks()
        self.states.clear()
        self.start_offset = offset
        self.end_offset = offset - 1
        self.state_epoch += 1
        self.initialized = True

    def adjust_to_log_start(self, log_start: int) -> bool:
        """Records deleted from the log (retention, DeleteRecords) leave the window: the SPSO moves to
        the log start offset, as Kafka's ``updateCacheAndOffsets`` does. True when it moved."""
        if log_start <= self.start_offset:
            return False
        for offset in [o for o in self.states if o < log_start]:
            rec = self.states.pop(offset)
            if rec.lock_id:
                self._drop_from_lock(rec.lock_id, offset)
        self.start_offset = log_start
        self.end_offset = max(self.end_offset, log_start - 1)
        return True

    # -- reading ------------------------------------------------------------------------------------------

    @property
    def config(self) -> SharePartitionConfig:
        return self._config()

    def in_flight_count(self) -> int:
        return max(0, self.end_offset - self.start_offset + 1)

    def next_fetch_offset(self) -> int:
        """The first Available record in flight, else the first offset past the window."""
        for offset in range(self.start_offset, self.end_offset + 1):
            rec = self.states.get(offset)
            if rec is not None and rec.state == AVAILABLE:
                return offset
        return self.end_offset + 1

    def can_acquire(self) -> bool:
        nxt = self.next_fetch_offset()
        return nxt <= self.end_offset or self.in_flight_count() < self.config.max_in_flight

    def acquire(self, member_id: str, batches: list[FetchedBatch], max_records: int, record_limit: bool = False
                ) -> tuple[list[Acquired], list[FetchedBatch]]:
        """Acquire for ``member_id`` from ``batches`` (read from the log at the next fetch offset).
        Returns the acquired ranges and the batches that carry them. ``record_limit`` (ShareFetch
        v2 ShareAcquireMode 1): never more than ``max_records``; the rest of a new batch enters the
        window Available."""
        cfg = self.config
        max_records = max(max_records, 1)
        lock_id = next(_lock_ids)
        acquired_offsets: list[int] = []
        sent: list[FetchedBatch] = []
        count = 0
        for batch in batches:
            if count >= max_records:
                break
            took = False
            if batch.last_offset <= self.end_offset:
                # Records already in flight: only the Available ones are acquired again.
                for offset in range(max(batch.base_offset, self.start_offset), batch.last_offset + 1):
                    rec = self.states.get(offset)
                    if rec is None or rec.state != AVAILABLE:
                        continue
                    if count >= max_records:
                        break
                    rec.state, rec.member_id, rec.lock_id = ACQUIRED, member_id, lock_id
                    rec.delivery_count += 1
                    acquired_offsets.append(offset)
                    count += 1
                    took = True
            else:
                first = max(batch.base_offset, self.end_offset + 1, self.start_offset)
                # Part of the batch may still be in flight (a batch straddling the SPEO).
                for offset in range(max(batch.base_offset, self.start_offset), first):
                    rec = self.states.get(offset)
                    if rec is not None and rec.state == AVAILABLE and count < max_records:
                        rec.state, rec.member_id, rec.lock_id = ACQUIRED, member_id, lock_id
                        rec.delivery_count += 1
                        acquired_offsets.append(offset)
                        count += 1
                        took = True
                if self.in_flight_count() >= cfg.max_in_flight:
                    if took:
                        sent.append(batch)
                    break
                if batch.is_control:
                    # Transaction markers are never delivered: they leave the window at once.
                    for offset in range(first, batch.last_offset + 1):
                        self.states[offset] = InFlight(ARCHIVED, 0)
                    self.end_offset = batch.last_offset
                else:
                    for offset in range(first, batch.last_offset + 1):
                        if record_limit and count >= max_records:
                            self.states[offset] = InFlight(AVAILABLE, 0)
                            continue
                        self.states[offset] = InFlight(ACQUIRED, 1, member_id, lock_id)
                        acquired_offsets.append(offset)
                        count += 1
                    self.end_offset = batch.last_offset
                    took = True
            if took:
                sent.append(batch)
        if acquired_offsets:
            self._locks[lock_id] = acquired_offsets
            self.timer.schedule(self._lock_key(lock_id), cfg.record_lock_duration_ms,
                                lambda: self._on_lock_expired(lock_id))
        self._advance_start()
        return self._ranges(acquired_offsets), sent

    def _ranges(self, offsets: list[int]) -> list[Acquired]:
        out: list[Acquired] = []
        for offset in sorted(offsets):
            dc = self.states[offset].delivery_count
            if out and out[-1].last_offset == offset - 1 and out[-1].delivery_count == dc:
                out[-1].last_offset = offset
            else:
                out.append(Acquired(offset, offset, dc))
        return out

    # -- acknowledgements ------------------------------------------------------------------------------------

    def acknowledge(self, member_id: str, batches: list[tuple[int, int, list[int]]]
                    ) -> tuple[ErrorCode, str | None]:
        """``batches``: (first offset, last offset, acknowledge types: one for all or one per offset).
        Returns the error and message Kafka's ``SharePartition.acknowledge`` gives; nothing changes
        unless every record of every batch may be acknowledged."""
        plan: list[tuple[int, int]] = []
        for first, last, types in batches:
            if last < self.start_offset or self.end_offset < self.start_offset:
                return ErrorCode.INVALID_RECORD_STATE, (
                    "Batch record not found. The request batch offsets are not found in the cache.")
            if first > self.end_offset:
                return ErrorCode.INVALID_REQUEST, (
                    "Batch record not found. The first offset in request is past acquired records.")
            if last > self.end_offset:
                return ErrorCode.INVALID_REQUEST, (
                    "Batch record not found. The last offset in request is past acquired records.")
            # Records below the SPSO are complete already (the start moved past them): skipped.
            for offset in range(max(first, self.start_offset), last + 1):
                ack = types[0] if len(types) == 1 else types[offset - first]
                rec = self.states.get(offset)
                if rec is None or rec.state != ACQUIRED:
                    return ErrorCode.INVALID_RECORD_STATE, "The offset cannot be acknowledged. The offset is not acquired."
                if rec.member_id != member_id:
                    return ErrorCode.INVALID_RECORD_STATE, "Member is not the owner of offset"
                plan.append((offset, ack))
        limit = self.config.delivery_count_limit
        renewed: list[int] = []
        rejected: list[tuple[int, int]] = []
        exhausted: list[tuple[int, int]] = []
        touched_first, touched_last = None, None
        for offset, ack in plan:
            rec = self.states[offset]
            if ack == ACK_RENEW:
                renewed.append(offset)
                continue
            self._drop_from_lock(rec.lock_id, offset)
            rec.member_id, rec.lock_id = "", 0
            if ack == ACK_ACCEPT:
                rec.state = ACKNOWLEDGED
            elif ack == ACK_RELEASE:
                rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
                if rec.state == ARCHIVED:
                    exhausted.append((offset, rec.delivery_count))
            else:  # REJECT, GAP
                rec.state = ARCHIVED
                if ack == ACK_REJECT:
                    rejected.append((offset, rec.delivery_count))
            touched_first = offset if touched_first is None else min(touched_first, offset)
            touched_last = offset if touched_last is None else max(touched_last, offset)
        if renewed:
            lock_id = next(_lock_ids)
            for offset in renewed:
                rec = self.states[offset]
                self._drop_from_lock(rec.lock_id, offset)
                rec.lock_id = lock_id
            self._locks[lock_id] = renewed
            self.timer.schedule(self._lock_key(lock_id), self.config.record_lock_duration_ms,
                                lambda: self._on_lock_expired(lock_id))
        if touched_first is not None:
            self._give_up(rejected, "Offset rejected by client.")
            self._give_up(exhausted, "Offset delivery count exceeded the threshold.")
            self._advance_start()
            self._persist(self)
            self._wake()
        return ErrorCode.NONE, None

    def release_member(self, member_id: str) -> int:
        """Give back every record ``member_id`` holds (its share session closed or it left the group):
        Available again, or Archived at the delivery count limit. Returns how many."""
        released = 0
        limit = self.config.delivery_count_limit
        exhausted: list[tuple[int, int]] = []
        for offset in range(self.start_offset, self.end_offset + 1):
            rec = self.states.get(offset)
            if rec is None or rec.state != ACQUIRED or rec.member_id != member_id:
                continue
            self._drop_from_lock(rec.lock_id, offset)
            rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
            if rec.state == ARCHIVED:
                exhausted.append((offset, rec.delivery_count))
            rec.member_id, rec.lock_id = "", 0
            released += 1
        if released:
            self._give_up(exhausted, "Offset delivery count exceeded the threshold.")
            self._advance_start()
            self._persist(self)
            self._wake()
        return released

    # -- locks -------------------------------------------------------------------------------------------------

    def _lock_key(self, lock_id: int) -> str:
        return f"share-lock:{self.group_id}:{self.topic_id}:{self.partition}:{lock_id}"

    def _drop_from_lock(self, lock_id: int, offset: int) -> None:
        offsets = self._locks.get(lock_id)
        if offsets is None:
            return
        try:
            offsets.remove(offset)
        except ValueError:
            pass
        if not offsets:
            del self._locks[lock_id]
            self.timer.cancel(self._lock_key(lock_id))

    def _on_lock_expired(self, lock_id: int) -> None:
        offsets = self._locks.pop(lock_id, None)
        if not offsets:
            return
        limit = self.config.delivery_count_limit
        changed = 0
        exhausted: list[tuple[int, int]] = []
        for offset in offsets:
            rec = self.states.get(offset)
            if rec is None or rec.state != ACQUIRED or rec.lock_id != lock_id:
                continue
            rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
            if rec.state == ARCHIVED:
                exhausted.append((offset, rec.delivery_count))
            rec.member_id, rec.lock_id = "", 0
            changed += 1
        if changed:
            self._give_up(exhausted, "Offset delivery count exceeded the threshold.")
            log.info("share group %s %s-%d: acquisition lock expired for %d records", self.group_id, self.topic,
                     self.partition, changed)
            self._advance_start()
            self._persist(self)
            self._wake()

    def _give_up(self, entries: list[tuple[int, int]], cause: str) -> None:
        if entries and self._dead_letter is not None:
            try:
                self._dead_letter(self, sorted(entries), cause)
            except Exception:
                log.exception("share group %s %s-%d: dead letters failed; the records are archived", self.group_id,
                              self.topic, self.partition)

    def _cancel_locks(self) -> None:
        for lock_id in list(self._locks):
            self.timer.cancel(self._lock_key(lock_id))
        self._locks.clear()

    def close(self) -> None:
        self._cancel_locks()

    def _wake(self) -> None:
        if self._on_available is not None:
            self._on_available()

    # -- the window ------------------------------------------------------------------------------------------

    def _advance_start(self) -> None:
        while self.start_offset <= self.end_offset:
            rec = self.states.get(self.start_offset)
            if rec is not None and rec.state not in TERMINAL:
                break
            self.states.pop(self.start_offset, None)
            self.start_offset += 1

    def state_batches(self) -> list[StateBatch]:
        """The in-flight window as persisted state batches."""
        return runs(self.states, self.start_offset, self.end_offset)

    def delivery_complete_count(self) -> int:
        return sum(1 for r in self.states.values() if r.state in TERMINAL)

    def acquired_count(self) -> int:
        return sum(1 for r in self.states.values() if r.state == ACQUIRED)

    def lag(self, high_watermark: int) -> int:
        """Records not yet delivered to completion (Kafka's share-partition lag)."""
        return max(0, high_watermark - self.start_offset - self.delivery_complete_count())

