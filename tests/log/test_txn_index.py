"""TransactionIndex: Kafka's ``.txnindex`` file format and operations."""

from __future__ import annotations

import struct

import pytest

from kbroker.log.txn_index import ENTRY_SIZE, AbortedTxn, TransactionIndex, TransactionIndexError


def _index(tmp_path, base: int = 0) -> TransactionIndex:
    return TransactionIndex(tmp_path / f"{base:020d}.txnindex", base)


def test_entry_bytes_are_kafkas_layout(tmp_path):
    idx = _index(tmp_path)
    assert not idx.path.exists()  # created on the first append, as Kafka does
    idx.append(AbortedTxn(producer_id=0x0102030405060708, first_offset=5, last_offset=9, last_stable_offset=10))
    idx.flush()
    data = idx.path.read_bytes()
    assert ENTRY_SIZE == 34
    # version i16 0 | producerId i64 | firstOffset i64 | lastOffset i64 | lastStableOffset i64, big-endian
    assert data == (
        b"\x00\x00"
        + b"\x01\x02\x03\x04\x05\x06\x07\x08"
        + b"\x00" * 7 + b"\x05"
        + b"\x00" * 7 + b"\x09"
        + b"\x00" * 7 + b"\x0a"
    )
    idx.append(AbortedTxn(7, 11, 12, 13))
    assert idx.path.read_bytes()[34:] == struct.pack(">hqqqq", 0, 7, 11, 12, 13)
    assert list(idx.entries()) == [AbortedTxn(0x0102030405060708, 5, 9, 10), AbortedTxn(7, 11, 12, 13)]


def test_append_rejects_entries_out_of_order(tmp_path):
    idx = _index(tmp_path)
    idx.append(AbortedTxn(1, 0, 5, 6))
    with pytest.raises(TransactionIndexError):
        idx.append(AbortedTxn(2, 1, 5, 6))  # same last offset
    with pytest.raises(TransactionIndexError):
        idx.append(AbortedTxn(2, 1, 4, 6))
    assert len(idx) == 1 and idx.path.stat().st_size == ENTRY_SIZE


def test_collect_returns_overlapping_entries_and_completeness(tmp_path):
    idx = _index(tmp_path)
    idx.append(AbortedTxn(1, 0, 3, 2))   # producer 2's transaction (from 2) still open
    idx.append(AbortedTxn(2, 2, 6, 7))
    idx.append(AbortedTxn(1, 8, 10, 11))
    first = lambda found: [t.first_offset for t in found]  # noqa: E731
    found, complete = idx.collect(0, 20)
    assert first(found) == [0, 2, 8] and not complete
    assert first(idx.collect(4, 20)[0]) == [2, 8]  # marker at 3 is before the start
    assert first(idx.collect(0, 2)[0]) == [0]  # first offset 2 is not before the end
    assert first(idx.collect(11, 20)[0]) == []
    # An entry whose last stable offset reaches the end proves no later segment can matter.
    found, complete = idx.collect(0, 7)
    assert first(found) == [0, 2] and complete
    found, complete = idx.collect(0, 3)
    assert first(found) == [0, 2] and complete  # stops after entry 2 (LSO 7): entry 3 not read
    found, complete = idx.collect(0, 2)
    assert first(found) == [0] and complete  # entry 1's LSO 2 >= end 2


def test_truncate_drops_entries_at_or_above_the_offset(tmp_path):
    idx = _index(tmp_path)
    for last in (3, 6, 10):
        idx.append(AbortedTxn(1, last - 1, last, last + 1))
    idx.truncate_to(6)
    assert [t.last_offset for t in idx.entries()] == [3]
    assert idx.path.stat().st_size == ENTRY_SIZE and idx.last_offset == 3
    idx.append(AbortedTxn(1, 4, 5, 6))  # the order check follows the truncation
    idx.truncate_to(100)
    assert len(idx) == 2
    idx.truncate_to(0)
    assert len(idx) == 0 and idx.path.stat().st_size == 0


def test_load_trusts_a_sane_file_and_reports_damage(tmp_path):
    idx = _index(tmp_path, base=100)
    idx.append(AbortedTxn(1, 90, 101, 102))
    idx.append(AbortedTxn(2, 100, 105, 106))
    idx.close()
    good = idx.path.read_bytes()

    loaded = _index(tmp_path, base=100)
    assert loaded.load(next_offset=110)
    assert len(loaded) == 2 and loaded.last_offset == 105
    assert [t.producer_id for t in loaded.entries()] == [1, 2]

    def damaged(data: bytes, next_offset: int = 110) -> bool:
        loaded.path.write_bytes(data)
        return not _index(tmp_path, base=100).load(next_offset)

    assert damaged(good[:-1])  # not a whole number of entries
    assert damaged(b"\x00\x01" + good[2:])  # unknown version
    assert damaged(good[34:] + good[:34])  # out of order
    assert damaged(good, next_offset=105)  # a marker beyond the segment's end
    assert damaged(b"\xff" * 68)  # garbage
    zeroed = b"\x00" * 68  # two entries at offset 0: below the base, and not increasing
    assert damaged(zeroed)
    assert not damaged(b"")  # an empty file is an empty index
    idx.path.unlink()
    missing = _index(tmp_path, base=100)
    assert missing.load(110) and len(missing) == 0  # no file: no aborted transaction


def test_reset_rename_and_delete(tmp_path):
    idx = _index(tmp_path)
    idx.append(AbortedTxn(1, 0, 1, 2))
    target = tmp_path / "00000000000000000000.txnindex.swap"
    idx.rename(target)
    assert target.exists() and not (tmp_path / "00000000000000000000.txnindex").exists()
    assert [t.last_offset for t in idx.entries()] == [1]
    # An index without a file renamed over an old one removes it (no stale index under the name).
    empty = TransactionIndex(tmp_path / "x.txnindex", 0)
    empty.rename(target)
    assert not target.exists()
    idx = _index(tmp_path)
    idx.append(AbortedTxn(1, 0, 1, 2))
    idx.reset()
    assert not idx.path.exists() and len(idx) == 0
    idx.append(AbortedTxn(1, 0, 1, 2))  # a fresh start after the reset
    idx.delete()
    assert not idx.path.exists()


def test_first_append_overwrites_a_stale_file(tmp_path):
    idx = _index(tmp_path)
    idx.path.write_bytes(AbortedTxn(9, 0, 50, 51).encode() * 2)
    idx.append(AbortedTxn(1, 0, 1, 2))
    assert idx.path.read_bytes() == AbortedTxn(1, 0, 1, 2).encode()


def _brute_collect(entries, start, end):
    out = []
    for txn in entries:
        if txn.last_offset >= start and txn.first_offset < end:
            out.append(txn)
        if txn.last_stable_offset >= end:
            return out, True
    return out, False


def test_collect_near_the_end_reads_a_few_entries_not_the_whole_file(tmp_path, monkeypatch):
    """A read_committed fetch at the head of a segment with many aborted transactions must not
    read (and decode) every entry of its index on each fetch."""
    import kbroker.log.txn_index as txn_index

    idx = _index(tmp_path)
    for i in range(20_000):
        idx.append(AbortedTxn(1, 10 * i, 10 * i + 5, 10 * i + 6))
    read = {"bytes": 0}
    real = txn_index.os.pread

    def counting(fd, size, pos):
        data = real(fd, size, pos)
        read["bytes"] += len(data)
        return data

    monkeypatch.setattr(txn_index.os, "pread", counting)
    for closed in (False, True):
        if closed:
            idx.close()
        read["bytes"] = 0
        found, complete = idx.collect(10 * 19_999, 10 * 19_999 + 6)
        assert [t.first_offset for t in found] == [10 * 19_999] and complete
        assert read["bytes"] < 64 * ENTRY_SIZE


@pytest.mark.parametrize("closed", [False, True])
def test_collect_matches_a_scan_of_every_entry(tmp_path, closed):
    import random

    rng = random.Random(7)
    idx = _index(tmp_path)
    entries = []
    last = 0
    for _ in range(3000):
        last += rng.randint(1, 20)
        first = last - rng.randint(1, 40)
        lso = rng.randint(first, last + 1)
        entries.append(AbortedTxn(rng.randint(0, 5), first, last, lso))
        idx.append(entries[-1])
    if closed:
        idx.close()
    for _ in range(300):
        start = rng.randint(-5, last + 5)
        end = start + rng.randint(1, 200)
        found, complete = idx.collect(start, end)
        want, want_complete = _brute_collect(entries, start, end)
        # Never fewer entries than Kafka's full scan, and the same whenever Kafka's is complete
        # (a last stable offset never exceeds lastOffset + 1 in a real index, so then always).
        assert found[: len(want)] == want
        if want_complete and all(t.last_stable_offset <= t.last_offset + 1 for t in entries):
            assert (found, complete) == (want, want_complete)
