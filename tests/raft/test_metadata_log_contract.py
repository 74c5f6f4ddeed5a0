"""The RaftLog contract, one set of cases for MemoryLog, FileRaftLog and MetadataLog.

Each case runs against every implementation (``kind``): the in-memory log (a restart is
``crash()``: it keeps exactly the flushed prefix), the private-format ``FileRaftLog`` and the
``MetadataLog`` in Kafka's segment format (a restart is a close without flush and a reopen).
Snapshot data is opaque to the first two (bytes here) and a list of framed records for the
metadata log, whose ``Snapshot.data`` is then the ``.checkpoint`` content.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kbroker.metadata.metadata_log import MetadataLog, MetadataLogError, snapshot_records
from kbroker.raft.file_log import ENTRIES_FILE, FileRaftLog, LogCorruptError
from kbroker.raft.log import Entry, MemoryLog, RaftLog

ENTRIES = [Entry(1, 1, control=True), Entry(1, b"a"), Entry(1, b""), Entry(2, 2, control=True), Entry(2, b"x" * 300)]


@dataclass
class Kind:
    name: str

    def open(self, d: Path) -> RaftLog:
        if self.name == "memory":
            return MemoryLog()
        if self.name == "file":
            return FileRaftLog(d)
        return MetadataLog(d / "__cluster_metadata-0", voters=(1, 2, 3))

    def reopen(self, log: RaftLog) -> RaftLog:
        if isinstance(log, MemoryLog) and type(log) is MemoryLog:
            log.crash()
            return log
        log.close()  # type: ignore[attr-defined]
        if isinstance(log, MetadataLog):
            return MetadataLog(log.directory, voters=(1, 2, 3))
        return FileRaftLog(log.directory)  # type: ignore[attr-defined]

    def data(self, label: str) -> Any:
        if self.name == "metadata":
            return [label.encode(), (label + "/2").encode()]
        return label.encode()

    def data_of(self, snap) -> Any:
        if self.name == "metadata":
            return snapshot_records(snap.data)
        return snap.data

    @property
    def durable(self) -> bool:
        return self.name != "memory"


KINDS = [Kind("memory"), Kind("file"), Kind("metadata")]
FILE_KINDS = [k for k in KINDS if k.durable]


@pytest.fixture(params=KINDS, ids=lambda k: k.name)
def kind(request) -> Kind:
    return request.param


@pytest.fixture(params=FILE_KINDS, ids=lambda k: k.name)
def file_kind(request) -> Kind:
    return request.param


def state(log: RaftLog) -> tuple:
    return (
        log.start_offset,
        log.end_offset,
        log.flushed_end,
        log.snapshot.snapshot_id if log.snapshot else None,
        log.read(log.start_offset, log.end_offset - log.start_offset),
        log.last_epoch,
        [log.end_offset_for_epoch(e) for e in range(-1, 6)],
        [log.epoch_at(o) for o in range(log.start_offset, log.end_offset + 1)],
    )


def test_round_trip_and_restart(kind, tmp_path):
    log = kind.open(tmp_path)
    assert (log.start_offset, log.end_offset, log.last_epoch) == (0, 0, 0)
    assert log.end_offset_for_epoch(3) == (-1, 0)
    log.append(ENTRIES[:3])
    log.append(ENTRIES[3:])
    log.flush()
    log.append([Entry(3, b"unflushed")])
    assert log.end_offset == 6 and log.flushed_end == 5
    mirror = MemoryLog()
    mirror.append(ENTRIES)
    mirror.flush()
    log2 = kind.reopen(log)
    # the unflushed tail is lost, the flushed prefix comes back exactly
    assert state(log2) == state(mirror)
    assert log2.entry(0) == Entry(1, 1, control=True)
    assert log2.epoch_at(4) == 2
    assert log2.end_offset_for_epoch(1) == (1, 3)
    assert log2.end_offset_for_epoch(0) == (-1, 0)
    # it can be extended after a restart
    log2.append([Entry(3, b"y")])
    log2.flush()
    mirror.append([Entry(3, b"y")])
    mirror.flush()
    assert state(kind.reopen(log2)) == state(mirror)


def test_epochs_never_go_back(kind, tmp_path):
    log = kind.open(tmp_path)
    log.append([Entry(3, b"a")])
    with pytest.raises(ValueError):
        log.append([Entry(2, b"b")])
    log.flush()
    assert kind.reopen(log).read(0, 10) == (Entry(3, b"a"),)


def test_truncation_is_durable(kind, tmp_path):
    log = kind.open(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.truncate_to(3)  # at an epoch boundary
    assert (log.end_offset, log.flushed_end, log.last_epoch) == (3, 3, 1)
    log.append([Entry(4, b"new")])
    log.flush()
    log2 = kind.reopen(log)
    assert log2.read(0, 10) == (*ENTRIES[:3], Entry(4, b"new"))
    assert log2.end_offset_for_epoch(2) == (1, 3)
    assert log2.end_offset_for_epoch(4) == (4, 4)
    # truncation of the unflushed part only
    log2.append([Entry(4, b"u1"), Entry(4, b"u2")])
    log2.truncate_to(5)
    log2.flush()
    log3 = kind.reopen(log2)
    assert log3.read(0, 10) == (*ENTRIES[:3], Entry(4, b"new"), Entry(4, b"u1"))
    with pytest.raises(ValueError):
        log3.truncate_to(-1)


def test_truncation_inside_one_append(kind, tmp_path):
    """A follower's appends need not match the leader's: a cut may fall inside what one append
    (one batch on disk) wrote; the entries before it stay, durably, and later appends follow."""
    log = kind.open(tmp_path)
    log.append([Entry(1, 1, control=True)])
    log.append([Entry(1, bytes([i])) for i in range(6)])
    log.flush()
    log.truncate_to(4)
    assert (log.end_offset, log.flushed_end) == (4, 4)
    log.append([Entry(2, b"after")])
    log.flush()
    log2 = kind.reopen(log)
    assert log2.read(0, 10) == (Entry(1, 1, control=True), Entry(1, b"\x00"), Entry(1, b"\x01"), Entry(1, b"\x02"),
                                Entry(2, b"after"))
    assert log2.end_offset_for_epoch(1) == (1, 4)
    # and inside the first append, down to its first entry
    log2.truncate_to(1)
    assert kind.reopen(log2).read(0, 10) == (Entry(1, 1, control=True),)


def test_snapshot_take_and_restart(kind, tmp_path):
    log = kind.open(tmp_path)
    log.append(ENTRIES)
    log.flush()
    with pytest.raises(ValueError):
        log.take_snapshot(6, kind.data("beyond the flushed end"))
    log.append([Entry(2, b"unflushed")])
    with pytest.raises(ValueError, match="durable"):
        log.take_snapshot(6, kind.data("unflushed"))
    snap = log.take_snapshot(3, kind.data("state@3"))
    assert snap.snapshot_id == (3, 1) and kind.data_of(snap) == kind.data("state@3")
    assert log.snapshot == snap
    assert (log.start_offset, log.end_offset) == (3, 6)
    with pytest.raises(IndexError):
        log.entry(2)
    with pytest.raises(ValueError, match="below the log start"):
        log.truncate_to(2)
    log2 = kind.reopen(log)  # the unflushed entry is lost
    assert log2.snapshot.snapshot_id == (3, 1) and kind.data_of(log2.snapshot) == kind.data("state@3")
    assert (log2.start_offset, log2.end_offset, log2.flushed_end) == (3, 5, 5)
    assert log2.read(3, 10) == tuple(ENTRIES[3:])
    assert log2.epoch_at(3) == 1
    assert log2.end_offset_for_epoch(1) == (1, 3)
    assert log2.end_offset_for_epoch(0) == (-1, 3)
    # a newer snapshot replaces the older one
    log2.take_snapshot(5, kind.data("state@5"))
    log3 = kind.reopen(log2)
    assert (log3.start_offset, log3.end_offset, log3.last_epoch) == (5, 5, 2)
    assert log3.end_offset_for_epoch(9) == (2, 5)
    assert kind.data_of(log3.snapshot) == kind.data("state@5")
    log3.truncate_to(5)
    log3.append([Entry(5, b"d")])
    assert log3.end_offset_for_epoch(5) == (5, 6)
    assert log3.end_offset_for_epoch(4) == (2, 5)


def test_snapshot_inside_one_append_then_truncate(kind, tmp_path):
    """A snapshot ending inside what one append wrote; the rest of that append is still the log,
    and truncation inside it keeps what the snapshot does not cover."""
    log = kind.open(tmp_path)
    log.append([Entry(1, 1, control=True)] + [Entry(1, bytes([i])) for i in range(5)])
    log.flush()
    log.take_snapshot(3, kind.data("s3"))
    log.truncate_to(5)
    log2 = kind.reopen(log)
    assert (log2.start_offset, log2.end_offset) == (3, 5)
    assert log2.read(3, 10) == (Entry(1, b"\x02"), Entry(1, b"\x03"))


def test_install_snapshot_replaces_the_log(kind, tmp_path):
    log = kind.open(tmp_path)
    log.append(ENTRIES)
    log.flush()
    from kbroker.raft.log import Snapshot

    leader = kind.open(tmp_path / "leader")
    leader.append([Entry(7, b"z")] * 40)
    leader.flush()
    sent = leader.take_snapshot(40, kind.data("leader state"))
    log.install_snapshot(Snapshot(sent.end_offset, sent.epoch, sent.data))
    assert (log.start_offset, log.end_offset, log.flushed_end, log.last_epoch) == (40, 40, 40, 7)
    assert log.epoch_at(40) == 7
    log.append([Entry(7, b"next")])
    log.flush()
    log2 = kind.reopen(log)
    assert log2.snapshot.snapshot_id == (40, 7) and kind.data_of(log2.snapshot) == kind.data("leader state")
    assert log2.read(40, 10) == (Entry(7, b"next"),)


def test_values_must_be_writable(file_kind, tmp_path):
    log = file_kind.open(tmp_path)
    with pytest.raises(TypeError):
        log.append([Entry(1, "text")])
    with pytest.raises(TypeError):
        log.append([Entry(1, b"fine"), Entry(1, "text")])
    assert log.end_offset == 0


# ------------------------------------------------------------------ crashes on disk


def data_file(log) -> Path:
    if isinstance(log, MetadataLog):
        [seg] = sorted(log.directory.glob("*.log"))
        return seg
    return Path(log.directory) / ENTRIES_FILE


def test_torn_tail_cut_at_every_byte(file_kind, tmp_path):
    """A crash in the middle of the last flush leaves a prefix of its bytes: every such prefix
    reopens as the entries before it, and the next appends follow them."""
    base = file_kind.open(tmp_path / "base")
    base.append(ENTRIES[:-1])
    base.flush()
    path = data_file(base)
    good = os.path.getsize(path)
    base.append(ENTRIES[-1:])
    base.flush()
    raw = path.read_bytes()
    base_dir = Path(base.directory)
    base.close()
    # a crash, not a clean close: no shutdown marker
    for marker in base_dir.glob(".kafka_cleanshutdown"):
        marker.unlink()
    raw = path.read_bytes()
    assert len(raw) > good
    # every byte for the private format; for the segment log (whose recovery costs more per open)
    # every byte of the last batch's 61-byte header and a few beyond it, then every 11th
    if file_kind.name == "file":
        cuts = set(range(good, len(raw)))
    else:
        cuts = {*range(good, min(good + 70, len(raw))), *range(good, len(raw), 11)}
    for cut in sorted(cuts | {len(raw) - 1}):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(tmp_path / "base", d)
        copy = d / path.relative_to(tmp_path / "base")
        copy.write_bytes(raw[:cut])
        torn = _open_copy(file_kind, base, d)
        assert torn.read(0, 10) == tuple(ENTRIES[:-1]), cut
        assert torn.flushed_end == 4
        torn.append([Entry(3, b"after")])
        torn.flush()
        assert file_kind.reopen(torn).read(0, 10) == (*ENTRIES[:-1], Entry(3, b"after")), cut
    # the whole file is read whole
    assert _open_copy(file_kind, base, tmp_path / "base").read(0, 10) == tuple(ENTRIES)


def _open_copy(kind: Kind, original, d: Path) -> RaftLog:
    if isinstance(original, MetadataLog):
        return MetadataLog(d / "__cluster_metadata-0")
    return FileRaftLog(d)


def test_crash_between_snapshot_install_and_log_rewrite(file_kind, tmp_path):
    """The snapshot file is written first: a log left from before it that does not continue the
    snapshot is dropped on open; one that does (take_snapshot interrupted) is kept."""
    log = file_kind.open(tmp_path / "a")
    log.append(ENTRIES)
    log.flush()
    log_dir = Path(log.directory)
    log.close()
    other = file_kind.open(tmp_path / "b")
    other.append([Entry(9, b"q")] * 3)
    other.flush()
    other.take_snapshot(3, file_kind.data("s"))
    other_dir = Path(other.directory)
    other.close()
    snaps = [p for p in other_dir.iterdir() if p.name.endswith((".snapshot", ".checkpoint")) and p.name[0] == "0"]
    assert len(snaps) == 1
    shutil.copy(snaps[0], log_dir / snaps[0].name)
    opened = _open_copy(file_kind, log, tmp_path / "a")
    assert (opened.start_offset, opened.end_offset, opened.last_epoch) == (3, 3, 9)
    opened.append([Entry(10, b"next")])
    opened.flush()
    assert file_kind.reopen(opened).read(3, 10) == (Entry(10, b"next"),)


def test_damaged_snapshot_is_refused_with_the_reason(file_kind, tmp_path):
    log = file_kind.open(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.take_snapshot(2, file_kind.data("state"))
    d = Path(log.directory)
    log.close()
    [path] = [p for p in d.iterdir() if p.name.endswith((".snapshot", ".checkpoint")) and p.name[0] == "0"]
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(raw)
    with pytest.raises((LogCorruptError, MetadataLogError), match="CRC|damaged|crc"):
        _open_copy(file_kind, log, tmp_path)
    raw[-1] ^= 1
    path.write_bytes(raw)
    assert _open_copy(file_kind, log, tmp_path).snapshot.snapshot_id == (2, 1)
