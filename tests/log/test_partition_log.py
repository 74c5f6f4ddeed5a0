"""Unit tests of PartitionLog: append, read, timestamps, truncation, log start, retention, reopen."""

from __future__ import annotations

import os
import socket

import pytest
from log_batches import make_batch, split_batches, value_batch

from kbroker.log import (
    InvalidOffsetError,
    LogConfig,
    OffsetOutOfRangeError,
    PartitionLog,
    RecordBatchTooLargeError,
)
from kbroker_protocol.record_batch import (
    TIMESTAMP_TYPE_MASK,
    InvalidRecordBatch,
    compute_crc,
    parse_header,
    validate_batch,
)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SMALL = LogConfig(segment_bytes=1000, index_interval_bytes=100)


def offsets(data: bytes) -> list[tuple[int, int]]:
    return [(base, last) for base, last, _ in split_batches(data)]


def test_append_assigns_offsets_and_patches_only_offset_and_epoch(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    batch = make_batch([(b"k", b"v1", 5), (b"k", b"v2", 7)], base_offset=999, leader_epoch=3)
    info = log.append(batch, leader_epoch=9)
    assert (info.first_offset, info.last_offset, info.num_records, info.max_timestamp) == (0, 1, 2, 7)
    info = log.append(memoryview(batch), leader_epoch=9)
    assert (info.first_offset, info.last_offset) == (2, 3)
    assert log.log_end_offset == 4
    stored = log.read(0, 10_000).read()
    assert offsets(stored) == [(0, 1), (2, 3)]
    for _, _, raw in split_batches(stored):
        header = validate_batch(raw)  # CRC still valid: the patch is outside it
        assert header.partition_leader_epoch == 9
        assert raw[16:] == batch[16:]
    assert parse_header(batch).base_offset == 999  # the input is not modified


def test_append_with_the_callers_parsed_header_stores_what_the_unpacking_append_stores(tmp_path):
    # The Produce path hands the log the header it validated (not unpacked again): same bytes, same info.
    batches = [make_batch([(b"k", b"v1", 5), (b"k", b"v2", 7)], base_offset=999, leader_epoch=3),
               make_batch([(None, b"x" * 50, 9)]), make_batch([(b"a", b"b", 4)] * 5)]
    plain = PartitionLog.open(tmp_path / "plain-0", SMALL)
    given = PartitionLog.open(tmp_path / "given-0", SMALL)
    for epoch, batch in enumerate(batches * 4):
        expected = plain.append(batch, leader_epoch=epoch // 3)
        assert given.append(batch, leader_epoch=epoch // 3, header=parse_header(batch)) == expected
    assert given.log_end_offset == plain.log_end_offset == 32
    assert given.read(0, 100_000).read() == plain.read(0, 100_000).read()


def test_rejects_malformed_input(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(max_message_bytes=200))
    batch = value_batch([b"x"])
    with pytest.raises(InvalidRecordBatch):
        log.append(batch[:-1])
    with pytest.raises(InvalidRecordBatch):
        log.append(b"")
    with pytest.raises(RecordBatchTooLargeError):
        log.append(value_batch([b"x" * 300]))
    assert log.log_end_offset == 0


def test_follower_append_keeps_offsets_and_rejects_going_back(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.append(make_batch([(None, b"a", 1)] * 3, base_offset=10), assign_offsets=False)
    assert (log.log_start_offset, log.log_end_offset) == (0, 13)
    with pytest.raises(InvalidOffsetError):
        log.append(make_batch([(None, b"a", 1)], base_offset=12), assign_offsets=False)
    log.append(make_batch([(None, b"a", 1)], base_offset=20), assign_offsets=False)
    assert log.log_end_offset == 21
    log.high_watermark = 21
    assert offsets(log.read(13, 10_000).read()) == [(20, 20)]
    assert offsets(log.read(0, 10_000).read()) == [(10, 12), (20, 20)]


def test_read_cuts_at_batch_boundaries_and_returns_one_oversized_batch(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(index_interval_bytes=50))
    sizes = []
    for i in range(20):
        batch = value_batch([b"x" * (10 * i)])
        sizes.append(len(batch))
        log.append(batch)
    for start in range(20):
        for max_bytes in (0, 1, sizes[start], sizes[start] + 1, 300, 1000, 10**6):
            result = log.read(start, max_bytes)
            got = offsets(result.read())
            assert got[0] == (start, start)
            if len(got) > 1:
                assert result.size <= max_bytes
            # Nothing more would have fitted.
            expected = start + len(got)
            if expected < 20:
                assert result.size + sizes[expected] > max_bytes
    assert log.read(20, 100).slices == []
    assert log.read(10, 10, min_one_batch=False).slices == []
    assert offsets(log.read(10, 10).read()) == [(10, 10)]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(21, 100)


def test_read_spans_segments_and_respects_max_offset(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    for i in range(40):
        log.append(value_batch([b"v%d" % i] * 2))
    assert len(log.segments) > 3
    assert offsets(log.read(0, 10**6).read()) == [(2 * i, 2 * i + 1) for i in range(40)]
    # A batch is cut if its last offset reaches max_offset.
    assert offsets(log.read(10, 10**6, max_offset=15).read()) == [(10, 11), (12, 13)]
    assert offsets(log.read(11, 10**6, max_offset=16).read()) == [(10, 11), (12, 13), (14, 15)]
    assert log.read(10, 10**6, max_offset=10).slices == []


def test_file_slice_survives_segment_deletion_and_sendfile_works(tmp_path):
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=300, retention_ms=1000), clock=clock)
    for _ in range(10):
        log.append(value_batch([b"y" * 100], timestamp=int(clock.now * 1000)))
    log.high_watermark = log.log_end_offset
    result = log.read(0, 10**6)
    expected = result.read()
    clock.now += 10
    assert log.delete_old_segments() > 0
    assert log.log_start_offset > 0
    assert not (tmp_path / "t-0" / "00000000000000000000.log").exists()
    a, b = socket.socketpair()
    with a, b:
        sent = 0
        for piece in result.slices:
            done = 0
            while done < piece.size:
                done += os.sendfile(a.fileno(), piece.file.fileno(), piece.position + done, piece.size - done)
            sent += done
        received = b""
        while len(received) < sent:
            received += b.recv(65536)
    assert received == expected


def test_offset_for_timestamp_and_max_timestamp(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=600, index_interval_bytes=60))
    stamps = [100, 300, 200, 400, 400, 350, 900, 500]
    for i in range(0, len(stamps), 2):
        log.append(make_batch([(None, b"a", stamps[i]), (None, b"b", stamps[i + 1])]))
    for target in range(0, 1000, 25):
        expected = next(((o, t) for o, t in enumerate(stamps) if t >= target), None)
        assert log.offset_for_timestamp(target) == expected, target
    assert log.offset_for_timestamp(-3) == (6, 900)
    assert log.offset_for_timestamp(-2) == (0, -1)
    assert log.offset_for_timestamp(-1) == (8, -1)


def test_log_append_time_stamps_batches(tmp_path):
    clock = FakeClock(5000.0)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(message_timestamp_type="LogAppendTime"), clock=clock)
    info = log.append(make_batch([(None, b"a", 1), (None, b"b", 2)]))
    assert info.log_append_time == 5_000_000
    (_, _, raw), = split_batches(log.read(0, 1000).read())
    header = validate_batch(raw)
    assert header.is_log_append_time and header.max_timestamp == 5_000_000
    assert log.offset_for_timestamp(4_999_999) == (0, 5_000_000)


def test_log_append_time_stamping_is_protocols(tmp_path):
    """The log stamps LogAppendTime with protocol.records.set_log_append_time (Kafka's
    setMaxTimestamp): attribute bits Kafka does not define are cleared, the CRC recomputed."""
    clock = FakeClock(5000.0)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(message_timestamp_type="LogAppendTime"), clock=clock)
    batch = bytearray(make_batch([(None, b"a", 1)]))
    batch[21] |= 0x80  # an undefined attribute bit (high byte of the int16 attributes)
    batch[17:21] = compute_crc(batch).to_bytes(4, "big")
    log.append(bytes(batch))
    (_, _, raw), = split_batches(log.read(0, 1000).read())
    header = validate_batch(raw)
    assert header.attributes == TIMESTAMP_TYPE_MASK
    assert header.max_timestamp == 5_000_000


def test_truncate_to(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    for i in range(30):
        log.append(value_batch([b"v%d" % i] * 3))
    log.high_watermark = 90
    log.truncate_to(40)  # inside batch 39..41: the whole batch goes, the log end is 40 (as Kafka)
    assert log.log_end_offset == 40
    assert log.high_watermark == 40
    assert offsets(log.read(30, 10**6).read()) == [(30, 32), (33, 35), (36, 38)]
    info = log.append(value_batch([b"new"]))
    assert info.first_offset == 40
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert log.log_end_offset == 41
    assert offsets(log.read(36, 10**6).read()) == [(36, 38), (40, 40)]
    log.truncate_to(12)  # a segment boundary
    assert log.log_end_offset == 12
    assert offsets(log.read(0, 10**6).read())[-1] == (9, 11)
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    assert log.read(0, 100).slices == []


def test_advance_log_start_deletes_whole_segments_and_persists(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    for i in range(30):
        log.append(value_batch([b"v%d" % i] * 3))
    with pytest.raises(OffsetOutOfRangeError):
        log.advance_log_start(10)  # above the high watermark
    log.high_watermark = log.log_end_offset
    first_segments = len(log.segments)
    assert log.advance_log_start(50) == 50
    assert len(log.segments) < first_segments
    assert log.segments[0].base_offset <= 50 < log.segments[0].next_offset
    with pytest.raises(OffsetOutOfRangeError):
        log.read(49, 100)
    assert offsets(log.read(50, 1).read())[0] == (48, 50)
    log.close(clean=False)
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert log.log_start_offset == 50


def test_retention_by_bytes_and_time_keeps_active_segment(tmp_path):
    clock = FakeClock()
    config = LogConfig(segment_bytes=500, retention_bytes=1200, retention_ms=-1)
    log = PartitionLog.open(tmp_path / "t-0", config, clock=clock)
    for i in range(40):
        log.append(value_batch([b"z" * 50], timestamp=i))
    log.high_watermark = log.log_end_offset
    log.delete_old_segments()
    assert log.size >= 1200 - 500 and log.size - log.segments[0].size < 1200
    log.config = LogConfig(segment_bytes=500, retention_ms=0)
    log.delete_old_segments()
    assert len(log.segments) == 1
    assert log.log_start_offset == log.segments[0].base_offset


def test_clean_and_unclean_reopen_preserve_everything(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    for i in range(25):
        log.append(make_batch([(b"k%d" % i, b"v", 1000 + i)]))
    data = log.read(0, 10**6).read()
    log.close()
    assert (tmp_path / "t-0" / ".kafka_cleanshutdown").exists()
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert not (tmp_path / "t-0" / ".kafka_cleanshutdown").exists()
    assert log.read(0, 10**6).read() == data
    assert log.offset_for_timestamp(1010) == (10, 1010)
    log.close(clean=False)
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert log.read(0, 10**6).read() == data
    assert log.offset_for_timestamp(1010) == (10, 1010)
    assert log.append(value_batch([b"x"])).first_offset == 25


def test_delete_removes_directory(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.append(value_batch([b"x"]))
    log.delete()
    assert list(tmp_path.iterdir()) == []


def test_flush_messages_fsyncs_before_append_returns(tmp_path, monkeypatch):
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_messages=1))
    for i in range(3):
        before = len(synced)
        log.append(value_batch([b"x"]))
        assert len(synced) == before + 1
        assert log.recovery_point == log.log_end_offset == i + 1
    every_3 = PartitionLog.open(tmp_path / "t-1", LogConfig(flush_messages=3))
    before = len(synced)
    every_3.append(value_batch([b"x"]))
    every_3.append(value_batch([b"x"]))
    assert len(synced) == before and every_3.recovery_point == 0
    every_3.append(value_batch([b"x"]))
    assert len(synced) == before + 1 and every_3.recovery_point == 3
    default = PartitionLog.open(tmp_path / "t-2", LogConfig())
    before = len(synced)
    for _ in range(100):
        default.append(value_batch([b"x"]))
    assert len(synced) == before and default.recovery_point == 0


def test_segment_rolls_on_time_and_on_full_index(tmp_path):
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_ms=1000), clock=clock)
    log.append(value_batch([b"a"], timestamp=5000))
    log.append(value_batch([b"b"], timestamp=5900))
    assert len(log.segments) == 1
    log.append(value_batch([b"c"], timestamp=6001))  # more than segment.ms after the first batch
    assert [s.base_offset for s in log.segments] == [0, 2]
    log = PartitionLog.open(tmp_path / "t-1", LogConfig(segment_index_bytes=16, index_interval_bytes=0))
    for _ in range(6):
        log.append(value_batch([b"x" * 10]))
    assert len(log.segments) > 1
    assert all(len(s.offset_index) <= 2 for s in log.segments)
    assert offsets(log.read(0, 10**6).read()) == [(i, i) for i in range(6)]


def test_closed_log_refuses_operations(tmp_path):
    from kbroker.log import LogClosedError

    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.close()
    with pytest.raises(LogClosedError):
        log.append(value_batch([b"x"]))
    with pytest.raises(LogClosedError):
        log.read(0, 10)


def test_iter_batches_walks_the_whole_log_across_segments(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    for i in range(40):
        log.append(value_batch([b"v%d" % i] * 2))
    log.high_watermark = log.log_end_offset
    got = [(h.base_offset, h.last_offset, validate_batch(raw).records_count) for h, raw in log.iter_batches()]
    assert got == [(2 * i, 2 * i + 1, 2) for i in range(40)]
    assert [h.base_offset for h, _ in log.iter_batches(31)] == list(range(30, 80, 2))
    result = log.read(0, 300)
    assert result.next_offset == offsets(result.read())[-1][1] + 1


def test_background_flush_runs_outside_the_lock_and_ignores_a_racing_truncation(tmp_path, monkeypatch):
    import threading

    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_ms=0))
    for _ in range(5):
        log.append(value_batch([b"x"]))
    real = os.fdatasync
    seen = []

    def other_thread():
        # Another thread (the event loop) can take the partition lock while the fsync runs.
        seen.append(log.lock.acquire(timeout=10))
        log.truncate_to(2)
        log.append(value_batch([b"y"]))
        log.lock.release()

    def fdatasync(fd):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    assert log.maybe_flush()
    assert seen == [True]
    assert log.recovery_point == 0  # the flushed data was replaced meanwhile: nothing proven
    monkeypatch.undo()
    assert log.maybe_flush()
    assert log.recovery_point == log.log_end_offset == 3


def _segment_files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in (".log", ".index", ".timeindex")}


@pytest.mark.parametrize("interval", [0, 100, 4096])
def test_single_batch_appends_lay_out_files_as_one_multi_batch_append(tmp_path, interval):
    """The one-batch hot path and the general path write the same bytes, indexes and segments."""
    config = LogConfig(segment_bytes=700, index_interval_bytes=interval)
    batches = [value_batch([b"v" * (i % 7 * 9)], timestamp=1000 + (i * 37) % 50) for i in range(60)]
    one = PartitionLog.open(tmp_path / "one-0", config)
    for batch in batches:
        one.append(batch, leader_epoch=3)
    many = PartitionLog.open(tmp_path / "many-0", config)
    # The general path takes several batches per call; cut where the one-at-a-time log rolled.
    bases = [s.base_offset for s in one.segments] + [len(batches)]
    for lo, hi in zip(bases, bases[1:]):  # noqa: B905
        many.append(b"".join(batches[lo:hi]), leader_epoch=3)
    assert [s.base_offset for s in many.segments] == bases[:-1]
    assert one.max_timestamp() == many.max_timestamp()
    for ts in (999, 1000, 1020, 1049, 1050):
        assert one.offset_for_timestamp(ts) == many.offset_for_timestamp(ts)
    one.close()
    many.close()
    assert _segment_files(tmp_path / "one-0") == _segment_files(tmp_path / "many-0")


def test_hot_path_sees_config_changes_closing_and_truncation(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for _ in range(5):
        log.append(value_batch([b"x" * 100]))
    assert len(log.segments) == 1
    # A smaller segment.bytes (a dynamic topic config change) takes effect on the next append.
    log.config = LogConfig(segment_bytes=len(value_batch([b"y" * 100])) + 10)
    log.append(value_batch([b"y" * 100]))
    assert [s.base_offset for s in log.segments] == [0, 5]
    log.append(value_batch([b"z" * 100]))
    assert [s.base_offset for s in log.segments] == [0, 5, 6]
    # Truncating the active segment to empty, then appending, starts over at the cut.
    log.truncate_to(6)
    info = log.append(value_batch([b"w"]))
    assert info.first_offset == 6
    assert offsets(log.read(5, 10**6).read()) == [(5, 5), (6, 6)]
    log.close()
    from kbroker.log import LogClosedError

    with pytest.raises(LogClosedError):
        log.append(value_batch([b"late"]))


@pytest.mark.parametrize("path", ["one-batch", "first-append", "several-batches"])
def test_a_failed_write_is_cut_off_and_the_log_goes_on(tmp_path, monkeypatch, path):
    """A write that fails half-way (ENOSPC) leaves nothing behind: the file is cut back to the
    last whole batch, the error reaches the caller, and the next append lands where it would have."""
    import errno

    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    if path != "first-append":
        for _ in range(3):
            log.append(value_batch([b"x" * 100]))
    size_before, end_before = log.size, log.log_end_offset
    real = os.pwritev

    def half_then_fail(fd, buffers, offset):
        data = b"".join(bytes(b) for b in buffers)
        real(fd, [data[: len(data) // 2]], offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", half_then_fail)
    batch = value_batch([b"y" * 100])
    with pytest.raises(OSError):
        log.append(batch + batch if path == "several-batches" else batch)
    monkeypatch.setattr(os, "pwritev", real)
    assert os.stat(log.active_segment.log_path).st_size == size_before
    assert (log.size, log.log_end_offset) == (size_before, end_before)
    assert log.append(batch).first_offset == end_before
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert offsets(reopened.read(0, 10**6).read()) == [(i, i) for i in range(end_before + 1)]
    reopened.close()


def test_high_watermark_to_end_is_the_setter_at_the_log_end(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.high_watermark_to_end()  # an empty log
    assert log.high_watermark == 0
    for i in range(5):
        log.append(value_batch([b"v%d" % i] * 3))
        log.high_watermark_to_end()
        assert log.high_watermark == log.log_end_offset == 3 * (i + 1)
    log.truncate_fully(40)  # the log starts past its old end: never below the log start
    log.high_watermark = 0
    log.high_watermark_to_end()
    assert log.high_watermark == log.log_start_offset == log.log_end_offset == 40
    log.close()
