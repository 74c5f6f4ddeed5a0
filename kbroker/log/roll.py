"""Rolling a partition log to a new segment, with the roll's disk waits off the caller's thread.

A roll runs where the append that needs it runs (the event loop, for a leader). What must be
decided there stays there: the sealed segment's last time index entry, its index entries written
out (``pwrite``, no fsync), the transactions open at the new base, the new segment. What only
makes the roll durable goes to the log manager's roll worker (``roll_scheduler``), as Kafka's
``UnifiedLog.roll`` schedules ``flushUptoOffsetExclusive`` of the old segment on its scheduler:
the sealed segment's ``fdatasync`` and index fsyncs, the release of its reserved blocks, the new
segment's ``.txnstate`` file and the directory fsync. Those took 3-16 ms of the loop per roll,
and the 16 partitions of a topic under an even load roll together (issue 23).

Guarantees kept:

- The recovery point moves past the sealed segment only once its data and indexes are fsynced
  (the worker's `complete_rolls`, or any flush before it: a flush fsyncs every segment a pending
  roll left unsynced, and the directory, before it moves the recovery point). A crash before that
  recovers the sealed segment like the active one (recovery scans from the recovery point).
- Appends are never reordered: they go to the new segment, under the partition lock, while the
  worker only fsyncs files whose content no longer changes (the sealed segment is written again
  only by a truncation, which the worker detects with the log's truncation count).
- The ``.txnstate`` file of the new segment is written (tmp file, fsync, rename) after the sealed
  segment's fsync and only while that segment is still the log's: a crash leaves no file (a
  rebuild replays from further back) or a complete one for data on disk, as before.
- A clean close completes every pending roll first (``close`` in partition_log.py).
- The roll listener (``roll_listener``, installed by the replication layer: the producer snapshot
  Kafka's ``UnifiedLog.roll`` takes, kbroker/replication/producer_housekeeping.py) is told of
  each roll on the rolling thread, lock held; what it returns runs on the worker once the sealed
  segment is durable, unless the log was truncated or closed meanwhile (a close has its own
  snapshot; it waits for one under way: a move copies the closed log's directory), and writes its
  file aside; what that returns renames the file into place under the lock only if no truncation
  or close happened since (``RollWork`` in log_state.py).
- A power loss before the worker ran can leave the sealed segment's tail torn: recovery cuts it
  and the later segments, as Kafka's LogLoader (recovery.py, docs/log.md "Damage behaviour").
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from kbroker_protocol.record_batch import InvalidRecordBatch

from .fd_budget import BUDGET
from .log_state import PendingRoll, RollWork, fsync_dir
from .segment import LogSegment
from .txn_index import encode_open_txns
from .txn_state import LogTxnState

logger = logging.getLogger(__name__)

def run_logged(task: Callable[[], object]) -> None:
    """Run a roll's completion on a worker, logging what it raises (a storage error was also
    reported to dir_failure by the log)."""
    try:
        task()
    except Exception:
        logger.exception("completing a segment roll failed")


def _fsync_existing(path: Path) -> None:
    """fsync ``path`` if it exists (a segment deleted meanwhile has nothing left to sync)."""
    try:
        fd = BUDGET.open_fd(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogRoll(LogTxnState):
    """Segment rolls (see the module docstring)."""

    # How a roll's disk waits are run: None, at once, on the rolling thread (a log opened on its
    # own); the LogManager gives its logs its roll worker (log_manager.py); tests capture them.
    roll_scheduler: Callable[[Callable[[], object]], object] | None = None
    # Told of each roll with the new segment's base offset (the log end), on the rolling thread
    # with ``self.lock`` held; returns what to run once the sealed segment is durable, or None.
    roll_listener: Callable[[int], RollWork | None] | None = None

    def _roll(self, base_offset: int) -> LogSegment:
        """Seal the active segment and start a new one at ``base_offset``; the fsyncs are scheduled
        (`complete_rolls`). Called with ``self.lock`` held."""
        old = self._segments[-1]
        if old.max_timestamp >= 0:
            old.time_index.maybe_append(old.max_timestamp, old.offset_of_max_timestamp)
        old.offset_index.persist()  # written now (no fsync): the worker only syncs them
        old.time_index.persist()
        old.append_limits = None
        open_txns = None if self._open_txns is None else dict(self._open_txns)
        # A segment without transactional or control batches changes nothing: no replay.
        if open_txns is not None and old.has_txn_batches:
            try:
                self._replay_txns(old, open_txns, old.base_offset, None)
            except (InvalidRecordBatch, OSError) as exc:
                logger.warning("no transaction state recorded at offset %d of %s: %s", base_offset,
                               self.directory.name, exc)
                open_txns = None
        if open_txns is None:
            self._drop_txn_state(base_offset)
        self._open_txns = open_txns
        segment = self._new_segment(base_offset, fresh=True)
        self._segments.append(segment)
        pending = PendingRoll(
            sealed=old,
            target=old.next_offset,
            truncations=self._truncations,
            active=segment,
            open_txns=None if open_txns is None else dict(open_txns),
        )
        listener = self.roll_listener
        if listener is not None:
            try:
                pending.after_sync = listener(base_offset)
            except Exception:  # noqa: BLE001 - the listener's work is an optimisation, the roll is not
                logger.exception("the roll listener of %s failed", self.directory.name)
        self._pending_rolls.append(pending)
        if self.roll_scheduler is None:
            self.complete_rolls()
        else:
            self.roll_scheduler(self.complete_rolls)
        return segment

    def complete_rolls(self) -> None:
        """Run the disk waits of every pending roll, outside the partition lock (the roll worker
        calls it; so may anyone wanting them done now)."""
        with self.lock:
            pending = list(self._pending_rolls)
        for p in pending:
            self._complete_roll(p)

    def _complete_roll(self, p: PendingRoll) -> None:
        sealed = p.sealed
        with self.lock:
            if p.done:
                return
            if self._closed:
                self._forget_roll(p)
                return
            synced = p.synced  # a flush already synced it (`_sync_rolls`)
            if p.truncations == self._truncations and not sealed.closed:
                sealed.release_reserved()  # (same size: a truncation would have changed the count)
        if not synced:
            self._sync_sealed(p)
        after_sync = p.after_sync
        if after_sync is not None:
            with self.lock:
                current = not p.done and not self._closed and p.truncations == self._truncations
            finish = None
            if current:
                with self._after_sync_lock:  # (no write into a closed log's directory: see close)
                    try:
                        if not self._closed:
                            finish = after_sync()
                    except Exception as exc:  # noqa: BLE001 - (a producer snapshot: the next one will do)
                        logger.warning("after the roll of %s to %d: %s", self.directory.name, p.active.base_offset, exc)
            if finish is not None:
                # (its file goes into place only if still current: a truncation meanwhile may
                # have cut the log below it, and its snapshot would describe batches gone)
                with self.lock:
                    current = not p.done and not self._closed and p.truncations == self._truncations
                    try:
                        finish(current)
                    except Exception as exc:  # noqa: BLE001 - (as above)
                        logger.warning("after the roll of %s to %d: %s", self.directory.name, p.active.base_offset, exc)
        tmp = None
        if p.open_txns is not None:
            path = self._txn_state_path(p.active.base_offset)
            tmp = path.with_name(path.name + ".roll.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(encode_open_txns(p.active.base_offset, p.open_txns))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                logger.warning("cannot write %s: %s", path, exc)
                with contextlib.suppress(OSError):
                    tmp.unlink()
                tmp = None
        with self.lock:
            if tmp is not None:
                if not p.done and not self._closed and p.active in self._segments:
                    os.replace(tmp, self._txn_state_path(p.active.base_offset))
                else:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
            if p.done or self._closed:
                self._forget_roll(p)
                return
        try:
            fsync_dir(self.directory)
        except FileNotFoundError:
            if not self._closed:
                raise
        with self.lock:
            # (past this segment only when every earlier roll is complete: the list is in order)
            first = self._pending_rolls[0] if self._pending_rolls else None
            if first is p and not p.done and p.truncations == self._truncations and not self._closed:
                self._recovery_point = max(self._recovery_point, min(p.target, self.log_end_offset))
            self._forget_roll(p)

    def _forget_roll(self, p: PendingRoll) -> None:
        p.done = True
        with contextlib.suppress(ValueError):
            self._pending_rolls.remove(p)

    def _sync_sealed(self, p: PendingRoll) -> None:
        """fsync a sealed segment's data and index files (each still there). The descriptor is
        taken from the descriptor budget now, not held from the roll on: a backlog of rolls (a
        small segment.ms) must not hold a descriptor each."""
        sealed = p.sealed
        with self.lock:
            file = None if sealed.unborn else sealed.open_file()  # (None: deleted meanwhile)
        if file is not None:
            os.fdatasync(file.fileno())
            del file
        for path in (sealed.offset_index.path, sealed.time_index.path, sealed.txn_index.path):
            _fsync_existing(path)

    def _unsynced_rolls(self) -> list[PendingRoll]:
        """The pending rolls a flush must make durable first (``self.lock`` held): every one not
        synced yet, also when the flushes kept the recovery point at the log end (with
        ``flush.messages=1`` the sealed data is on disk, but its indexes and the new segment's
        directory entry are not until synced here)."""
        return [p for p in self._pending_rolls if not p.done and not p.synced]

    def _sync_rolls(self, pending: list[PendingRoll]) -> None:
        """Make ``pending`` rolls' sealed segments and new files durable (before a flush moves the
        recovery point past them, or acknowledges data in the new segment); their `.txnstate` files
        are left to `complete_rolls`."""
        for p in pending:
            self._sync_sealed(p)
        if pending:
            fsync_dir(self.directory)
            for p in pending:
                p.synced = True

    def _finish_rolls_on_close(self) -> None:
        """A clean close: every pending roll completed here, ``.txnstate`` files included."""
        for p in list(self._pending_rolls):
            if p.done:
                continue
            self._sync_sealed(p)
            if p.open_txns is not None and p.active in self._segments:
                self._write_open_txns(p.active.base_offset, p.open_txns)
            self._forget_roll(p)
