"""Log compaction (``cleanup.policy=compact``): keep the latest record of each key.

One pass over a partition log, run by the maintenance thread:

1. Under the log lock, pick the cleanable segments: every non-active segment below the high
   watermark whose records are older than ``min.compaction.lag.ms``. The dirty part starts at the
   cleaner offset (the end of the previous pass). Skip the pass if the dirty share of those bytes
   is below ``min.cleanable.dirty.ratio`` (unless a dirty batch is older than
   ``max.compaction.lag.ms``).
2. Without the lock, map each key of the dirty part to its latest offset, then rewrite the
   cleanable segments, grouped into runs that fit in ``segment.bytes``, each group that loses a
   record (or has several members) into one ``<first base>.log.cleaned`` (and indexes; the
   ``.txnindex`` carries the aborted transactions of the segments it replaces). As in Kafka, the
   key map covers only the dirty part, from the first dirty offset (the cleaner offset, or the
   log start if that is later) to the end of the pass; a record is kept unless the map holds a
   later offset for its key (so records below the log start that no pass has mapped are not
   compared with each other). Tombstones (null values) follow Kafka's rule for v2 batches: a
   batch that keeps a tombstone and has no delete horizon gets one (attribute bit 6, baseTimestamp
   = now + ``delete.retention.ms``), and a pass at or after that horizon drops its tombstones.
   Records without a key are kept. Offsets never change (gaps are allowed); a rebuilt batch keeps
   its baseOffset and lastOffsetDelta.
3. Under the lock again, if the segments are unchanged, swap each group (see `_swap`): the
   rename of the new log to ``.swap`` is the commit point. A crash before it leaves the old
   segments (``.cleaned`` files are removed at open); after it, opening completes the swap using
   ``<base>.swap-range`` to know which old segments the new one replaces
   (see `PartitionLog._clean_leftovers`).

Transactions: see `_clean_group` and `txn_cleaning` (rules 1 to 5). A transaction marker with no
data batch of its transaction left is rewritten with a delete horizon (now + ``delete.retention.ms``)
and dropped by the first pass after that time. A log with such a horizon due is cleaned even when
it has no new dirty data (the due time is remembered in memory only: after a restart the marker
waits for the next pass that has dirty data).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from dataclasses import dataclass

from kbroker_protocol.record_batch import InvalidRecordBatch, parse_header
from kbroker_protocol.records import parse_control_record

from . import batch_records, txn_cleaning
from .config import INT_MAX
from .errors import LogCorruptedError
from .partition_log import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    SWAP_RANGE_SUFFIX,
    SWAP_SUFFIX,
    PartitionLog,
    fsync_dir,
    write_file_atomically,
)
from .segment import Damage, LogSegment, segment_name, segment_paths, walk_batches
from .txn_cleaning import TxnScan

logger = logging.getLogger(__name__)

# log -> the earliest delete horizon of a marker that a pass left in the log (in memory only).
_horizon_due: weakref.WeakKeyDictionary[PartitionLog, int] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class CleanResult:
    segments_rewritten: int
    bytes_before: int
    bytes_after: int
    records_removed: int
    end_offset: int


@dataclass(slots=True)
class _Plan:
    segments: list[tuple[LogSegment, int, int]]  # (segment, size, next offset) at planning time
    first_dirty: int
    end_offset: int
    whole_log: list[tuple[LogSegment, int]]  # every segment (active one included) and its size
    txn: TxnScan | None = None
    horizon_due: bool = False  # a marker's delete horizon has passed: clean even without dirty data


class _Aborted(Exception):
    pass


def _plan(log: PartitionLog, now_ms: int, force: bool) -> _Plan | None:
    config = log.config
    segments = log._segments
    if len(segments) < 2:
        return None
    limit = min(segments[-1].base_offset, log.high_watermark)
    cleanable: list[tuple[LogSegment, int, int]] = []
    for i, seg in enumerate(segments[:-1]):
        upper = segments[i + 1].base_offset
        if upper > limit:
            break
        if config.min_compaction_lag_ms > 0 and seg.max_timestamp > now_ms - config.min_compaction_lag_ms:
            break
        cleanable.append((seg, seg.size, seg.next_offset))
    if not cleanable:
        return None
    first_dirty = max(log.cleaner_offset, log.log_start_offset)
    end_offset = segments[len(cleanable)].base_offset
    due = _horizon_due.get(log)
    horizon_due = due is not None and due <= now_ms
    if first_dirty >= end_offset:
        if not horizon_due:
            return None
        first_dirty = end_offset  # nothing dirty: a pass only to drop markers past their horizon
    total = sum(size for _, size, _ in cleanable)
    dirty = sum(size for seg, size, nxt in cleanable if nxt > first_dirty)
    overdue = config.max_compaction_lag_ms < 2**63 - 1 and any(
        nxt > first_dirty
        and seg.first_batch_timestamp is not None
        and 0 <= seg.first_batch_timestamp < now_ms - config.max_compaction_lag_ms
        for seg, _, nxt in cleanable
    )
    if not force and not overdue and not horizon_due and total and dirty / total < config.min_cleanable_dirty_ratio:
        return None
    return _Plan(cleanable, first_dirty, end_offset, [(seg, seg.size) for seg in segments], horizon_due=horizon_due)


def _scan_transactions(plan: _Plan) -> TxnScan:
    """Transaction facts of the whole log (batch headers, plus the marker type of control batches)."""

    def headers():
        for seg, size in plan.whole_log:
            file = seg.open_file()  # held while its descriptor is used
            if file is None:
                raise _Aborted
            fd = file.fileno()
            for pos, header in walk_batches(fd, 0, size, validate=False):
                marker = None
                if header.is_control:
                    first = next(batch_records.iter_records(os.pread(fd, header.size, pos)), None)
                    marker = parse_control_record(first).type if first is not None else None
                yield header, marker

    return txn_cleaning.scan(headers())


def _limit_to_stable(plan: _Plan) -> _Plan | None:
    """Rule 1: clean only segments that end at or before the first unstable offset."""
    assert plan.txn is not None
    end = plan.txn.cleanable_end(plan.end_offset)
    if end >= plan.end_offset:
        return plan
    kept = []
    for i, item in enumerate(plan.segments):
        upper = plan.segments[i + 1][0].base_offset if i + 1 < len(plan.segments) else plan.end_offset
        if upper > end:
            break
        kept.append(item)
    if not kept:
        return None
    new_end = plan.segments[len(kept)][0].base_offset
    if plan.first_dirty >= new_end and not plan.horizon_due:
        return None
    return _Plan(kept, plan.first_dirty, new_end, plan.whole_log, plan.txn, plan.horizon_due)


def _batches(seg: LogSegment, size: int):
    # Hold the file object: if the segment is deleted meanwhile, the descriptor stays open (and
    # is not reused for another file) until this generator is done.
    file = seg.open_file()
    if file is None:
        raise _Aborted
    fd = file.fileno()
    for pos, header in walk_batches(fd, 0, size, validate=True):
        yield header, os.pread(fd, header.size, pos)


def _latest_offsets(plan: _Plan) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for seg, size, nxt in plan.segments:
        if nxt <= plan.first_dirty:
            continue
        for header, data in _batches(seg, size):
            if header.last_offset < plan.first_dirty or header.is_control:
                continue
            if plan.txn is not None and plan.txn.discard(header.base_offset):
                continue  # rule 2: an aborted write never shadows a committed one
            for record in batch_records.iter_records(data):
                offset = batch_records.offset_of(record)
                if record.key is not None and offset >= plan.first_dirty:
                    latest[record.key] = offset
    return latest


def _groups(log: PartitionLog, plan: _Plan) -> list[list[tuple[LogSegment, int, int]]]:
    """Consecutive cleanable segments that fit in one segment (size, relative offsets, index)."""
    config = log.config
    groups: list[list[tuple[LogSegment, int, int]]] = []
    for item in plan.segments:
        seg, size, _ = item
        if groups:
            group = groups[-1]
            first = group[0][0]
            if (
                sum(s for _, s, _ in group) + size <= config.segment_bytes
                and _upper(plan, item) - first.base_offset <= INT_MAX
                and sum(len(g[0].offset_index) for g in group) + len(seg.offset_index) < first.offset_index.max_entries
            ):
                group.append(item)
                continue
        groups.append([item])
    return groups


def _upper(plan: _Plan, item: tuple[LogSegment, int, int]) -> int:
    """The first offset after ``item``'s segment: the next segment's base."""
    i = plan.segments.index(item)
    return plan.segments[i + 1][0].base_offset if i + 1 < len(plan.segments) else plan.end_offset


def _clean_group(
    log: PartitionLog,
    group: list[tuple[LogSegment, int, int]],
    latest: dict[bytes, int],
    now_ms: int,
    txn: TxnScan | None = None,
    horizons: list[int] | None = None,
) -> tuple[LogSegment | None, int]:
    """Write the cleaned copy of ``group`` as one ``.cleaned`` segment; None if nothing changes.

    With ``txn``: the batches of aborted transactions go entirely (rule 2), and a data batch that
    loses all its records stays as an empty batch if it is its producer's last one (rule 5), so
    that producer state rebuilt from the log keeps the producer's epoch and sequence. A
    transaction marker with no data batch left in the log (rule 3) gets a delete horizon, now +
    ``delete.retention.ms``, and goes in the first pass after it (rule 4); other control batches
    are kept. The future delete horizons of the markers left in the output go into ``horizons``.
    """
    retention = log.config.delete_retention_ms
    output: list[bytes] = []
    kept_markers: set[int] = set()  # offsets of the control batches the output keeps
    removed = 0
    changed = False
    for seg, size, _ in group:
        for header, data in _batches(seg, size):
            if header.is_control:
                current = header.base_timestamp if header.has_delete_horizon else None
                action = txn_cleaning.KEEP if txn is None else txn.marker_action(
                    header.base_offset, current, now_ms, retention)
                if action == txn_cleaning.DROP:
                    removed += header.records_count
                    continue
                pending = current is not None and current > now_ms  # (a passed one kept for its epoch is not)
                if action != txn_cleaning.KEEP:
                    data = batch_records.rebuild_batch(data, list(batch_records.iter_records(data)), delete_horizon_ms=action)
                    pending, current = True, action
                    changed = True
                if pending and horizons is not None and current is not None:  # (pending: current is set)
                    horizons.append(current)
                output.append(data)
                kept_markers.add(header.base_offset)
                continue
            records = list(batch_records.iter_records(data))
            batch_horizon = header.base_timestamp if header.has_delete_horizon else None
            if txn is not None and txn.discard(header.base_offset):
                kept = []
            else:
                # Tombstones go once the batch's delete horizon has passed (Kafka's v2 rule).
                drop_tombstones = batch_horizon is not None and batch_horizon <= now_ms
                kept = [
                    r
                    for r in records
                    if r.key is None
                    or (latest.get(r.key, -1) <= batch_records.offset_of(r) and not (r.value is None and drop_tombstones))
                ]
            removed += len(records) - len(kept)
            if batch_horizon is None and any(r.value is None and r.key is not None for r in kept):
                # A kept tombstone: the batch gets its delete horizon, now + delete.retention.ms.
                batch_horizon = now_ms + retention
                output.append(batch_records.rebuild_batch(data, kept, delete_horizon_ms=batch_horizon))
                changed = True
            elif len(kept) == len(records):
                output.append(data)
            elif kept or (txn is not None and txn.keep_empty(header.base_offset, header.producer_id)):
                output.append(batch_records.rebuild_batch(data, kept, delete_horizon_ms=batch_horizon))
    if not removed and not changed and len(group) == 1:
        return None, 0
    first = group[0][0]
    for path in segment_paths(first.directory, first.base_offset, CLEANED_SUFFIX):
        path.unlink(missing_ok=True)
    cleaned = LogSegment(
        first.directory,
        first.base_offset,
        index_bytes=first.index_bytes,
        created_ms=first.created_ms,
        suffix=CLEANED_SUFFIX,
    )
    interval = log.config.index_interval_bytes
    if output:
        cleaned.write(list(output), sum(len(b) for b in output))
        pos = 0
        for data in output:
            header = parse_header(data)
            cleaned.track_batch(pos, header.base_offset, header.last_offset, header.max_timestamp, header.size, interval)
            pos += len(data)
        cleaned.size = pos
        cleaned.verified_size = pos
    # Indexes are written even when empty, so every file of the swap exists.
    cleaned.offset_index.rewrite()
    cleaned.time_index.rewrite()
    # The aborted transactions whose ABORT markers the output keeps, from the .txnindex of the
    # replaced segments (sealed: their indexes no longer change). An entry whose marker this
    # pass drops goes too: a read_committed consumer would otherwise skip its producer's later
    # data while waiting for that marker. Without entries, the swap removes the old .txnindex.
    for seg, _, nxt in group:
        for aborted in seg.txn_index.entries():
            if aborted.last_offset < nxt and aborted.last_offset in kept_markers:
                cleaned.txn_index.append(aborted)
    cleaned.seal()
    return cleaned, removed


def clean_log(log: PartitionLog, now_ms: int | None = None, *, force: bool = False) -> CleanResult | None:
    """One compaction pass over ``log``; None when there was nothing (worth) cleaning.

    ``force`` ignores ``min.cleanable.dirty.ratio``.
    """
    with log.lock:
        if log._closed or log.offline is not None or not log.config.compact:
            return None
        now_ms = log._now_ms() if now_ms is None else now_ms
        plan = _plan(log, now_ms, force)
    if plan is None:
        return None
    cleaned: list[tuple[list[tuple[LogSegment, int, int]], LogSegment, int]] = []
    removed = 0
    horizons: list[int] = []
    # Before the copies are made: an aborted transaction recorded meanwhile in a segment being
    # cleaned (its marker appended just before a roll) must not be lost by the swap.
    txn_entries = [len(seg.txn_index) for seg, _, _ in plan.segments]
    try:
        plan.txn = _scan_transactions(plan)
        limited = _limit_to_stable(plan)
        if limited is None:
            return None
        plan = limited
        latest = _latest_offsets(plan)
        for group in _groups(log, plan):
            new, count = _clean_group(log, group, latest, now_ms, plan.txn, horizons)
            if new is not None:
                cleaned.append((group, new, _upper(plan, group[-1])))
                removed += count
    except (_Aborted, Damage, InvalidRecordBatch, OSError) as exc:
        _discard(cleaned)
        if isinstance(exc, Damage | InvalidRecordBatch):
            _report_damage(log, plan, exc)
        return None
    doomed: list[LogSegment] = []
    # Written before taking the lock (fsyncs); a range file without a committed swap is ignored
    # and removed at open.
    for _, new, upper in cleaned:
        write_file_atomically(log.directory / segment_name(new.base_offset, SWAP_RANGE_SUFFIX), f"{upper}\n".encode())
    with log.lock:
        current = {id(s) for s in log._segments}
        unchanged = not log._closed and log.offline is None and all(
            id(seg) in current and seg.size == size and seg.next_offset == nxt for seg, size, nxt in plan.segments
        ) and txn_entries[: len(plan.segments)] == [len(seg.txn_index) for seg, _, _ in plan.segments]
        if not unchanged:
            _discard(cleaned)
            return None
        for group, new, _ in cleaned:
            doomed += _swap(log, [seg for seg, _, _ in group], new)
        log._cleaner_offset = max(log._cleaner_offset, plan.end_offset)
        if horizons:
            _horizon_due[log] = min(horizons)
        else:
            _horizon_due.pop(log, None)
        snapshot = log._checkpoint_snapshot()
    log._store_checkpoint(*snapshot)
    for seg in doomed:
        for path in segment_paths(seg.directory, seg.base_offset, DELETED_SUFFIX):
            path.unlink(missing_ok=True)
    before = sum(size for group, _, _ in cleaned for _, size, _ in group)
    after = sum(new.size for _, new, _ in cleaned)
    if cleaned:
        logger.info(
            "cleaned %s: %d segments into %d, %d -> %d bytes, %d records removed",
            log.directory.name, sum(len(g) for g, _, _ in cleaned), len(cleaned), before, after, removed,
        )
    return CleanResult(len(cleaned), before, after, removed, plan.end_offset)


def _swap(log: PartitionLog, old: list[LogSegment], new: LogSegment) -> list[LogSegment]:
    """Replace the ``old`` segments by ``new``, crash-safely (with the log lock held).

    Order: the range file (already written by the caller), then ``.cleaned`` → ``.swap``
    (indexes, log last: the commit point), then the other old segments → ``.deleted``, then
    ``.swap`` → final names, then the range file goes. Returns the segments renamed to
    ``.deleted`` (the caller unlinks them outside the lock).
    """
    directory = log.directory
    range_path = directory / (segment_name(new.base_offset, SWAP_RANGE_SUFFIX))
    new.rename_suffix(SWAP_SUFFIX)
    fsync_dir(directory)
    doomed = old[1:]
    for seg in doomed:
        seg.discard()
        for path in seg.paths():
            if path.exists():
                os.replace(path, path.with_name(path.name + DELETED_SUFFIX))
    new.rename_suffix("")
    fsync_dir(directory)
    range_path.unlink()
    i = log._segments.index(old[0])
    log._segments[i : i + len(old)] = [new]
    old[0].discard()
    return doomed


def _discard(cleaned: list) -> None:
    """Remove the output of an abandoned pass (cleaned files and range files)."""
    for _, new, _ in cleaned:
        with contextlib.suppress(OSError):
            new.delete_files()
            (new.directory / segment_name(new.base_offset, SWAP_RANGE_SUFFIX)).unlink(missing_ok=True)


def _report_damage(log: PartitionLog, plan: _Plan, exc: Exception) -> None:
    """The cleaner read a bad batch: take the partition offline rather than clean around it."""
    with log.lock:
        if log.offline is not None:
            return
        for seg, size, _ in plan.segments:
            file = seg.open_file()
            if file is None:
                continue
            try:
                for _ in walk_batches(file.fileno(), 0, size, validate=True):
                    pass
            except Damage as damage:
                try:
                    offset = seg.header_at(damage.position).base_offset
                except InvalidRecordBatch:
                    offset = -1
                log._go_offline(LogCorruptedError(seg.log_path, offset, damage.position, damage.reason))
                logger.error("%s; partition %s is offline", log._offline, log.directory.name)
                return
        logger.error("cleaning %s failed: %s", log.directory.name, exc)
