"""What log compaction must know about transactions, computed from the log itself.

The cleaner (cleaner.py) keeps the latest record per key. With transactions in the log that is
not enough; Kafka's LogCleaner also:

1. never cleans at or beyond the *first unstable offset* (the first offset of a transaction that
   has no marker yet): its outcome is unknown;
2. discards every record of an aborted transaction, and does not let those records into the
   key → latest-offset map (an aborted write must never shadow a committed one);
3. keeps a marker (control batch) while any batch of its transaction is still in the log: a
   producer-state rebuild (kbroker/replication/producer_state.py) that met the data without the
   marker would believe the transaction still open and hold the last stable offset forever;
4. drops a marker whose transaction has no batch left, but only ``delete.retention.ms`` after a
   cleaning pass first found it so (Kafka's delete horizon, KIP-534): that pass rewrites the marker
   batch with the delete-horizon attribute (bit 6) and baseTimestamp = now + delete.retention.ms,
   and a later pass past that time drops it. So a marker always outlives its data by at least one
   pass and delete.retention.ms, and a read_committed consumer that fetched aborted data just
   before the cleaning still meets the ABORT marker (the Java consumer skips a producer's batches
   from an aborted transaction's first offset until it sees the marker). A marker that is its
   producer's last batch and carries a newer epoch than the producer's last data batch (or the
   producer has no data batch left) is kept, as Kafka keeps it, so a rebuild keeps that epoch;
5. keeps the *last* data batch of each producer, even with all its records removed (an empty
   batch: same producer id, epoch, base sequence and lastOffsetDelta), so that a rebuild still
   knows the producer's epoch and last sequence and keeps answering retries as duplicates.

:func:`scan` makes one pass over the batch headers (control batches with their marker type) of
the whole log, from its start, and returns a :class:`TxnScan` with these answers. It is pure
(no files, no clock) and costs one dict entry per transaction in the scanned range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

ABORT, COMMIT = 0, 1
KEEP, DROP = -1, -2  # TxnScan.marker_action results (a horizon is a time, >= 0)


@dataclass(slots=True)
class TxnScan:
    first_unstable_offset: int | None = None
    aborted_batches: set[int] = field(default_factory=set)  # base offsets of data batches to discard
    marker_txn: dict[int, tuple[int, int]] = field(default_factory=dict)  # marker offset -> (pid, first offset)
    batch_marker: dict[int, int] = field(default_factory=dict)  # txn data batch offset -> its marker offset
    last_batch_of_producer: dict[int, int] = field(default_factory=dict)  # pid -> base offset of its last data batch
    epoch_markers: set[int] = field(default_factory=set)  # markers kept for their producer's epoch (rule 4)
    _referenced: set[int] | None = field(default=None, repr=False)  # markers that have a data batch

    def cleanable_end(self, end: int) -> int:
        """Clean below this offset only (rule 1)."""
        return end if self.first_unstable_offset is None else min(end, self.first_unstable_offset)

    def discard(self, base_offset: int) -> bool:
        """Rule 2: drop the whole data batch at ``base_offset`` (and keep its keys out of the map)."""
        return base_offset in self.aborted_batches

    def keep_empty(self, base_offset: int, producer_id: int) -> bool:
        """Rule 5: a data batch that lost all its records stays, empty, if it is its producer's last."""
        return producer_id >= 0 and self.last_batch_of_producer.get(producer_id) == base_offset

    def empty_marker(self, offset: int) -> bool:
        """Rule 3: the marker at ``offset`` has no data batch of its transaction left in the log
        (empty batches kept by rule 5 count as data) and is not kept for its producer's epoch.

        Only true for ABORT/COMMIT markers found by the scan; data batches discarded by the pass
        that asks still count (the scan saw them), so a marker goes at the earliest one pass after
        its data (Kafka's ``CleanedTransactionMetadata``)."""
        if offset not in self.marker_txn or offset in self.epoch_markers:
            return False
        if self._referenced is None:
            self._referenced = set(self.batch_marker.values())
        return offset not in self._referenced

    def marker_action(self, offset: int, delete_horizon_ms: int | None, now_ms: int,
                      delete_retention_ms: int) -> int:
        """Rule 4 for the marker batch at ``offset``, given its delete horizon (None if the batch
        has none): ``KEEP``, ``DROP``, or (a time, >= 0) the delete horizon to write into it."""
        if not self.empty_marker(offset):
            return KEEP
        if delete_horizon_ms is None:
            return now_ms + delete_retention_ms
        return DROP if delete_horizon_ms <= now_ms else KEEP


class BatchFacts(Protocol):
    """What `scan` reads of a batch header (protocol.record_batch.BatchHeader has it)."""

    @property
    def base_offset(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def is_transactional(self) -> bool: ...
    @property
    def is_control(self) -> bool: ...


def scan(batches: Iterable[tuple[BatchFacts, int | None]]) -> TxnScan:
    """One pass over ``(header, marker type or None)`` in offset order, from the log start.

    ``header`` needs base_offset, producer_id, producer_epoch, is_transactional and is_control (a
    protocol.record_batch.BatchHeader); the marker type is the control record's type (0 ABORT, 1
    COMMIT; anything else, e.g. a leader-change record, is ignored).
    """
    result = TxnScan()
    open_txns: dict[int, list[int]] = {}  # pid -> base offsets of its open transaction's batches
    last_data_epoch: dict[int, int] = {}
    last_marker: dict[int, tuple[int, int]] = {}  # pid -> (offset, epoch) of a marker after its last data
    for header, marker in batches:
        pid = header.producer_id
        base = header.base_offset
        if header.is_control:
            if marker not in (ABORT, COMMIT) or pid < 0:
                continue
            last_marker[pid] = (base, header.producer_epoch)
            members = open_txns.pop(pid, None)
            first = members[0] if members else base
            result.marker_txn[base] = (pid, first)
            for b in members or ():
                result.batch_marker[b] = base
                if marker == ABORT:
                    result.aborted_batches.add(b)
            continue
        if pid >= 0:
            result.last_batch_of_producer[pid] = base
            last_data_epoch[pid] = header.producer_epoch
            last_marker.pop(pid, None)
        if header.is_transactional and pid >= 0:
            open_txns.setdefault(pid, []).append(base)
    for pid, (offset, epoch) in last_marker.items():
        if pid not in last_data_epoch or epoch > last_data_epoch[pid]:
            result.epoch_markers.add(offset)
    if open_txns:
        result.first_unstable_offset = min(members[0] for members in open_txns.values())
    return result
