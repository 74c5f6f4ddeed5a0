"""FileRaftLog: what was flushed survives a restart exactly; a torn tail is cut, never misread."""

from __future__ import annotations

import os

import pytest

from kbroker.raft.file_log import ENTRIES_FILE, FileRaftLog, LogCorruptError
from kbroker.raft.log import Entry, MemoryLog, Snapshot

ENTRIES = [Entry(1, 1, control=True), Entry(1, b"a"), Entry(1, b""), Entry(2, 2, control=True), Entry(2, b"x" * 300)]


def state(log) -> tuple:
    return (
        log.start_offset,
        log.end_offset,
        log.flushed_end,
        log.snapshot,
        log.read(log.start_offset, log.end_offset - log.start_offset),
        log.last_epoch,
        [log.end_offset_for_epoch(e) for e in range(-1, 4)],
    )


def reopen(log: FileRaftLog) -> FileRaftLog:
    log.close()
    return FileRaftLog(log.directory)


def test_round_trip_and_restart(tmp_path):
    log = FileRaftLog(tmp_path)
    assert (log.start_offset, log.end_offset, log.last_epoch) == (0, 0, 0)
    log.append(ENTRIES)
    log.flush()
    log.append([Entry(3, b"unflushed")])
    mirror = MemoryLog()
    mirror.append(ENTRIES)
    mirror.flush()
    log2 = reopen(log)
    # the unflushed tail is lost, the flushed prefix comes back exactly
    assert state(log2) == state(mirror)
    assert log2.entry(0) == Entry(1, 1, control=True)
    assert log2.epoch_at(4) == 2
    # it can be extended after a restart
    log2.append([Entry(3, b"y")])
    log2.flush()
    mirror.append([Entry(3, b"y")])
    mirror.flush()
    assert state(reopen(log2)) == state(mirror)


def test_truncation_is_durable(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.truncate_to(3)
    assert (log.end_offset, log.flushed_end, log.last_epoch) == (3, 3, 1)
    log.append([Entry(4, b"new")])
    log.flush()
    log2 = reopen(log)
    assert log2.read(0, 10) == (*ENTRIES[:3], Entry(4, b"new"))
    assert log2.end_offset_for_epoch(2) == (1, 3)
    # truncation of the unflushed part only
    log2.append([Entry(4, b"u1"), Entry(4, b"u2")])
    log2.truncate_to(5)
    log2.flush()
    assert reopen(log2).read(0, 10) == (*ENTRIES[:3], Entry(4, b"new"), Entry(4, b"u1"))
    with pytest.raises(ValueError):
        log2.truncate_to(-1)


def test_torn_tail_cut_at_every_byte(tmp_path):
    """A crash in the middle of the last flush leaves a prefix of its bytes: every such prefix
    reopens as the entries before it, and the file is cut there, so later appends follow them."""
    base = tmp_path / "base"
    log = FileRaftLog(base)
    log.append(ENTRIES[:-1])
    log.flush()
    good = os.path.getsize(base / ENTRIES_FILE)
    log.append(ENTRIES[-1:])
    log.flush()
    log.close()
    raw = (base / ENTRIES_FILE).read_bytes()
    assert len(raw) > good
    for cut in range(good, len(raw)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / ENTRIES_FILE).write_bytes(raw[:cut])
        torn = FileRaftLog(d)
        assert torn.read(0, 10) == tuple(ENTRIES[:-1]), cut
        assert torn.flushed_end == 4
        assert os.path.getsize(d / ENTRIES_FILE) == good
        torn.append([Entry(3, b"after")])
        torn.flush()
        assert reopen(torn).read(0, 10) == (*ENTRIES[:-1], Entry(3, b"after"))
    # the whole file is read whole
    assert FileRaftLog(base).read(0, 10) == tuple(ENTRIES)


def test_corrupt_or_reordered_entry_ends_the_log(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.close()
    path = tmp_path / ENTRIES_FILE
    raw = bytearray(path.read_bytes())
    # flip one byte in the value of entry 1 (b"a"): its CRC fails, entries 1.. are dropped
    second = raw.index(b"a", 20)
    raw[second] ^= 0xFF
    path.write_bytes(raw)
    assert FileRaftLog(tmp_path).read(0, 10) == tuple(ENTRIES[:1])

    # entries of a valid CRC but out of order (entry 2 written before entry 1) are not accepted
    from kbroker.raft.file_log import encode_entry

    path.write_bytes(encode_entry(0, ENTRIES[0]) + encode_entry(2, ENTRIES[2]) + encode_entry(1, ENTRIES[1]))
    assert FileRaftLog(tmp_path).read(0, 10) == tuple(ENTRIES[:1])
    # nor an epoch going back
    path.write_bytes(encode_entry(0, Entry(3, b"a")) + encode_entry(1, Entry(2, b"b")))
    assert FileRaftLog(tmp_path).read(0, 10) == (Entry(3, b"a"),)


def test_snapshot_take_and_restart(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    with pytest.raises(ValueError):
        log.take_snapshot(6, b"beyond the flushed end")
    with pytest.raises(TypeError):
        log.take_snapshot(2, {"not": "bytes"})
    snap = log.take_snapshot(3, b"state@3")
    assert snap == Snapshot(3, 1, b"state@3")
    assert (log.start_offset, log.end_offset) == (3, 5)
    log.append([Entry(2, b"z")])  # unflushed: kept across the snapshot in memory, lost on close
    log2 = reopen(log)
    assert log2.snapshot == Snapshot(3, 1, b"state@3")
    assert (log2.start_offset, log2.end_offset, log2.flushed_end) == (3, 5, 5)
    assert log2.read(3, 10) == tuple(ENTRIES[3:])
    assert log2.epoch_at(3) == 1
    assert log2.end_offset_for_epoch(1) == (1, 3)
    # a newer snapshot replaces the older file
    log2.take_snapshot(5, b"state@5")
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".snapshot"))
    assert names == ["00000000000000000005-0000000002.snapshot"]
    log3 = reopen(log2)
    assert (log3.start_offset, log3.end_offset, log3.last_epoch) == (5, 5, 2)
    assert log3.snapshot.data == b"state@5"


def test_install_snapshot_replaces_the_log(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.install_snapshot(Snapshot(40, 7, b"leader state"))
    assert (log.start_offset, log.end_offset, log.last_epoch) == (40, 40, 7)
    log.append([Entry(7, b"next")])
    log.flush()
    log2 = reopen(log)
    assert log2.snapshot == Snapshot(40, 7, b"leader state")
    assert log2.read(40, 10) == (Entry(7, b"next"),)


def test_crash_between_snapshot_install_and_log_rewrite(tmp_path):
    """The snapshot file is written first: an entries file left from before it does not continue
    the snapshot and is dropped on open; one that does (take_snapshot interrupted) is kept."""
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.close()
    entries_before = (tmp_path / ENTRIES_FILE).read_bytes()
    other = FileRaftLog(tmp_path / "other")
    other.install_snapshot(Snapshot(3, 9, b"s"))
    other.close()
    (tmp_path / "00000000000000000003-0000000009.snapshot").write_bytes(
        (tmp_path / "other" / "00000000000000000003-0000000009.snapshot").read_bytes()
    )
    opened = FileRaftLog(tmp_path)
    assert (opened.start_offset, opened.end_offset, opened.last_epoch) == (3, 3, 9)
    opened.close()
    # take_snapshot(3) interrupted before the rewrite: the old entries continue it
    for n in os.listdir(tmp_path):
        if n.endswith(".snapshot"):
            os.unlink(tmp_path / n)
    (tmp_path / ENTRIES_FILE).write_bytes(entries_before)
    fresh = FileRaftLog(tmp_path / "fresh")
    fresh.append(ENTRIES)
    fresh.flush()
    fresh.take_snapshot(3, b"s3")
    fresh.close()
    (tmp_path / "00000000000000000003-0000000001.snapshot").write_bytes(
        (tmp_path / "fresh" / "00000000000000000003-0000000001.snapshot").read_bytes()
    )
    opened = FileRaftLog(tmp_path)
    assert (opened.start_offset, opened.end_offset) == (3, 5)
    assert opened.read(3, 5) == tuple(ENTRIES[3:])


def test_damaged_snapshot_is_refused_with_the_reason(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(ENTRIES)
    log.flush()
    log.take_snapshot(2, b"state")
    log.close()
    path = tmp_path / "00000000000000000002-0000000001.snapshot"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(raw)
    with pytest.raises(LogCorruptError, match="CRC mismatch"):
        FileRaftLog(tmp_path)
    # a left-over temporary file is removed, not read
    raw[-1] ^= 1
    path.write_bytes(raw)
    (tmp_path / "x.snapshot.tmp").write_bytes(b"partial")
    assert FileRaftLog(tmp_path).snapshot == Snapshot(2, 1, b"state")
    assert not (tmp_path / "x.snapshot.tmp").exists()
    # another writer's temporary file in a shared directory is not ours to remove
    (tmp_path / "quorum-state.tmp").write_bytes(b"{}")
    FileRaftLog(tmp_path)
    assert (tmp_path / "quorum-state.tmp").exists()


def test_values_must_be_bytes(tmp_path):
    log = FileRaftLog(tmp_path)
    with pytest.raises(TypeError):
        log.append([Entry(1, "text")])
    assert log.end_offset == 0
