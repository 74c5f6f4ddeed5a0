"""Removing data from a partition log: truncation (followers, epochs), DeleteRecords (log start) and
time/size retention.
"""

from __future__ import annotations

import contextlib
import logging
import os

from .errors import (
    OffsetOutOfRangeError,
)
from .leader_epoch import UNDEFINED_EPOCH, UNDEFINED_OFFSET
from .log_state import (
    DELETED_SUFFIX,
    drop_producer_snapshots_above,
    fsync_dir,
)
from .segment import (
    LogSegment,
    segment_name,
)
from .txn_index import TXN_STATE_SUFFIX
from .txn_state import LogTxnState

logger = logging.getLogger(__name__)

class LogRetention(LogTxnState):
    """Truncation, log start moves and retention. Removing segments removes their
    ``.txnstate`` files, hence the transaction-state base."""

    def truncate_to_epoch_end(self, leader_epoch: int, leader_end_offset: int) -> tuple[int, bool] | None:
        """A follower's truncation from the leader's OffsetForLeaderEpoch answer (KIP-101/279).

        ``leader_epoch``/``leader_end_offset`` are what the leader answered for the follower's
        latest epoch. As Kafka's fetcher: with this log's own end for that epoch it truncates to
        the smaller of the two ends (and the log end); if this log has no such epoch it truncates
        to its own end of the largest epoch below and the answer's ``complete`` is False (ask the
        leader again with this log's new latest epoch). Segments, offset and time indexes,
        ``.txnindex`` entries and the epoch cache are cut together (`truncate_to`).

        Returns ``(offset, complete)``, or None when the leader's end offset is undefined (-1:
        nothing is truncated; Kafka keeps the fetch offset). The producer state (kept in
        ``kbroker/replication/``) is not touched here: the caller must rebuild it to ``offset``.
        """
        with self.lock:
            self._check_usable()
            if leader_end_offset == UNDEFINED_OFFSET:
                return None
            log_end = self.log_end_offset
            if leader_epoch == UNDEFINED_EPOCH:
                offset, complete = min(leader_end_offset, log_end), True
            else:
                own_epoch, own_end = self._epochs.end_offset_for(leader_epoch, log_end)
                if own_end == UNDEFINED_OFFSET:  # below every epoch here
                    offset, complete = min(leader_end_offset, log_end), True
                elif own_epoch != leader_epoch:
                    offset, complete = min(own_end, log_end), False
                else:
                    offset, complete = min(own_end, leader_end_offset, log_end), True
            self.truncate_to(offset)
            return offset, complete

    def truncate_to(self, offset: int) -> None:
        """Remove every batch from the one containing ``offset`` on; the log end becomes ``offset``.

        As in Kafka, a batch that straddles ``offset`` goes entirely and the log end is still
        ``offset`` (the next append starts there). Below the log start, the log is emptied and
        restarts at ``offset``.
        """
        with self.lock:
            self._check_usable()
            self._ensure_directory()
            if offset >= self.log_end_offset:
                # As Kafka: an entry a failed append left at the log end goes.
                self._epochs.truncate_from_end(self.log_end_offset)
                return
            if offset < self._log_start_offset or offset < self._segments[0].base_offset:
                self._truncate_fully_locked(offset)
                return
            # The producer snapshots past the cut go first, durably (a crash must not leave one
            # for a log that regrows differently past it).
            if drop_producer_snapshots_above(self.directory, offset):
                fsync_dir(self.directory)
            doomed = []
            while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
                doomed.append(self._segments.pop())
            seg = self._segments[-1]
            self._truncations += 1
            # The later segments (and their .txnstate records) go first, durably, as in Kafka: a
            # crash must not leave them beside a cut segment whose cut data their records count.
            for d in doomed:
                d.delete_files()
                self._drop_txn_state(d.base_offset)
            if doomed:
                fsync_dir(self.directory)
            found = seg.translate_offset(offset)
            if found is not None:
                seg.truncate_to_position(found[0], self.config.index_interval_bytes)
            seg.txn_index.truncate_to(offset)
            seg.next_offset = offset
            seg.append_limits = None
            self._epochs.truncate_from_end(offset)
            if doomed:
                self._open_txns = self._read_open_txns(seg.base_offset)
                if self._open_txns is None and len(self._segments) == 1:
                    self._open_txns = {}
            self._recovery_point = min(self._recovery_point, offset)
            self._high_watermark = min(self._high_watermark, offset)
            self._cleaner_offset = min(self._cleaner_offset, offset)
            self._write_checkpoint()

    def truncate_fully(self, offset: int) -> None:
        """Delete everything and continue at ``offset`` (a follower far behind the leader's start).

        As Kafka's ``UnifiedLog.truncateFullyAndStartAt``, every producer snapshot goes too
        (``ProducerStateManager.truncateFullyAndStartAt``: the producer state is reset), those
        at or below ``offset`` included: they describe batches that are gone, and the log start
        moving to ``offset`` would otherwise make the newest of them the state of the empty log
        (a restart would bring its producers back). The caller drops its in-memory producer state;
        rebuilt from this log, it is empty."""
        with self.lock:
            self._check_usable()
            self._truncate_fully_locked(offset)

    def _truncate_fully_locked(self, offset: int) -> None:
        self._ensure_directory()
        self._truncations += 1
        if drop_producer_snapshots_above(self.directory, -1):  # all of them (truncate_fully)
            fsync_dir(self.directory)  # (before the segments go: see truncate_to)
        doomed, self._segments = self._segments, []
        for seg in doomed:
            seg.delete_files()
            self._drop_txn_state(seg.base_offset)
        self._drop_txn_state(offset)
        self._segments.append(self._new_segment(offset, fresh=True))
        self._open_txns = {}
        self._epochs.clear(write=len(self._epochs) > 0)
        fsync_dir(self.directory)
        self._log_start_offset = offset
        self._recovery_point = offset
        self._high_watermark = offset
        self._cleaner_offset = offset
        self._write_checkpoint()

    def advance_log_start(self, offset: int) -> int:
        """DeleteRecords: move the log start to ``offset`` (at most the high watermark).

        Segments entirely below the new start are deleted (never the active one). Returns the
        new log start offset.
        """
        with self.lock:
            self._check_usable()
            if offset > self._high_watermark or offset < 0:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, self._high_watermark)
            if offset <= self._log_start_offset:
                return self._log_start_offset
            self._log_start_offset = offset
            self._cleaner_offset = max(self._cleaner_offset, offset)
            self._write_checkpoint()
            self._epochs.truncate_from_start(offset)
            doomed = self._remove_segments_below(offset)
        self._delete_segments(doomed)
        return offset

    def _remove_segments_below(self, offset: int) -> list[LogSegment]:
        doomed = []
        while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
            doomed.append(self._segments.pop(0))
        for seg in doomed:
            # Renamed under the lock so a crash before the unlink cannot bring it back.
            with contextlib.suppress(FileNotFoundError):
                os.replace(seg.log_path, seg.log_path.with_name(seg.log_path.name + DELETED_SUFFIX))
        return doomed

    @staticmethod
    def _delete_segments(doomed: list[LogSegment]) -> None:
        for seg in doomed:
            seg.delete_files()
            with contextlib.suppress(FileNotFoundError):
                seg.log_path.with_name(seg.log_path.name + DELETED_SUFFIX).unlink()
            with contextlib.suppress(OSError):
                (seg.directory / segment_name(seg.base_offset, TXN_STATE_SUFFIX)).unlink(missing_ok=True)

    def delete_old_segments(self, now_ms: int | None = None) -> int:
        """Apply retention (time, size, log start); returns how many segments were deleted.

        Only whole segments below the high watermark go, oldest first, never the active one.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                return 0
            now_ms = self._now_ms() if now_ms is None else now_ms
            config = self.config
            excess = self.size - config.retention_bytes if config.retention_bytes >= 0 else -1
            count = 0
            for i, seg in enumerate(self._segments[:-1]):
                upper = self._segments[i + 1].base_offset
                if upper > self._high_watermark:
                    break
                if upper <= self._log_start_offset:
                    pass
                elif not config.delete:
                    break
                elif config.retention_ms >= 0 and now_ms - self._largest_timestamp(seg) > config.retention_ms:
                    pass
                elif excess >= 0 and excess - seg.size >= 0:
                    pass
                else:
                    break
                excess -= seg.size
                count += 1
            if not count:
                return 0
            doomed = self._segments[:count]
            new_start = self._segments[count].base_offset
            self._remove_segments_below(new_start)
            snapshot = None
            if new_start > self._log_start_offset:
                self._log_start_offset = new_start
                self._cleaner_offset = max(self._cleaner_offset, new_start)
                snapshot = self._checkpoint_snapshot()
                self._epochs.truncate_from_start(new_start, write=False)
        # Outside the lock: a crash before this write is harmless, the log start is then the base
        # of the first segment left, which is the same offset.
        if snapshot is not None:
            self._store_checkpoint(*snapshot)
            self._epochs.write_if_dirty()
        self._delete_segments(doomed)
        return count

    @staticmethod
    def _largest_timestamp(seg: LogSegment) -> int:
        if seg.max_timestamp >= 0:
            return seg.max_timestamp
        try:
            return int(seg.log_path.stat().st_mtime * 1000)
        except FileNotFoundError:
            return 0

