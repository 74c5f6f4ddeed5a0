"""Producer-state snapshots: the rebuild from a snapshot plus the log after it equals a full scan."""

from __future__ import annotations

from kbroker.log import LogConfig, PartitionLog
from kbroker.replication import producer_snapshot
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch


def _batch(pid: int, seq: int, n: int = 1, txn: bool = False) -> bytes:
    return build_batch([Record(value=b"v", timestamp=1000) for _ in range(n)], producer_id=pid, producer_epoch=0,
                       base_sequence=seq, transactional=txn)


def _marker(pid: int, commit: bool) -> bytes:
    return build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=pid,
                               producer_epoch=0, timestamp=2000)


def _append(plog: PartitionLog, state: PartitionProducerState, data: bytes) -> None:
    info = plog.append(data)
    header = parse_header(data)
    header.base_offset = info.first_offset
    if header.is_control:
        state.apply_marker(header.producer_id, 0, _is_commit(data), info.first_offset, 0, 2000)
    else:
        state.update(header, info.first_offset, info.last_offset)


def _is_commit(data: bytes) -> bool:
    from kbroker_protocol.records import iter_records, parse_control_record

    return parse_control_record(next(iter(iter_records(data)))).type == ControlType.COMMIT


def _summary(state: PartitionProducerState):
    return ({p: (e.epoch, e.txn_first_offset, list(e.batches)) for p, e in state.producers.items()},
            state.first_unstable_offset())


def test_snapshot_plus_tail_equals_full_scan(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    live = PartitionProducerState()
    _append(plog, live, _batch(1, 0, 3))
    _append(plog, live, _batch(2, 0, txn=True))
    _append(plog, live, _marker(2, commit=False))
    path = producer_snapshot.write_snapshot(live, plog)
    assert path is not None and path.name == f"{plog.log_end_offset:020d}.producer-snapshot"
    # After the snapshot: more batches, an open transaction; then a "crash" (no new snapshot).
    _append(plog, live, _batch(1, 3, 2))
    _append(plog, live, _batch(3, 0, txn=True))
    loaded = producer_snapshot.load_state(plog)
    assert _summary(loaded) == _summary(live) == _summary(PartitionProducerState.load(plog))
    assert loaded.first_unstable_offset() == 7


def test_snapshot_is_used_instead_of_scanning(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    live = PartitionProducerState()
    _append(plog, live, _batch(1, 0))
    snap = PartitionProducerState()
    snap.update(parse_header(_batch(9, 41)), 0, 0)  # state the log does not show: proof the file was read
    producer_snapshot.write_snapshot(snap, plog)
    assert set(producer_snapshot.load_state(plog).producers) == {9}


def test_snapshot_that_does_not_match_the_log_is_ignored(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    live = PartitionProducerState()
    _append(plog, live, _batch(1, 0))
    _append(plog, live, _batch(1, 1))
    bogus = PartitionProducerState()
    bogus.update(parse_header(_batch(9, 41)), 0, 0)
    # A snapshot whose last batch is not the log's (as the cleaner rewriting it there leaves):
    # (a truncation below a snapshot deletes it: tests/replication/test_producer_snapshot_truncation.py)
    path = tmp_path / "t-0" / f"{2:020d}.producer-snapshot"
    path.write_bytes(producer_snapshot.encode(bogus, 2, (1, 12345)))
    assert set(producer_snapshot.load_state(plog).producers) == {1}
    # A damaged file is ignored too.
    path.write_bytes(b"00000000\n{}")
    assert set(producer_snapshot.load_state(plog).producers) == {1}


def test_snapshots_have_no_aborted_list_and_old_ones_with_it_still_load(tmp_path):
    import json
    import zlib

    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    live = PartitionProducerState()
    _append(plog, live, _batch(2, 0, txn=True))
    _append(plog, live, _marker(2, commit=False))
    _append(plog, live, _batch(3, 0, txn=True))
    path = producer_snapshot.write_snapshot(live, plog)
    assert path is not None
    doc = json.loads(path.read_bytes()[9:])
    assert "aborted" not in doc  # the aborted transactions are in the log's .txnindex
    # A snapshot written by the version that kept them in memory: the list is ignored.
    doc["aborted"] = [[2, 0, 1]]
    body = json.dumps(doc).encode()
    path.write_bytes(b"%08x\n" % zlib.crc32(body) + body)
    offset, _, state = producer_snapshot.decode(path.read_bytes())
    assert offset == 3 and not hasattr(state, "aborted")
    assert _summary(producer_snapshot.load_state(plog)) == _summary(live)
    assert producer_snapshot.load_state(plog).first_unstable_offset() == 2


def _plain(n: int = 1) -> bytes:
    return build_batch([Record(value=b"p" * 200, timestamp=1000) for _ in range(n)])


def _mixed_log(tmp_path) -> tuple[PartitionLog, PartitionProducerState]:
    """Plain, idempotent and transactional batches with markers over several segments."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=2048))
    live = PartitionProducerState()
    plog.append(_plain(3))
    _append(plog, live, _batch(1, 0, 2))
    _append(plog, live, _batch(2, 0, txn=True))
    for _ in range(8):
        plog.append(_plain(2))
    _append(plog, live, _marker(2, commit=False))
    _append(plog, live, _batch(1, 2))
    _append(plog, live, _batch(3, 0, 2, txn=True))
    plog.append(_plain())
    _append(plog, live, _marker(3, commit=True))
    _append(plog, live, _batch(4, 0, txn=True))
    plog.append(_plain(4))
    assert len(plog._segments) > 3
    return plog, live


def test_batch_headers_walk_the_same_batches_as_a_full_read(tmp_path):
    plog, _live = _mixed_log(tmp_path)
    for start in (None, 0, 1, 4, 12, plog.log_end_offset - 1):
        full = [(h.base_offset, h.crc, data) for h, data in plog.iter_batches(start)]
        walked = [(h.base_offset, h.crc, body()) for h, body in plog.iter_batch_headers(start)]
        assert walked == full
    assert list(plog.iter_batch_headers(plog.log_end_offset)) == []


def test_rebuild_reads_only_the_markers_bodies(tmp_path, monkeypatch):
    from kbroker.log.segment import LogSegment

    plog, live = _mixed_log(tmp_path)
    bodies: list[int] = []
    original = LogSegment.pread

    def counting(self: LogSegment, size: int, position: int) -> bytes:
        bodies.append(size)
        return original(self, size, position)

    monkeypatch.setattr(LogSegment, "pread", counting)
    rebuilt = producer_snapshot.load_state(plog)
    assert len(bodies) == 2  # the ABORT and the COMMIT marker
    assert _summary(rebuilt) == _summary(live) == _summary(PartitionProducerState.load(plog))
    assert rebuilt.first_unstable_offset() == live.first_unstable_offset() is not None


def test_a_log_emptied_by_retention_opens_with_its_snapshots_producers(tmp_path):
    """Retention deletes segments, not producers (Kafka keeps the producer state and the newest
    snapshot when the log start moves): unlike a full truncation, which resets both."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(retention_bytes=0))
    live = PartitionProducerState()
    _append(plog, live, _batch(1, 0, 3))
    plog.roll()
    producer_snapshot.write_snapshot(live, plog)
    plog.high_watermark = plog.log_end_offset
    assert plog.delete_old_segments() == 1  # every batch deleted, the snapshot kept
    assert plog.log_start_offset == plog.log_end_offset == 3
    reopened = producer_snapshot.empty_log_producer_state(plog, new=False)
    assert _summary(reopened) == _summary(live)
    assert producer_snapshot.empty_log_producer_state(plog, new=True).producers == {}
    fresh = PartitionLog.open(tmp_path / "u-0", LogConfig())
    assert producer_snapshot.empty_log_producer_state(fresh, new=False).producers == {}


def test_a_damaged_batch_header_takes_the_partition_offline(tmp_path):
    import pytest

    from kbroker.log.errors import LogCorruptedError

    plog, _live = _mixed_log(tmp_path)
    seg = plog._segments[0]
    second = next(pos for pos, _h in seg.batches() if pos > 0)
    with open(seg.log_path, "r+b") as f:  # the second batch's magic byte
        f.seek(second + 16)
        f.write(b"\x07")
    with pytest.raises(LogCorruptedError):
        producer_snapshot.load_state(plog)
    assert plog.offline is not None


def test_no_snapshot_for_a_log_that_never_held_a_batch(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert producer_snapshot.write_snapshot(PartitionProducerState(), plog) is None
    assert not list((tmp_path / "t-0").glob("*.producer-snapshot"))
    plog.append(_plain())
    assert producer_snapshot.write_snapshot(PartitionProducerState(), plog) is not None
