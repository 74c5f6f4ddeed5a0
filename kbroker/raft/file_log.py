"""A durable ``RaftLog``: the entries in one append-only file, the latest snapshot in its own file.

Layout of the log directory (one per replica):

- ``raft-entries.log``: the durable entries ``[start_offset, flushed_end)``, each framed as
  ``length u32 | crc32c u32 | offset i64 | epoch i32 | kind u8 | value``, ``length`` counting
  what follows the CRC and the CRC (Castagnoli, as Kafka's record batches) covering the same
  bytes. ``kind`` 0 is a data record (``value`` the record's bytes), 1 the control record a new
  leader appends (``value`` the leader id, i32); bit 0x80 of ``kind`` marks an entry that is not
  the last of its proposal (``Entry.batch_end`` False). A torn flush can keep part of a
  proposal: opening drops the entries after the last proposal end (a proposal is atomic).
- ``<end offset>-<epoch>.snapshot`` (both zero-padded): ``crc32c u32 | end i64 | epoch i32 |
  data``; written to a ``.tmp`` file, fsynced, renamed, and the directory fsynced, so a crash
  leaves the old snapshot or the new one. Only the latest is kept. The directory may be shared
  with the ``quorum-state`` file (other files are left alone).

Appends stay in memory until ``flush``, which writes them and fsyncs the file: a process that
dies loses exactly the unflushed tail, as ``MemoryLog.crash`` models. Truncation below the
flushed end cuts the file (``ftruncate`` + fsync) at once. Dropping a prefix (``take_snapshot``)
or the whole log (``install_snapshot``) rewrites the file atomically after the snapshot is durable.

On open the file is read frame by frame and the first frame that is incomplete, fails its CRC,
does not carry the next offset or goes back in epochs ends the log: it and everything after are
cut off (a torn write of the last flush), logged as a warning. Entries the snapshot covers are
dropped; entries that do not continue the snapshot (a crash between installing a snapshot and
emptying the log) are dropped too. The entries are also kept in memory (the metadata log of a
KRaft quorum is small and snapshotted); reads never touch the disk.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Sequence
from typing import Any

from kbroker.raft.files import scan_snapshot_files, write_all, write_atomically
from kbroker.raft.log import Entry, MemoryLog, Snapshot
from kbroker_protocol.crc import crc32c

logger = logging.getLogger(__name__)

ENTRIES_FILE = "raft-entries.log"
_FRAME_HEAD = struct.Struct(">II")  # length, crc32c
_ENTRY_HEAD = struct.Struct(">qiB")  # offset, epoch, kind
_LEADER = struct.Struct(">i")
_SNAP_HEAD = struct.Struct(">Iqi")  # crc32c, end offset, epoch
_SNAP_NAME = re.compile(r"^(\d{20})-(\d{10})\.snapshot$")
_DATA, _CONTROL = 0, 1
_MORE = 0x80  # kind bit: not the last entry of its proposal
MAX_ENTRY_BYTES = 64 * 1024 * 1024




class LogCorruptError(Exception):
    """A log directory that cannot be opened safely (the reason says which file and why)."""


def encode_entry(offset: int, entry: Entry) -> bytes:
    more = 0 if entry.batch_end else _MORE
    if entry.control:
        if not isinstance(entry.value, int):
            raise TypeError(f"a control entry's value must be the leader id, not {type(entry.value).__name__}")
        body = _ENTRY_HEAD.pack(offset, entry.epoch, _CONTROL | more) + _LEADER.pack(entry.value)
    else:
        if not isinstance(entry.value, bytes | bytearray):
            raise TypeError(f"a record value must be bytes, not {type(entry.value).__name__}")
        body = _ENTRY_HEAD.pack(offset, entry.epoch, _DATA | more) + bytes(entry.value)
    if len(body) > MAX_ENTRY_BYTES:
        raise ValueError(f"entry of {len(body)} bytes is larger than {MAX_ENTRY_BYTES}")
    return _FRAME_HEAD.pack(len(body), crc32c(body)) + body


def _snapshot_name(end_offset: int, epoch: int) -> str:
    return f"{end_offset:020d}-{epoch:010d}.snapshot"


class FileRaftLog(MemoryLog):
    """``RaftLog`` persisted in ``directory`` (created if missing). Values of data entries and
    snapshot data must be ``bytes``. Not thread-safe; ``close`` releases the file."""

    __slots__ = ("directory", "_fd", "_positions", "_file_size")

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        super().__init__()
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        # byte position in the file of each flushed entry (index: offset - start_offset)
        self._positions: list[int] = []
        self._file_size = 0
        snap = self._load_snapshot()
        if snap is not None:
            MemoryLog.install_snapshot(self, snap)
        entries, positions, good_size, raw_size = self._scan()
        path = os.path.join(self.directory, ENTRIES_FILE)
        start = self.start_offset
        keep_from = 0
        while keep_from < len(entries) and entries[keep_from][0] < start:
            keep_from += 1
        kept = entries[keep_from:]
        if kept and kept[0][0] != start:
            logger.warning(
                "raft log %s: entries start at %d but the log starts at %d; dropping %d entries",
                path, kept[0][0], start, len(kept),
            )
            kept = []
        if kept and snap is not None and keep_from > 0 and entries[keep_from - 1][1].epoch != snap.epoch:
            logger.warning(
                "raft log %s: the entry before %d has epoch %d, not the snapshot's %d; dropping %d entries",
                path, start, entries[keep_from - 1][1].epoch, snap.epoch, len(kept),
            )
            kept = []
        if kept and kept[0][1].epoch < self.last_epoch:
            logger.warning("raft log %s: entries go back in epochs after the snapshot; dropping them", path)
            kept = []
        MemoryLog.append(self, [e for _, e in kept])
        MemoryLog.flush(self)
        if keep_from == 0 and len(kept) == len(entries):
            # only a torn tail (if any) to cut
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if raw_size != good_size:
                logger.warning(
                    "raft log %s: cutting %d bytes after the last valid entry (offset %d)",
                    path, raw_size - good_size, self.end_offset,
                )
                os.ftruncate(self._fd, good_size)
                os.fsync(self._fd)
            self._positions = positions
            self._file_size = good_size
        else:
            self._fd = -1
            self._rewrite()

    # ------------------------------------------------------------------ opening

    def _load_snapshot(self) -> Snapshot | None:
        # an unfinished atomic write of ours is deleted
        found = scan_snapshot_files(self.directory, _SNAP_NAME,
                                    lambda name: name.endswith(".snapshot.tmp") or name == ENTRIES_FILE + ".tmp")
        if not found:
            return None
        end, epoch, name = found[-1]
        path = os.path.join(self.directory, name)
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) < _SNAP_HEAD.size:
            raise LogCorruptError(f"{path}: {len(raw)} bytes, shorter than a snapshot header")
        crc, s_end, s_epoch = _SNAP_HEAD.unpack_from(raw)
        if crc32c(raw[4:]) != crc:
            raise LogCorruptError(f"{path}: CRC mismatch (the snapshot is damaged)")
        if (s_end, s_epoch) != (end, epoch):
            raise LogCorruptError(f"{path}: holds snapshot ({s_end}, {s_epoch}), not the one its name says")
        for _e, _ep, older in found[:-1]:
            os.unlink(os.path.join(self.directory, older))
        return Snapshot(end, epoch, raw[_SNAP_HEAD.size :])

    def _scan(self) -> tuple[list[tuple[int, Entry]], list[int], int, int]:
        """The valid prefix of the entries file: entries, their positions, its size, the file size."""
        path = os.path.join(self.directory, ENTRIES_FILE)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return [], [], 0, 0
        entries: list[tuple[int, Entry]] = []
        positions: list[int] = []
        pos = 0
        last_epoch = -1
        while True:
            if pos + _FRAME_HEAD.size > len(raw):
                break
            length, crc = _FRAME_HEAD.unpack_from(raw, pos)
            body_at = pos + _FRAME_HEAD.size
            if length < _ENTRY_HEAD.size or length > MAX_ENTRY_BYTES or body_at + length > len(raw):
                break
            body = raw[body_at : body_at + length]
            if crc32c(body) != crc:
                break
            offset, epoch, kind = _ENTRY_HEAD.unpack_from(body)
            value_raw = body[_ENTRY_HEAD.size :]
            if entries and offset != entries[-1][0] + 1:
                break
            if epoch < last_epoch or offset < 0 or epoch < 0:
                break
            batch_end = not kind & _MORE
            kind &= ~_MORE
            if kind == _DATA:
                entry = Entry(epoch, value_raw, batch_end=batch_end)
            elif kind == _CONTROL and len(value_raw) == _LEADER.size:
                entry = Entry(epoch, _LEADER.unpack(value_raw)[0], control=True, batch_end=batch_end)
            else:
                break
            entries.append((offset, entry))
            positions.append(pos)
            last_epoch = epoch
            pos = body_at + length
        # a torn flush may have kept the first entries of a proposal: they go too (atomicity)
        while entries and not entries[-1][1].batch_end:
            entries.pop()
            pos = positions.pop()
        return entries, positions, pos, len(raw)

    def _rewrite(self) -> None:
        """Replace the file by the flushed entries ``[start_offset, flushed_end)``, atomically."""
        data = bytearray()
        positions = []
        start = self.start_offset
        for i, e in enumerate(self.read(start, self.flushed_end - start)):
            positions.append(len(data))
            data += encode_entry(start + i, e)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        write_atomically(self.directory, ENTRIES_FILE, data)
        self._fd = os.open(os.path.join(self.directory, ENTRIES_FILE), os.O_RDWR, 0o644)
        self._positions = positions
        self._file_size = len(data)

    # ------------------------------------------------------------------ RaftLog

    def append(self, entries: Sequence[Entry]) -> None:
        for e in entries:  # refuse what could not be written before accepting anything
            if e.control:
                if not isinstance(e.value, int):
                    raise TypeError(f"a control entry's value must be the leader id, not {type(e.value).__name__}")
            elif not isinstance(e.value, bytes | bytearray):
                raise TypeError(f"a record value must be bytes, not {type(e.value).__name__}")
        super().append(entries)

    def flush(self) -> None:
        self._check_open()
        start = self.flushed_end
        end = self.end_offset
        if start == end:
            return
        data = bytearray()
        positions = []
        for i, e in enumerate(self.read(start, end - start)):
            positions.append(self._file_size + len(data))
            data += encode_entry(start + i, e)
        os.lseek(self._fd, self._file_size, os.SEEK_SET)
        write_all(self._fd, data)
        os.fsync(self._fd)
        self._file_size += len(data)
        self._positions.extend(positions)
        super().flush()

    def truncate_to(self, offset: int) -> None:
        if offset < self.start_offset:
            raise ValueError(f"truncation to {offset}, below the log start {self.start_offset}")
        if offset < self.flushed_end:
            self._check_open()
            i = offset - self.start_offset
            size = self._positions[i]
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
            del self._positions[i:]
            self._file_size = size
        super().truncate_to(offset)

    def take_snapshot(self, end_offset: int, data: Any) -> Snapshot:
        self._check_open()
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"snapshot data must be bytes, not {type(data).__name__}")
        if not self.start_offset < end_offset <= self.flushed_end:
            raise ValueError(
                f"snapshot at {end_offset} outside the durable log ({self.start_offset}, {self.flushed_end}]"
            )
        old = self.snapshot
        epoch = self.entry(end_offset - 1).epoch
        self._write_snapshot(Snapshot(end_offset, epoch, bytes(data)))
        snap = super().take_snapshot(end_offset, bytes(data))
        self._rewrite()
        self._delete_snapshot(old)
        return snap

    def install_snapshot(self, snapshot: Snapshot) -> None:
        self._check_open()
        if not isinstance(snapshot.data, bytes | bytearray):
            raise TypeError(f"snapshot data must be bytes, not {type(snapshot.data).__name__}")
        old = self.snapshot
        snapshot = Snapshot(snapshot.end_offset, snapshot.epoch, bytes(snapshot.data))
        self._write_snapshot(snapshot)
        super().install_snapshot(snapshot)
        self._rewrite()
        if old is not None and old.snapshot_id != snapshot.snapshot_id:
            self._delete_snapshot(old)

    def crash(self) -> None:
        raise NotImplementedError("a FileRaftLog crashes by being closed without a flush and reopened")

    # ------------------------------------------------------------------ files

    def _write_snapshot(self, snap: Snapshot) -> None:
        body = struct.pack(">qi", snap.end_offset, snap.epoch) + bytes(snap.data)
        write_atomically(self.directory, _snapshot_name(snap.end_offset, snap.epoch), struct.pack(">I", crc32c(body)) + body)

    def _delete_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        try:
            os.unlink(os.path.join(self.directory, _snapshot_name(snap.end_offset, snap.epoch)))
        except FileNotFoundError:
            pass

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError(f"raft log {self.directory} is closed")

    def close(self) -> None:
        """Release the file; the unflushed tail is lost (call ``flush`` first to keep it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0
