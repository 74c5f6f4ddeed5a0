"""A read at the log's tail finds its batch from the segment's last tracked batch (no file read),
and answers exactly what the index and batch walk answer (kbroker/log/segment.py ``tail_batch_at``)."""

from __future__ import annotations

import os

import pytest
from log_batches import split_batches, value_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log import segment as segment_module
from kbroker.log.segment import LogSegment


def offsets(data: bytes) -> list[tuple[int, int]]:
    return [(base, last) for base, last, _ in split_batches(data)]


def _answers(log: PartitionLog) -> list[object]:
    """Every read of the log (each offset, several byte limits, max offsets, min-one or not) as
    (slice positions and sizes, next offset), or the error it raised."""
    out: list[object] = []
    end = log.log_end_offset
    for start in range(log.log_start_offset, end + 1):
        for max_bytes in (0, 1, 150, 10**6):
            for max_offset in (None, end, max(start, end - 1), start + 1):
                for min_one in (True, False):
                    try:
                        r = log.read(start, max_bytes, max_offset=max_offset, min_one_batch=min_one)
                    except Exception as exc:  # noqa: BLE001 - the error is part of the answer
                        out.append(type(exc).__name__)
                        continue
                    out.append(([(s.position, s.size) for s in r.slices], r.next_offset))
    return out


def _without_tail(monkeypatch: pytest.MonkeyPatch, log: PartitionLog) -> list[object]:
    with monkeypatch.context() as m:
        m.setattr(LogSegment, "tail_batch_at", lambda self, offset: None)
        return _answers(log)


def test_reads_with_the_tail_batch_answer_as_the_index_walk_does(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=600, index_interval_bytes=100))
    for i in range(25):  # batches of 1-3 records, of varied sizes, over several segments
        log.append(value_batch([b"v" * (7 * i)] * (1 + i % 3)))
    log.high_watermark = log.log_end_offset
    assert len(log.segments) > 2
    assert _answers(log) == _without_tail(monkeypatch, log)
    # a truncation into the last segment, then new batches of other sizes
    log.truncate_to(log.log_end_offset - 4)
    assert _answers(log) == _without_tail(monkeypatch, log)
    for i in range(3):
        log.append(value_batch([b"w" * (40 + i)] * 2))
    log.high_watermark = log.log_end_offset
    assert _answers(log) == _without_tail(monkeypatch, log)
    # a log loaded from disk has no tail batch until its next append
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=600, index_interval_bytes=100))
    log.high_watermark = log.log_end_offset
    assert log.segments[-1].tail_batch is None
    assert _answers(log) == _without_tail(monkeypatch, log)
    log.append(value_batch([b"z"] * 2))
    log.high_watermark = log.log_end_offset
    assert _answers(log) == _without_tail(monkeypatch, log)
    log.close()


def test_a_read_of_the_last_batch_does_not_read_the_file(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(index_interval_bytes=100))
    for _ in range(10):
        log.append(value_batch([b"x" * 50] * 3))
    log.high_watermark = log.log_end_offset
    reads: list[int] = []
    real = os.pread

    def counting(fd: int, n: int, pos: int) -> bytes:
        reads.append(pos)
        return real(fd, n, pos)

    monkeypatch.setattr(segment_module.os, "pread", counting)
    for offset in (27, 28, 29):  # the last batch's three offsets
        result = log.read(offset, 10**6)
        assert [(s.position, s.size) for s in result.slices] == [(log.segments[-1].size - result.size, result.size)]
        assert result.next_offset == 30
    assert reads == []
    monkeypatch.undo()
    assert offsets(log.read(29, 10**6).read()) == [(27, 29)]
    log.close()
