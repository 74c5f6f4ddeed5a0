"""Transaction state of a partition log: the ``.txnindex`` (aborted transactions) and ``.txnstate``
(transactions open at a segment's base) files, their rebuild after a crash, and queries.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from kbroker_protocol.record_batch import (
    CONTROL_MASK,
    LOG_OVERHEAD,
    TRANSACTIONAL_MASK,
    TXN_FIELDS,
    BatchHeader,
    InvalidRecordBatch,
)
from kbroker_protocol.records import ControlType, parse_control_record

from . import batch_records
from .log_state import (
    LogState,
    write_file_atomically,
)
from .segment import (
    MIN_BATCH_LENGTH,
    TXN_INDEX_SUFFIX,
    Damage,
    LogSegment,
    segment_name,
)
from .txn_index import TXN_STATE_SUFFIX, AbortedTxn, decode_open_txns, encode_open_txns

logger = logging.getLogger(__name__)

_REPLAY_CHUNK = 1024 * 1024


class LogTxnState(LogState):
    """The aborted-transaction index and the open-transaction state of the log."""

    def _check_txn_indexes(self, segments: list[LogSegment], stale: set[int], expected: dict[int, int] | None) -> None:
        """Load the ``.txnindex`` of each segment not in ``stale``; add to ``stale`` those to rebuild.

        Below the recovery point (after a clean shutdown: everywhere) an index is trusted once it
        passes the sanity check and has at least the entries the checkpoint counted (a deleted or
        cut file has fewer). Without counts in the checkpoint (a log from before .txnindex files)
        every index is rebuilt. Stray ``.txnindex`` files of no segment are removed.
        """
        bases = {seg.base_offset for seg in segments}
        for suffix in (TXN_INDEX_SUFFIX, TXN_STATE_SUFFIX):
            for path in self.directory.glob("*" + suffix):
                stem = path.name[: -len(suffix)]
                if len(stem) == 20 and stem.isdigit() and int(stem) not in bases:
                    path.unlink()
        if expected is None and any(seg.size for seg in segments):
            logger.info("building the transaction indexes of %s", self.directory.name)
            stale.update(range(len(segments)))
            return
        for i, seg in enumerate(segments):
            if i in stale:
                continue
            if not seg.txn_index.load(seg.next_offset):
                logger.warning("rebuilding damaged %s", seg.txn_index.path)
                stale.add(i)
            elif len(seg.txn_index) < (expected or {}).get(seg.base_offset, 0):
                logger.warning("rebuilding %s: %d entries, the checkpoint counted %d", seg.txn_index.path,
                               len(seg.txn_index), (expected or {})[seg.base_offset])
                stale.add(i)

    def _rebuild_txn_indexes(self, segments: list[LogSegment], stale: set[int]) -> dict[int, dict[int, int]]:
        """Rebuild the ``.txnindex`` of ``segments[i]`` for each ``i`` in ``stale`` from the batches.

        An entry needs the first offset of the aborted transaction, which may lie in an earlier
        segment, and the last stable offset when it was aborted. Both come from replaying the
        transactional batches and markers from a point where the open transactions are known:
        the base of the nearest segment at or before the first stale one with a valid
        ``.txnstate`` file (seeded with the transactions it lists), or the last stable offset of
        the last entry of the trusted indexes before the first stale segment if that is later
        (every transaction open at that entry's marker started at or after it, and so did every
        later one), or else the first segment. Segments without an ABORT marker need no replay:
        their index is just emptied.

        Returns the open transactions at the base of each segment the replay entered.
        """
        for i in stale:
            segments[i].txn_index.reset()
        order = sorted(stale)
        if not any(self._has_abort_marker(segments[i]) for i in order):
            return {}
        first, last = order[0], order[-1]
        start, anchor, open_txns = 0, segments[0].base_offset, {}
        for j in range(first, -1, -1):
            recorded = self._checked_open_txns(segments, j)
            if recorded is not None:
                start, anchor, open_txns = j, segments[j].base_offset, recorded
                break
        for j in range(first - 1, -1, -1):
            tail = None
            for tail in segments[j].txn_index.entries():  # noqa: B007 (the last entry)
                pass
            if tail is not None:
                if tail.last_stable_offset > anchor:
                    anchor, open_txns = tail.last_stable_offset, {}
                    start = self._position_in(segments, anchor)
                break
        logger.info("replaying the transactions of %s from offset %d (segment %d of %d, %d open)",
                    self.directory.name, anchor, start + 1, len(segments), len(open_txns))
        at_start: dict[int, dict[int, int]] = {}
        count = 0
        for k in range(start, last + 1):
            seg = segments[k]
            if anchor <= seg.base_offset:
                at_start[seg.base_offset] = dict(open_txns)
            found: list[AbortedTxn] = []
            self._replay_txns(seg, open_txns, anchor, found.append if k in stale else None)
            for txn in found:
                seg.txn_index.append(txn)
            count += len(found)
        for i in order:
            segments[i].txn_index.flush()
        logger.info("rebuilt the transaction index of %d segment(s) of %s: %d aborted transaction(s)",
                    len(order), self.directory.name, count)
        return at_start

    @classmethod
    def _replay_txns(
        cls, seg: LogSegment, open_txns: dict[int, int], anchor: int,
        on_abort: Callable[[AbortedTxn], object] | None,
    ) -> None:
        """Replay the batches of ``seg`` ending at or after ``anchor`` into ``open_txns`` (producer
        id -> first offset of its open transaction), calling ``on_abort`` for each transaction an
        ABORT marker closes.

        Reads the segment in large chunks and unpacks only the fields it needs (it runs on every
        roll): about 0.5 µs per batch. Raises `InvalidRecordBatch` on a batch that does not fit.
        """
        file = seg.handle()  # held while its descriptor is used
        fd, end = file.fileno(), seg.size
        unpack = TXN_FIELDS.unpack_from
        need = TXN_FIELDS.size
        pos = 0
        chunk, chunk_start = b"", 0
        while pos < end:
            rel = pos - chunk_start
            if rel + need > len(chunk):
                chunk, chunk_start, rel = os.pread(fd, min(_REPLAY_CHUNK, end - pos), pos), pos, 0
                if len(chunk) < need:
                    raise InvalidRecordBatch(f"truncated batch header at position {pos} of {seg.log_path}")
            base, length, attributes, delta, pid = unpack(chunk, rel)
            if length < MIN_BATCH_LENGTH or delta < 0:
                raise InvalidRecordBatch(f"bad batch at position {pos} of {seg.log_path}")
            size = length + LOG_OVERHEAD
            if pid >= 0 and base + delta >= anchor:
                if not attributes & CONTROL_MASK:
                    if attributes & TRANSACTIONAL_MASK:
                        open_txns.setdefault(pid, base)
                else:
                    marker = cls._marker_type(seg, pos, seg.header_at(pos))
                    if marker in (ControlType.ABORT, ControlType.COMMIT):
                        first_offset = open_txns.pop(pid, None)
                        if marker == ControlType.ABORT and first_offset is not None and on_abort is not None:
                            lso = min(open_txns.values()) if open_txns else base + 1
                            on_abort(AbortedTxn(pid, first_offset, base, lso))
            pos += size

    def _txn_state_path(self, base_offset: int) -> Path:
        return self.directory / segment_name(base_offset, TXN_STATE_SUFFIX)

    def _read_open_txns(self, base_offset: int) -> dict[int, int] | None:
        """The open transactions the ``.txnstate`` file of ``base_offset`` records; None if it is
        missing or fails a check."""
        path = self._txn_state_path(base_offset)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            return None
        recorded = decode_open_txns(data, base_offset)
        if recorded is None:
            logger.warning("ignoring damaged %s", path)
        return recorded

    def _write_open_txns(self, base_offset: int, open_txns: dict[int, int]) -> None:
        """Write (fsynced, atomically) the ``.txnstate`` file of ``base_offset``; on failure there
        is none, and a rebuild replays from further back."""
        path = self._txn_state_path(base_offset)
        try:
            write_file_atomically(path, encode_open_txns(base_offset, open_txns))
        except OSError as exc:
            logger.warning("cannot write %s: %s", path, exc)
            self._drop_txn_state(base_offset)

    def _drop_txn_state(self, base_offset: int) -> None:
        with contextlib.suppress(OSError):
            self._txn_state_path(base_offset).unlink(missing_ok=True)

    def _checked_open_txns(self, segments: list[LogSegment], j: int) -> dict[int, int] | None:
        """The ``.txnstate`` record at the base of ``segments[j]``, if a replay may start from it.

        Each transaction it lists must still have its first batch in the log (a transactional
        batch of that producer at that offset): compaction removes an aborted transaction's data
        and later its marker, and a replay that remembered the transaction but missed the
        marker would hold it open for ever. A batch still there keeps its marker (txn_cleaning.py
        rule 3). A transaction that began before the first segment (retention) cannot be checked,
        and leaving it out would lose its ABORT entry when it has batches in the first segment (a
        replay from the first segment finds them): such a record is not used either.
        """
        recorded = self._read_open_txns(segments[j].base_offset)
        if recorded is None:
            return None
        checked = {}
        for pid, first_offset in recorded.items():
            if first_offset < segments[0].base_offset:
                logger.info("not replaying from %s: the transaction of producer %d began before the log",
                            self._txn_state_path(segments[j].base_offset), pid)
                return None
            seg = segments[self._position_in(segments, first_offset)]
            try:
                found = seg.translate_offset(first_offset)
            except (InvalidRecordBatch, Damage, OSError):
                found = None
            header = None if found is None else found[1]
            if (
                header is None
                or header.base_offset != first_offset
                or header.producer_id != pid
                or header.is_control
                or not header.is_transactional
            ):
                logger.info("not replaying from %s: the transaction of producer %d at offset %d is gone",
                            self._txn_state_path(segments[j].base_offset), pid, first_offset)
                return None
            checked[pid] = first_offset
        return checked

    def _active_open_txns(
        self, segments: list[LogSegment], replayed: dict[int, dict[int, int]]
    ) -> dict[int, int] | None:
        """The open transactions at the base of the active segment, at open (None if unknown):
        from its ``.txnstate`` file, from a replay that went through its start (then written to
        that file), or empty for a log of one segment (what a full replay assumes too)."""
        base = segments[-1].base_offset
        recorded = self._read_open_txns(base)
        if recorded is not None:
            return recorded
        if base in replayed:
            if len(segments) > 1:
                self._write_open_txns(base, replayed[base])
            return replayed[base]
        return {} if len(segments) == 1 else None

    @staticmethod
    def _position_in(segments: list[LogSegment], offset: int) -> int:
        """Position of the last segment whose base offset is at or below ``offset`` (0 if none)."""
        pos = 0
        for i, seg in enumerate(segments):
            if seg.base_offset > offset:
                break
            pos = i
        return pos

    @classmethod
    def _has_abort_marker(cls, seg: LogSegment) -> bool:
        return any(
            header.is_control and header.producer_id >= 0 and cls._marker_type(seg, pos, header) == ControlType.ABORT
            for pos, header in seg.batches()
        )

    @staticmethod
    def _marker_type(seg: LogSegment, pos: int, header: BatchHeader) -> int | None:
        """The control record type (ABORT, COMMIT, ...) of the control batch at ``pos``."""
        try:
            record = next(batch_records.iter_records(seg.pread(header.size, pos)), None)
            return parse_control_record(record).type if record is not None else None
        except (InvalidRecordBatch, ValueError):
            logger.warning("unreadable control batch at offset %d in %s", header.base_offset, seg.log_path)
            return None

    def record_aborted_txn(self, producer_id: int, first_offset: int, last_offset: int,
                           last_stable_offset: int) -> None:
        """Add an aborted transaction to the ``.txnindex`` of the segment holding its ABORT
        marker (at ``last_offset``, already appended). ``last_stable_offset``: the partition's
        last stable offset once it is aborted (Kafka's ``lastStableOffset(completedTxn)``).

        The active segment's index is fsynced with the segment when it is sealed (a crash before
        that rebuilds it at recovery); an older segment's is fsynced now.
        """
        with self.lock:
            self._check_usable()
            seg = self._segments[self._segment_index(last_offset)]
            if not seg.base_offset <= last_offset < seg.next_offset:
                raise ValueError(f"offset {last_offset} of the abort marker is not in the log")
            seg.txn_index.append(AbortedTxn(producer_id, first_offset, last_offset, last_stable_offset))
            if seg is not self._segments[-1]:
                seg.txn_index.close()

    def collect_aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping ``[start, end)``: marker at or after ``start``,
        first offset before ``end`` (what a read_committed fetch of that range must list).

        As Kafka's ``UnifiedLog.collectAbortedTransactions``: the indexes of the segments from
        the one holding ``start`` on, until an entry's last stable offset reaches ``end`` (no
        later transaction can then have started before ``end``). The index files are read even
        when the log is offline or closed (a fetch that has just read the data lists them).
        """
        with self.lock:
            out: list[AbortedTxn] = []
            for seg in self._segments[self._segment_index(start):]:
                found, complete = seg.txn_index.collect(start, end)
                out += found
                if complete:
                    break
            return out

