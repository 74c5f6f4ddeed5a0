"""The KRaft metadata log as Kafka stores it: ``__cluster_metadata-0`` in segments, ``.checkpoint`` snapshots.

``MetadataLog`` is a ``kbroker.raft.log.RaftLog`` (Kafka's ``KafkaMetadataLog``) over a
``kbroker.log.PartitionLog`` in the partition directory ``<metadata.log.dir>/__cluster_metadata-0``,
so that Kafka's tools (``kafka-dump-log --cluster-metadata-decoder``, ``kafka-metadata-shell``) read
it and a directory written by the single-node controller (``QuorumController.commit``) opens as a
Raft log with the same records.

Entries and batches:

- A data entry's value is one record's value: a framed metadata record (``mr.encode_frame``), bytes.
  The entries of one ``append`` are written (at ``flush``) as one record batch per run of one epoch
  and kind, with ``partitionLeaderEpoch`` = that epoch, as Kafka's leader writes a proposal.
- A control entry whose value is an ``int`` is the ``LeaderChangeMessage`` a leader writes first in
  its epoch (value: the leader id; a ``LeaderChange`` names the epoch's voters and granting voters,
  else the record lists ``voters``, as ``kbroker.raft.wire`` does).
  Other control records (``KRaftVersionRecord``, ``VotersRecord``, as the single-node controller's
  kraft.version upgrade writes them) are read as entries whose value is a ``ControlRecord`` (type
  and raw value bytes) and are written back unchanged.

Durability follows the ``RaftLog`` contract: appends stay in memory until ``flush``, which appends
the batches to the partition log and fsyncs it, so a process that dies loses exactly the
unflushed tail. ``truncate_to`` cuts the partition log durably (Kafka's ``truncateTo``); a cut
inside a batch (a follower's batches need not match the leader's; Kafka's followers keep the
leader's batch boundaries, so its cut is always between batches) first writes the batch's kept
records to ``kbroker-truncation.batch`` (atomically), then cuts the batch and appends them again as
one batch, fsynced; opening the log completes a cut a crash interrupted from that file.

Snapshots are Kafka's: ``<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`` in the partition
directory, a sequence of record batches whose ``partitionLeaderEpoch`` is the snapshot's epoch and
whose offsets start at 0: a control batch with the ``SnapshotHeaderRecord`` first, the records in
batches of at most ``SNAPSHOT_BATCH_BYTES``, a control batch with the ``SnapshotFooterRecord`` last
(``RecordsSnapshotWriter``). It is written to a ``.checkpoint.part`` file, fsynced, renamed and the
directory fsynced (``FileRawSnapshotWriter.freeze``). ``Snapshot.data`` is the file's content, the
bytes a leader sends in FetchSnapshot (Kafka's ``UnalignedRecords``); ``snapshot_records(data)``
gives the framed records back. ``take_snapshot`` takes either that content or a list of framed
records and ``ControlRecord``s (``kbroker.metadata.snapshot.image_to_snapshot(image)``); the
header's LastContainedLogTimestamp is then the append time of the last record it covers. Only the latest
snapshot is kept (older files are deleted) and the log start moves to its end offset: whole
segments below it are deleted (Kafka's ``deleteBeforeSnapshot``).

The entries are also held in memory (``MemoryLog``); reads never touch the disk.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kbroker.log import LogConfig, PartitionLog, dir_failure
from kbroker.metadata.image import METADATA_TOPIC
from kbroker.metadata.metadata_log_format import (
    CHECKPOINT_SUFFIX,
    DELETE_SUFFIX,
    PARTIAL_SUFFIX,
    SNAPSHOT_NAME,
    TRUNCATION_FILE,
    MetadataLogError,
    check_entry,
    decode_batch_entries,
    decode_snapshot,
    encode_batches,
    encode_snapshot,
    snapshot_file_name,
    snapshot_records,
)
from kbroker.raft.files import fsync_dir, scan_snapshot_files, write_atomically
from kbroker.raft.log import ControlRecord, Entry, MemoryLog, Snapshot
from kbroker_protocol.record_batch import InvalidRecordBatch, iter_batch_headers
from kbroker_protocol.records import Record, build_batch, decode_batch

logger = logging.getLogger(__name__)

# The format's names are imported from here too (kbroker.metadata.metadata_log_format).
__all__ = ["METADATA_LOG_CONFIG", "ControlRecord", "MetadataLog", "MetadataLogError", "decode_snapshot",
           "encode_batches", "encode_snapshot", "snapshot_file_name", "snapshot_records"]

METADATA_PARTITION_DIR = METADATA_TOPIC + "-0"
# The segment log, as Kafka 4.4's KafkaRaftLog opens it (MetadataLogConfig's defaults): segments of
# metadata.log.segment.bytes (1 GiB) rolled after metadata.log.segment.ms (7 days, the topic
# default); never expires (retention -1: snapshots move its start), never fsynced by itself (the
# Raft layer's flush does); it accepts batches up to the largest an old single-node controller may
# have written (Kafka: 8 MiB, KafkaRaftClient.MAX_BATCH_SIZE_BYTES). The only definition: every
# metadata log, and the tests' single-node ones, open with it.
METADATA_LOG_CONFIG = LogConfig(
    segment_bytes=1024 * 1024 * 1024,
    segment_ms=7 * 24 * 60 * 60 * 1000,
    retention_ms=-1,
    retention_bytes=-1,
    flush_messages=2**63 - 1,
    flush_ms=2**63 - 1,
    max_message_bytes=64 * 1024 * 1024,
)



# ------------------------------------------------------------------ the log


class MetadataLog(MemoryLog):
    """``RaftLog`` persisted as Kafka's ``__cluster_metadata-0`` partition directory ``directory``
    (created if missing). ``voters`` are listed in the LeaderChangeMessage records it writes. Not
    thread-safe; ``close`` releases the files (the unflushed tail is lost)."""

    __slots__ = ("directory", "voters", "_plog", "_pending", "_clock")

    def __init__(self, directory: str | os.PathLike[str], *, voters: Iterable[int] = (),
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.voters = tuple(sorted(voters))
        self._clock = clock
        # the unflushed appends: (first offset, count), one batch group each
        self._pending: list[tuple[int, int]] = []
        self.directory.mkdir(parents=True, exist_ok=True)
        snap = self._load_snapshot()
        self._plog = PartitionLog.open(self.directory, METADATA_LOG_CONFIG, clock=clock)
        if self._plog.offline is not None:
            raise MetadataLogError(f"metadata log {self.directory}: {self._plog.offline}")
        try:
            self._finish_truncation()
            self._load(snap)
        except BaseException:
            self._plog.close(clean=False)
            raise

    # ------------------------------------------------------------------ opening

    def _load_snapshot(self) -> Snapshot | None:
        # an unfinished write, or a snapshot marked for deletion, is deleted (Kafka's recoverSnapshots)
        found = scan_snapshot_files(self.directory, SNAPSHOT_NAME, lambda name: name.endswith(
            (PARTIAL_SUFFIX, DELETE_SUFFIX)) or name == TRUNCATION_FILE + ".tmp")
        if not found:
            return None
        end, epoch, name = found[-1]
        path = self.directory / name
        data = path.read_bytes()
        try:
            decode_snapshot(data)
        except MetadataLogError as e:
            raise MetadataLogError(f"{path}: {e}") from None
        for _e, _ep, older in found[:-1]:
            os.unlink(self.directory / older)
        return Snapshot(end, epoch, data)

    def _load(self, snap: Snapshot | None) -> None:
        from kbroker.log import LogError  # (imported here: the module's imports match other branches')

        plog = self._plog
        start, end = plog.log_start_offset, plog.log_end_offset
        if snap is None and start > 0:
            raise MetadataLogError(
                f"metadata log {self.directory} starts at offset {start} but there is no snapshot of what comes before"
            )
        entries: list[tuple[int, Entry]] = []
        try:
            for header, raw in plog.iter_batches():
                try:
                    decoded = decode_batch_entries(raw, 0)
                except (InvalidRecordBatch, ValueError) as e:
                    raise MetadataLogError(
                        f"metadata log {self.directory}: unreadable batch at offset {header.base_offset}: {e}"
                    ) from None
                entries.extend((o, e) for o, e in decoded if o >= start)
        except LogError as e:  # a damaged batch found on reading (after a clean shutdown)
            raise MetadataLogError(f"metadata log {self.directory}: {e}") from None
        if entries and entries[0][0] != start:
            raise MetadataLogError(f"metadata log {self.directory}: records start at {entries[0][0]}, not at {start}")
        for (prev, _e1), (o, _e2) in zip(entries, entries[1:], strict=False):
            if o != prev + 1:
                raise MetadataLogError(
                    f"metadata log {self.directory}: offset {o} follows {prev}: a Raft log has no gaps "
                    "(was it compacted?)"
                )
        if snap is not None:
            MemoryLog.install_snapshot(self, snap)
            s = snap.end_offset
            keep = [(o, e) for o, e in entries if o >= s]
            before = [e for o, e in entries if o == s - 1]
            if s < start:
                raise MetadataLogError(
                    f"metadata log {self.directory} starts at offset {start}, after the end of its latest snapshot "
                    f"{snap.snapshot_id}: the records in between are missing"
                )
            continues = s <= end and (not before or before[0].epoch == snap.epoch)
            if not continues:
                # the log does not continue the snapshot (a crash between installing a snapshot
                # and emptying the log): it starts over, empty, at the snapshot's end
                if end > start:
                    logger.warning(
                        "metadata log %s: the records [%d, %d) do not continue snapshot %s; dropping them",
                        self.directory, start, end, snap.snapshot_id,
                    )
                plog.truncate_fully(s)
                keep = []
            elif start < s:
                self._delete_below(s)
            entries = keep
        last = snap.epoch if snap is not None else -1
        for i, (o, entry) in enumerate(entries):
            if entry.epoch < last:
                # epochs go back (after each other or after the snapshot's): what follows cannot
                # be a Raft log; cut it off durably
                logger.warning("metadata log %s: epoch %d after %d at offset %d; truncating there",
                               self.directory, entry.epoch, last, o)
                self._truncate_stored(o)
                entries = entries[:i]
                break
            last = entry.epoch
        MemoryLog.append(self, [e for _, e in entries])
        MemoryLog.flush(self)

    def _delete_below(self, offset: int) -> None:
        """Move the partition log's start to ``offset``; whole segments below it are deleted."""
        plog = self._plog
        plog.high_watermark = plog.log_end_offset
        plog.advance_log_start(offset)

    # ------------------------------------------------------------------ RaftLog

    def append(self, entries: Sequence[Entry]) -> None:
        self._check_open()
        for e in entries:  # refuse what could not be written before accepting anything
            check_entry(e)
        first = self.end_offset
        super().append(entries)
        if entries:
            self._pending.append((first, len(entries)))

    def flush(self) -> None:
        self._check_open()
        if not self._pending:
            return
        now = int(self._clock() * 1000)
        data = bytearray()
        for first, count in self._pending:
            data += encode_batches(first, self.read(first, count), self.voters, now)
        try:
            self._plog.append(bytes(data), assign_offsets=False)
            self._plog.flush()
        except OSError as exc:
            dir_failure.metadata_log_failed(self.directory.parent, "appending to the metadata log", exc)
            raise
        self._pending.clear()
        super().flush()

    def truncate_to(self, offset: int) -> None:
        self._check_open()
        if offset < self.start_offset:
            raise ValueError(f"truncation to {offset}, below the log start {self.start_offset}")
        if offset >= self.end_offset:
            return
        # the unflushed appends after it go
        pending = []
        for first, count in self._pending:
            if first + count <= offset:
                pending.append((first, count))
            elif first < offset:
                pending.append((first, offset - first))
        self._pending = pending
        if offset < self.flushed_end:
            try:
                self._truncate_stored(offset)
            except OSError as exc:
                dir_failure.metadata_log_failed(self.directory.parent, f"truncating the metadata log to {offset}", exc)
                raise
        super().truncate_to(offset)

    def _truncate_stored(self, offset: int) -> None:
        plog = self._plog
        kept: bytes | None = None
        base = offset
        for header, raw in plog.iter_batches(max(plog.log_start_offset, 0)):
            if header.last_offset < offset:
                continue
            if header.base_offset < offset:
                # the cut falls inside this batch: its records below the cut are written again
                batch = decode_batch(raw, 0)
                records = [r for r in batch.records if r.offset is not None and r.offset < offset]
                kept = build_batch(
                    [Record(key=r.key, value=r.value, headers=r.headers, timestamp=r.timestamp) for r in records],
                    base_offset=header.base_offset,
                    control=header.is_control,
                    partition_leader_epoch=header.partition_leader_epoch,
                )
                base = header.base_offset
            break
        if kept is not None:
            # the kept records reach the disk before the batch holding them is cut: a crash
            # between the cut and their new batch finds them in this file on open
            self._write_file(TRUNCATION_FILE, kept)
        plog.truncate_to(base)
        if kept is not None:
            plog.append(kept, assign_offsets=False)
        plog.flush()
        plog.active_segment.flush()  # the cut itself is durable too, as Raft's truncation must be
        if plog.log_start_offset < self.start_offset:
            # the batch began below the snapshot's end: cutting it emptied the partition log,
            # which restarted at its base; the start goes back up to the snapshot
            self._delete_below(self.start_offset)
        if kept is not None:
            os.unlink(self.directory / TRUNCATION_FILE)
            fsync_dir(self.directory)

    def _finish_truncation(self) -> None:
        """Complete a cut inside a batch that a crash interrupted (see `_truncate_stored`)."""
        path = self.directory / TRUNCATION_FILE
        try:
            kept = path.read_bytes()
        except FileNotFoundError:
            return
        plog = self._plog
        try:
            [(_pos, header)] = list(iter_batch_headers(kept, validate=True))
        except (InvalidRecordBatch, ValueError) as e:
            raise MetadataLogError(f"{path}: not one valid record batch ({e})") from None
        if plog.log_end_offset == header.base_offset:
            logger.warning("metadata log %s: completing a truncation inside the batch at offset %d",
                           self.directory, header.base_offset)
            plog.append(kept, assign_offsets=False)
            plog.flush()
        # otherwise the cut never happened, or its new batch is written: nothing to do
        os.unlink(path)
        fsync_dir(self.directory)

    def take_snapshot(self, end_offset: int, data: Any) -> Snapshot:
        self._check_open()
        if not self.start_offset < end_offset <= self.flushed_end:
            raise ValueError(
                f"snapshot at {end_offset} outside the durable log ({self.start_offset}, {self.flushed_end}]"
            )
        old = self.snapshot
        epoch = self.entry(end_offset - 1).epoch
        content = self._content(data, epoch, self._timestamp_of(end_offset - 1))
        try:
            self._write_snapshot(end_offset, epoch, content)
            snap = super().take_snapshot(end_offset, content)
            self._delete_below(end_offset)
            if old is not None and old.snapshot_id != snap.snapshot_id:
                self._delete_snapshot(old)
        except OSError as exc:
            dir_failure.metadata_log_failed(self.directory.parent, f"writing the metadata snapshot at {end_offset}", exc)
            raise
        return snap

    def install_snapshot(self, snapshot: Snapshot) -> None:
        self._check_open()
        content = self._content(snapshot.data, snapshot.epoch)
        old = self.snapshot
        snapshot = Snapshot(snapshot.end_offset, snapshot.epoch, content)
        try:
            self._write_snapshot(snapshot.end_offset, snapshot.epoch, content)
            self._plog.truncate_fully(snapshot.end_offset)
        except OSError as exc:
            dir_failure.metadata_log_failed(self.directory.parent,
                                            f"installing the metadata snapshot at {snapshot.end_offset}", exc)
            raise
        self._pending.clear()
        super().install_snapshot(snapshot)
        if old is not None and old.snapshot_id != snapshot.snapshot_id:
            self._delete_snapshot(old)

    def crash(self) -> None:
        raise NotImplementedError("a MetadataLog crashes by being closed without a flush and reopened")

    # ------------------------------------------------------------------ snapshots

    def snapshot_records(self) -> list[bytes]:
        """The framed records of the latest snapshot (empty without one)."""
        snap = self.snapshot
        return snapshot_records(snap.data) if snap is not None else []

    def _content(self, data: Any, epoch: int, last_ts: int = 0) -> bytes:
        """Snapshot content from ``data``: the bytes of a ``.checkpoint`` (checked), or the framed
        records (and ``ControlRecord``s) to write into one, whose header says ``last_ts``."""
        if isinstance(data, bytes | bytearray | memoryview):
            decode_snapshot(data)  # raises MetadataLogError on an incomplete or damaged one
            epochs = {h.partition_leader_epoch for _pos, h in iter_batch_headers(data, validate=False)}
            if epochs != {epoch}:
                raise MetadataLogError(f"snapshot: batches of epochs {sorted(epochs)}, not of the snapshot's epoch {epoch}")
            return bytes(data)
        if isinstance(data, list | tuple):
            return encode_snapshot(data, epoch, last_ts, now=int(self._clock() * 1000))
        raise TypeError(
            f"snapshot data must be a .checkpoint's bytes or a list of framed records, not {type(data).__name__}"
        )

    def _timestamp_of(self, offset: int) -> int:
        """The append time of the record at ``offset`` (its batch's max timestamp), as the
        SnapshotHeaderRecord's LastContainedLogTimestamp; 0 when it cannot be read."""
        for header, _raw in self._plog.iter_batches(offset):
            if header.base_offset <= offset <= header.last_offset:
                return max(header.max_timestamp, 0)
            break
        return 0

    def _write_snapshot(self, end_offset: int, epoch: int, content: bytes) -> None:
        name = snapshot_file_name(end_offset, epoch)
        self._write_file(name, content, f"{name[: -len(CHECKPOINT_SUFFIX)]}-{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")

    def _write_file(self, name: str, content: bytes, tmp_name: str | None = None) -> None:
        """Write ``name`` atomically: a temporary file, fsynced, renamed, the directory fsynced."""
        write_atomically(self.directory, name, content, tmp_name)

    def _delete_snapshot(self, snap: Snapshot) -> None:
        try:
            os.unlink(self.directory / snapshot_file_name(snap.end_offset, snap.epoch))
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ files

    @property
    def partition_log(self) -> PartitionLog:
        """The segment log underneath (read it; the ``MetadataLog`` changes it)."""
        return self._plog

    def _check_open(self) -> None:
        if self._plog is None or self.closed:
            raise ValueError(f"metadata log {self.directory} is closed")

    @property
    def closed(self) -> bool:
        return self._plog._closed

    def close(self) -> None:
        """Release the files; the unflushed tail is lost (call ``flush`` first to keep it).
        Closed cleanly (checkpoint and shutdown marker) when nothing is pending."""
        if not self.closed:
            self._pending.clear()
            self._plog.close(clean=True)
