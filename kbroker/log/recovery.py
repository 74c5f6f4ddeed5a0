"""Opening a partition log: finish interrupted file operations, load or recover the segments."""

from __future__ import annotations

import logging
import os

from kbroker_protocol.record_batch import (
    InvalidRecordBatch,
)

from . import prealloc
from .errors import (
    LogCorruptedError,
)
from .leader_epoch import CHECKPOINT_FILE, LeaderEpochCache, open_cache
from .log_state import (
    CLEAN_SHUTDOWN_FILE,
    LEFTOVER_SUFFIXES,
    SWAP_RANGE_SUFFIX,
    SWAP_SUFFIX,
    Checkpoint,
    drop_producer_snapshots_above,
    fsync_dir,
    read_checkpoint,
)
from .retention import LogRetention
from .segment import (
    LOG_SUFFIX,
    MIN_BATCH_LENGTH,
    Damage,
    LogSegment,
    segment_name,
    segment_paths,
)

logger = logging.getLogger(__name__)

class LogRecovery(LogRetention):
    """Loading and crash recovery of the segments (`PartitionLog.open` calls `_load`).

    Recovery rebuilds transaction state and may truncate, hence the retention (and so the
    transaction-state) base."""

    def _clean_leftovers(self) -> None:
        """Finish or undo file operations interrupted by a crash.

        The cleaner renames a segment's files ``.cleaned`` → ``.swap`` indexes first and the log
        last, then ``.swap`` → final names in the same order. So a ``.log.swap`` file means the
        new segment is complete and committed: it replaces every old segment in the range its
        ``.swap-range`` file gives, and its indexes (old or new) are removed to be rebuilt. Index ``.swap`` files without a ``.log.swap`` are
        from an uncommitted swap and are removed, as are ``.cleaned`` files (incomplete output),
        ``.deleted`` files (segments already dropped from the log) and ``.tmp`` files.
        """
        changed = False
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(LEFTOVER_SUFFIXES):
                path.unlink()
                changed = True
        log_swap = LOG_SUFFIX + SWAP_SUFFIX
        for path in sorted(self.directory.glob("*" + log_swap)):
            base = int(path.name[: -len(log_swap)])
            range_path = self.directory / segment_name(base, SWAP_RANGE_SUFFIX)
            try:
                upper = int(range_path.read_text().strip())
            except (FileNotFoundError, ValueError):
                upper = base + 1
            # The new segment replaces every old segment that starts in [base, upper).
            for other in self.directory.glob("*" + LOG_SUFFIX):
                name = other.name[: -len(LOG_SUFFIX)]
                if len(name) == 20 and name.isdigit() and base <= int(name) < upper:
                    for doomed in segment_paths(self.directory, int(name)):
                        doomed.unlink(missing_ok=True)
            logger.info("completing interrupted segment swap: %s", path)
            os.replace(path, self.directory / segment_name(base, LOG_SUFFIX))
            changed = True
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith((SWAP_SUFFIX, SWAP_RANGE_SUFFIX)):
                path.unlink()
                changed = True
        if changed:
            fsync_dir(self.directory)

    def _load(self, verify: str, created: bool = False) -> None:
        """Load the log; ``created``: this process has just made its (empty) directory, so there
        is nothing to clean up, recover or read (creating 10,000 partitions skips those scans)."""
        marker = self.directory / CLEAN_SHUTDOWN_FILE
        if created:
            clean = False
            checkpoint = Checkpoint()
            bases: list[int] = []
        else:
            self._clean_leftovers()
            clean = marker.exists()
            checkpoint = read_checkpoint(self.directory) or Checkpoint()
            bases = sorted(
                int(p.name[: -len(LOG_SUFFIX)])
                for p in self.directory.glob("*" + LOG_SUFFIX)
                if len(p.name) == 20 + len(LOG_SUFFIX) and p.name[:20].isdigit()
            )
        recovery_point = checkpoint.recovery_point
        interval = self.config.index_interval_bytes
        segments = [self._new_segment(base) for base in bases]
        recovered = False
        cut = False  # a torn tail was cut: the producer snapshots past the new end go
        first_recovered: int | None = None  # the first segment recovery scanned (epoch cache)
        txn_stale: set[int] = set()  # positions of the segments whose .txnindex must be rebuilt
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            next_base = None if last else segments[i + 1].base_offset
            recover = not clean and (next_base is None or next_base > recovery_point)
            scan = verify == "full" or recover
            if recover:
                txn_stale.add(i)
                if first_recovered is None:
                    first_recovered = i
            if scan:
                recovered = True
                damage = seg.rebuild(validate=True, interval=interval)
            else:
                damage = seg.load(interval=interval)
            if damage is None and next_base is not None and seg.next_offset > next_base:
                damage = Damage(seg.size, f"offsets run into the next segment (base {next_base})")
            if damage is None:
                continue
            offset = seg.next_offset
            # Damage at or past the recovery point in data never flushed that looks like a torn
            # write (no plausible batch with more data after it) is cut off, in the last segment
            # as in a sealed one: a power loss before a roll's fsync ran (roll.py) can leave a
            # sealed segment's tail torn; the log is cut there and the later (unflushed)
            # segments go, as Kafka's LogLoader does. Anything else is corruption.
            unflushed = offset >= recovery_point
            if (not unflushed and (not last or self._damage_is_inside(seg, damage))) or (
                unflushed and not last and self._damage_is_inside(seg, damage)
            ):
                self._offline = LogCorruptedError(seg.log_path, offset, damage.position, damage.reason)
                logger.error("%s; partition %s is offline", self._offline, self.directory.name)
                self._segments = segments
                return
            logger.warning(
                "truncating %s at position %d (offset %d): %s", seg.log_path, damage.position, offset, damage.reason
            )
            if not scan:
                # Rebuild from the file to get consistent indexes for the kept part.
                seg.rebuild(validate=False, interval=interval, end=seg.size)
            file = seg.handle()  # held while its descriptor is used (LogSegment.handle)
            os.ftruncate(file.fileno(), seg.size)
            txn_stale.add(i)
            recovered = True
            cut = True
            if not last:
                for later in segments[i + 1 :]:
                    logger.warning("deleting %s: it follows the damage at offset %d", later.log_path, offset)
                    later.delete_files()
                    self._drop_txn_state(later.base_offset)
                del segments[i + 1 :]
                txn_stale = {k for k in txn_stale if k <= i}
                fsync_dir(self.directory)
                break
        if not created:
            self._check_txn_indexes(segments, txn_stale, checkpoint.txn_index_entries)
        replayed: dict[int, dict[int, int]] = {}
        if txn_stale:
            replayed = self._rebuild_txn_indexes(segments, txn_stale)
            rebuilt_txn = True
        else:
            rebuilt_txn = False
        if not segments:
            if not created:
                self._drop_txn_state(checkpoint.log_start_offset)
            # No segment file: the first one is created on first use (a new partition costs
            # its directory only until it is written).
            segments = [self._new_segment(checkpoint.log_start_offset, fresh=True, lazy=True)]
        self._open_txns = {} if created else self._active_open_txns(segments, replayed)
        for seg in segments[:-1]:
            seg.offset_index.close()
            seg.time_index.close()
            seg.txn_index.close()
        self._segments = segments
        self._log_start_offset = max(checkpoint.log_start_offset, segments[0].base_offset)
        self._cleaner_offset = checkpoint.cleaner_offset
        if created:
            self._epochs = LeaderEpochCache(self.directory / CHECKPOINT_FILE)  # no file, no batch
        else:
            self._epochs = open_cache(
                self.directory, segments, first_recovered, self._log_start_offset, self.log_end_offset
            )
        if self._log_start_offset > self.log_end_offset:
            # The start was moved past data lost in a crash: start empty at the log start.
            self._truncate_fully_locked(self._log_start_offset)
        elif cut and drop_producer_snapshots_above(self.directory, self.log_end_offset):
            fsync_dir(self.directory)
        if recovered:
            for seg in segments:
                seg.flush()
        self._recovery_point = self.log_end_offset
        self._high_watermark = self.log_end_offset
        self._last_flush_ms = self._now_ms()
        if recovered or rebuilt_txn:
            self._write_checkpoint()
        else:
            # The file (written fsynced) already says this state: the periodic checkpoint of a
            # partition that nothing changed since start-up writes nothing (10,000 fsyncs a minute).
            self._checkpoint_data = checkpoint.raw
        if clean:
            # As Kafka deletes its .kafka_cleanshutdown file: no directory fsync here (one per
            # partition made start-up with 10,000 partitions slow). The first flush fsyncs the
            # directory before any data is acknowledged as durable, so a marker that comes back
            # after a power loss never vouches for data appended since this start.
            marker.unlink()
            self._dirs_unsynced = True
        elif created:
            pass  # a new, empty segment: no blocks reserved by a crashed process
        elif self._offline is None:
            # Blocks a crashed process had reserved past the end of the active segment go back
            # (a clean close gave them back already).
            active = self._segments[-1]
            file = active.handle()
            prealloc.trim(file.fileno(), os.fstat(file.fileno()).st_size)

    @staticmethod
    def _damage_is_inside(seg: LogSegment, damage: Damage) -> bool:
        """Is the damage a bad batch with a plausible length that more data follows?"""
        try:
            header = seg.header_at(damage.position)
        except InvalidRecordBatch:
            return False
        if header.magic != 2 or header.batch_length < MIN_BATCH_LENGTH:
            return False
        return damage.position + header.size < seg.file_size()

