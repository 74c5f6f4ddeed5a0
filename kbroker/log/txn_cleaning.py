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
4. drops a marker whose transaction has no batch left once it is ``delete.retention.ms`` old, so
   a read_committed consumer that fetched the data just before the cleaning still sees it;
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

ABORT, COMMIT = 0, 1


@dataclass(slots=True)
class TxnScan:
    first_unstable_offset: int | None = None
    aborted_batches: set[int] = field(default_factory=set)  # base offsets of data batches to discard
    marker_txn: dict[int, tuple[int, int]] = field(default_factory=dict)  # marker offset -> (pid, first offset)
    batch_marker: dict[int, int] = field(default_factory=dict)  # txn data batch offset -> its marker offset
    last_batch_of_producer: dict[int, int] = field(default_factory=dict)  # pid -> base offset of its last data batch

    def cleanable_end(self, end: int) -> int:
        """Clean below this offset only (rule 1)."""
        return end if self.first_unstable_offset is None else min(end, self.first_unstable_offset)

    def discard(self, base_offset: int) -> bool:
        """Rule 2: drop the whole data batch at ``base_offset`` (and keep its keys out of the map)."""
        return base_offset in self.aborted_batches

    def keep_empty(self, base_offset: int, producer_id: int) -> bool:
        """Rule 5: a data batch that lost all its records stays, empty, if it is its producer's last."""
        return producer_id >= 0 and self.last_batch_of_producer.get(producer_id) == base_offset

    def removable_markers(self, retained_batches: Iterable[int], marker_timestamps: dict[int, int], now_ms: int,
                          delete_retention_ms: int) -> set[int]:
        """Rules 3 and 4: the markers that may go, given the base offsets of the data batches the
        cleaning keeps (empty ones included) and each marker's timestamp."""
        still_referenced = {self.batch_marker[b] for b in retained_batches if b in self.batch_marker}
        return {
            m for m in self.marker_txn
            if m not in still_referenced and marker_timestamps.get(m, now_ms) <= now_ms - delete_retention_ms
        }


def scan(batches: Iterable[tuple[object, int | None]]) -> TxnScan:
    """One pass over ``(header, marker type or None)`` in offset order, from the log start.

    ``header`` needs base_offset, producer_id, is_transactional and is_control (a
    protocol.record_batch.BatchHeader); the marker type is the control record's type (0 ABORT, 1
    COMMIT; anything else, e.g. a leader-change record, is ignored).
    """
    result = TxnScan()
    open_txns: dict[int, list[int]] = {}  # pid -> base offsets of its open transaction's batches
    for header, marker in batches:
        pid = header.producer_id
        base = header.base_offset
        if header.is_control:
            if marker not in (ABORT, COMMIT) or pid < 0:
                continue
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
        if header.is_transactional and pid >= 0:
            open_txns.setdefault(pid, []).append(base)
    if open_txns:
        result.first_unstable_offset = min(members[0] for members in open_txns.values())
    return result
