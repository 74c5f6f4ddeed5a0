"""Producer-state snapshots: bound the log scan that rebuilds a partition's producer state.

``<partition dir>/<20-digit offset>.producer-snapshot`` holds the state (producers with their
last five batches, open transactions) as it was when the log ended at ``offset``. Aborted
transactions are not in it: they are in the segments' ``.txnindex`` files (an ``"aborted"`` list
in a snapshot written by an older version is ignored). Rebuilding loads the newest usable snapshot and replays only the batches after it,
from their headers (a marker's body for its type). A partition whose log is empty when it opens
starts with its state loaded (:func:`empty_log_producer_state`), so one written only by plain
producers never needs the rebuild, and has a snapshot after a clean shutdown.

A snapshot is usable when its offset is within the log and the batch ending just before it is the
very batch the snapshot saw (same base offset and CRC): a segment rewritten there by the cleaner
makes the snapshot fall back to a full scan rather than be trusted. That check cannot tell a log
truncated and re-appended (the CRC does not cover the base offset or leader epoch: an idempotent
retry lands with the same bytes at the same offset after different batches), so, as Kafka's
``truncateAndReload``, the log deletes every snapshot above its new end when it is cut
(kbroker/log/retention.py, and recovery.py for a torn tail), a roll's snapshot goes into place
only if no truncation happened since it was taken (roll.py), and one found above the log end is
deleted. The file is JSON with a CRC-32 of its body, written to a ``.tmp`` name and renamed;
anything unreadable is ignored. Written where Kafka takes them (kbroker/replication/producer_housekeeping.py):
at each roll of the log (at the new segment's base offset, once the sealed segment is durable) and
when the logs close (a clean shutdown), and by the control plane's data-directory snapshot; older
snapshots are removed when a new one is written.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections import deque
from pathlib import Path

from kbroker.log.log_state import (
    PRODUCER_SNAPSHOT_SUFFIX,
    RollFinish,
    RollWork,
    producer_snapshot_files,
)
from kbroker.log.partition_log import PartitionLog, write_file_atomically
from kbroker.replication.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    PartitionProducerState,
    ProducerEntry,
)

log = logging.getLogger(__name__)

SUFFIX = PRODUCER_SNAPSHOT_SUFFIX
VERSION = 1


def _snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    return producer_snapshot_files(directory)


def _last_batch(plog: PartitionLog, end_offset: int) -> tuple[int, int] | None:
    """(base offset, crc) of the batch that ends at ``end_offset - 1``, if the log has it."""
    if end_offset <= plog.log_start_offset:
        return None
    for header, _body in plog.iter_batch_headers(end_offset - 1):  # (iter_batches would check the CRCs
        # of the whole segment up to there after a restart: the entire log, for a single segment)
        if header.next_offset == end_offset:
            return header.base_offset, header.crc
        return None
    return None


# A producer as a snapshot holds it: id, epoch, last timestamp, coordinator epoch, first offset of
# its open transaction, its last batches (BatchMetadata is never changed once made: a copy of the
# tuple is a copy of the producer).
_Row = tuple[int, int, int, int, int, tuple[BatchMetadata, ...]]


def _rows(state: PartitionProducerState) -> list[_Row]:
    return [(e.producer_id, e.epoch, e.last_timestamp, e.coordinator_epoch, e.txn_first_offset, tuple(e.batches))
            for e in state.producers.values()]


def _encode_rows(rows: list[_Row], offset: int, last_batch: tuple[int, int] | None) -> bytes:
    body = json.dumps({
        "version": VERSION,
        "offset": offset,
        "last_batch": list(last_batch) if last_batch else None,
        "producers": [
            [pid, epoch, ts, coord_epoch, txn_first, [[b.first_seq, b.last_seq, b.first_offset, b.last_offset]
                                                      for b in batches]]
            for pid, epoch, ts, coord_epoch, txn_first, batches in rows
        ],
    }, separators=(",", ":")).encode()
    return b"%08x\n" % zlib.crc32(body) + body


def encode(state: PartitionProducerState, offset: int, last_batch: tuple[int, int] | None) -> bytes:
    return _encode_rows(_rows(state), offset, last_batch)


def decode(data: bytes) -> tuple[int, tuple[int, int] | None, PartitionProducerState]:
    crc, body = data[:8], data[9:]
    if int(crc, 16) != zlib.crc32(body):
        raise ValueError("checksum mismatch")
    doc = json.loads(body)
    if doc["version"] != VERSION:
        raise ValueError(f"unknown version {doc['version']}")
    state = PartitionProducerState()
    for pid, epoch, ts, coord_epoch, txn_first, batches in doc["producers"]:
        entry = ProducerEntry(pid, epoch, deque((BatchMetadata(*b) for b in batches), maxlen=NUM_BATCHES_TO_RETAIN),
                              ts, coord_epoch, txn_first)
        state.producers[pid] = entry
        if txn_first >= 0:
            state.open_txns[pid] = txn_first
    last_batch = tuple(doc["last_batch"]) if doc["last_batch"] else None
    return doc["offset"], last_batch, state


def write_snapshot(state: PartitionProducerState, plog: PartitionLog) -> Path | None:
    """Snapshot ``state`` at the log's current end (call on the thread that appends). None for a
    log that never held a batch, with no producer: nothing to rebuild (every partition opened
    empty has its state loaded; a snapshot costs two fsyncs, many thousands at shutdown)."""
    offset = plog.log_end_offset
    if offset == 0 and not state.producers:
        return None
    directory = Path(plog.directory)
    path = directory / f"{offset:020d}{SUFFIX}"
    existing = _snapshot_files(directory)
    if existing and existing[-1][0] == offset:
        return existing[-1][1]
    write_file_atomically(path, encode(state, offset, _last_batch(plog, offset)))
    for _old_offset, old in existing:
        old.unlink(missing_ok=True)
    return path


def roll_snapshot(state: PartitionProducerState, plog: PartitionLog) -> RollWork | None:
    """The snapshot of ``state`` at the log's end, where it has just rolled to a new segment
    (Kafka's ``UnifiedLog.roll`` takes one there): copied now, on the thread that appends (a
    shallow copy: ~15 times cheaper than the encoding, which a thousand producers make tens of
    milliseconds). What this returns (the roll worker runs it once the sealed segment is durable)
    encodes and writes it aside, unless a snapshot at that offset or later is there by then; what
    that returns renames it into place under the log's lock if the log was not truncated or
    closed meanwhile (roll.py), and removes the older ones. None at a roll where no batch ends
    just before the log end (a follower's batch past it: a snapshot there could not be checked)."""
    offset = plog.log_end_offset
    last_batch = _last_batch(plog, offset)
    if last_batch is None:
        return None
    rows = _rows(state)
    directory = Path(plog.directory)
    path = directory / f"{offset:020d}{SUFFIX}"
    tmp = path.with_name(path.name + ".roll.tmp")

    def finish(current: bool) -> None:
        existing = _snapshot_files(directory)
        if not current or (existing and existing[-1][0] >= offset):
            tmp.unlink(missing_ok=True)
            return
        os.replace(tmp, path)  # (the roll worker fsyncs the directory next, roll.py)
        for _old_offset, old in existing:
            old.unlink(missing_ok=True)

    def write() -> RollFinish | None:
        existing = _snapshot_files(directory)
        if existing and existing[-1][0] >= offset:
            return None
        try:
            with open(tmp, "wb") as f:
                f.write(_encode_rows(rows, offset, last_batch))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return finish

    return write


def load_state(plog: PartitionLog) -> PartitionProducerState:
    """The producer state of ``plog``: newest usable snapshot, then the batches after it."""
    directory = Path(plog.directory)
    start = plog.log_start_offset
    state: PartitionProducerState | None = None
    from_offset = start
    for offset, path in reversed(_snapshot_files(directory)):
        try:
            snap_offset, last_batch, snap_state = decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable producer snapshot %s: %s", path, exc)
            continue
        if snap_offset != offset:
            continue
        if snap_offset > plog.log_end_offset:
            # (the log cut below it deletes it; this one outlived a crash: as Kafka, delete it)
            log.info("deleting producer snapshot %s: past the log end %d", path.name, plog.log_end_offset)
            path.unlink(missing_ok=True)
            continue
        if snap_offset > start and (last_batch is None or _last_batch(plog, snap_offset) != last_batch):
            log.info("producer snapshot %s does not match the log; scanning it", path.name)
            continue
        state, from_offset = snap_state, max(snap_offset, start)
        break
    if state is None:
        state = PartitionProducerState()
    if from_offset < plog.log_end_offset:
        # Headers only: a plain producer's batch (producer id -1) changes nothing, a data batch's
        # header is all replay_batch reads of it, and a marker's body is read for its type.
        # (Aborted transactions: the log's .txnindex has them.)
        for header, body in plog.iter_batch_headers(from_offset):
            if header.producer_id >= 0:
                state.replay_batch(header, body() if header.is_control else b"")
    return state


def empty_log_producer_state(plog: PartitionLog, *, new: bool) -> PartitionProducerState:
    """The producer state of a partition whose log holds no batch, loaded when it opens: nothing
    to scan, so reads (the last stable offset of a first Fetch) and appends keep it current from
    then on instead of scanning a log grown meanwhile. A ``new`` log (just created) has no
    snapshot, nor has one that never held a batch (its end offset 0: no directory listing then,
    which costs ~0.1 ms for each of many partitions at start-up); an old one emptied by
    retention may have one (producers whose batches were all deleted)."""
    return PartitionProducerState() if new or plog.log_end_offset == 0 else load_state(plog)
