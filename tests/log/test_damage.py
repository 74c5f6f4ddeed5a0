"""Damaged files: torn tails are cut, indexes rebuilt, damage inside the log takes the partition offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from log_batches import make_batch, split_batches

from kbroker.log import LogConfig, LogCorruptedError, PartitionLog
from kbroker_protocol.record_batch import validate_batch

CONFIG = LogConfig(segment_bytes=2000, index_interval_bytes=150)


def fill(directory: Path, batches: int = 60) -> list[bytes]:
    log = PartitionLog.open(directory, CONFIG)
    for i in range(batches):
        log.append(make_batch([(b"k%d" % i, b"value-%d" % i * (1 + i % 4), 1000 + i)]))
    data = [raw for _, _, raw in split_batches(log.read(0, 10**9).read())]
    log.close()
    return data


def segment_files(directory: Path, suffix: str) -> list[Path]:
    return sorted(directory.glob("*" + suffix))


def crash(directory: Path) -> None:
    """Make the last close look unclean (no marker) with the recovery point at the start."""
    (directory / ".kafka_cleanshutdown").unlink(missing_ok=True)
    (directory / "log-state.checkpoint").unlink(missing_ok=True)


def stored(log: PartitionLog) -> list[bytes]:
    return [raw for _, _, raw in split_batches(log.read(log.log_start_offset, 10**9).read())]


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("cut", [1, 20, 61, 70])
def test_truncated_tail_of_last_segment_is_cut_to_whole_batches(tmp_path, cut):
    d = tmp_path / "t-0"
    data = fill(d)
    crash(d)
    last = segment_files(d, ".log")[-1]
    os.truncate(last, last.stat().st_size - cut)
    log = PartitionLog.open(d, CONFIG)
    assert stored(log) == data[:-1]
    assert log.append(make_batch([(None, b"after", 1)])).first_offset == len(data) - 1
    assert stored(log)[-1] == make_batch([(None, b"after", 1)], base_offset=len(data) - 1)


def test_truncated_tail_after_clean_shutdown_is_cut_too(tmp_path):
    d = tmp_path / "t-0"
    data = fill(d)
    last = segment_files(d, ".log")[-1]
    os.truncate(last, last.stat().st_size - 5)
    log = PartitionLog.open(d, CONFIG)
    assert stored(log) == data[:-1]


@pytest.mark.parametrize("garbage", [b"\x00" * 100, b"\xff" * 7, os.urandom(500)])
@pytest.mark.parametrize("clean", [True, False])
def test_garbage_appended_to_the_tail_is_cut(tmp_path, garbage, clean):
    d = tmp_path / "t-0"
    data = fill(d)
    if not clean:
        crash(d)
    with open(segment_files(d, ".log")[-1], "ab") as f:
        f.write(garbage)
    log = PartitionLog.open(d, CONFIG)
    assert log.offline is None
    assert stored(log) == data
    assert log.append(make_batch([(None, b"x", 1)])).first_offset == len(data)
    log.close()
    assert stored(PartitionLog.open(d, CONFIG)) == data + [make_batch([(None, b"x", 1)], base_offset=len(data))]


@pytest.mark.parametrize("damage", ["zeroed", "missing", "truncated", "garbage"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
@pytest.mark.parametrize("clean", [True, False])
def test_damaged_or_missing_indexes_are_rebuilt(tmp_path, damage, suffix, clean):
    d = tmp_path / "t-0"
    data = fill(d)
    if not clean:
        crash(d)
    for path in segment_files(d, suffix):
        size = path.stat().st_size
        if damage == "zeroed":
            path.write_bytes(b"\x00" * max(size, 24))
        elif damage == "missing":
            path.unlink()
        elif damage == "truncated":
            os.truncate(path, max(size - 3, 0))
        else:
            path.write_bytes(os.urandom(max(size, 24)))
    log = PartitionLog.open(d, CONFIG)
    assert stored(log) == data
    for i in range(0, len(data), 7):
        assert [raw for _, _, raw in split_batches(log.read(i, 1).read())] == [data[i]]
        assert log.offset_for_timestamp(1000 + i) == (i, 1000 + i)
    assert log.offset_for_timestamp(-3) == (len(data) - 1, 1000 + len(data) - 1)
    for path in segment_files(d, suffix):
        assert path.exists()


def test_truncated_older_segment_takes_partition_offline(tmp_path):
    d = tmp_path / "t-0"
    fill(d)
    first = segment_files(d, ".log")[0]
    os.truncate(first, first.stat().st_size - 10)
    log = PartitionLog.open(d, CONFIG)
    assert isinstance(log.offline, LogCorruptedError)
    assert log.offline.path == first
    with pytest.raises(LogCorruptedError):
        log.read(0, 100)
    with pytest.raises(LogCorruptedError):
        log.append(make_batch([(None, b"x", 1)]))
    # Nothing was deleted: the files stay for an operator.
    assert first.stat().st_size > 0


def flip_inside_batch(d: Path, segment: int, batch: int) -> tuple[Path, int]:
    """Flip a byte inside the records of the ``batch``-th batch of the ``segment``-th segment."""
    path = segment_files(d, ".log")[segment]
    raw = path.read_bytes()
    batches = split_batches(raw)
    pos = sum(len(b) for _, _, b in batches[:batch])
    flip_byte(path, pos + 61 + 2)
    return path, batches[batch][0]


@pytest.mark.parametrize("batch", [0, 2])
def test_flipped_byte_in_older_segment_found_by_recovery(tmp_path, batch):
    d = tmp_path / "t-0"
    fill(d)
    crash(d)
    path, offset = flip_inside_batch(d, 0, batch)
    log = PartitionLog.open(d, CONFIG)
    assert log.offline is not None
    assert (log.offline.path, log.offline.offset) == (path, offset)
    with pytest.raises(LogCorruptedError) as info:
        log.read(offset + 5, 100)
    assert info.value.offset == offset


def test_flipped_byte_in_old_data_after_clean_shutdown_is_caught_on_first_read(tmp_path):
    d = tmp_path / "t-0"
    data = fill(d)
    path, offset = flip_inside_batch(d, 1, 1)
    log = PartitionLog.open(d, CONFIG)
    assert log.offline is None
    # Data before the damage is served; the damaged batch is never served.
    assert [raw for _, _, raw in split_batches(log.read(0, 1).read())] == data[:1]
    with pytest.raises(LogCorruptedError) as info:
        log.read(0, 10**9)
    assert (info.value.path, info.value.offset) == (path, offset)
    assert log.offline is info.value
    with pytest.raises(LogCorruptedError):
        log.read(0, 1)


def test_flipped_byte_with_full_verification_takes_partition_offline_at_open(tmp_path):
    d = tmp_path / "t-0"
    fill(d)
    path, offset = flip_inside_batch(d, 1, 0)
    log = PartitionLog.open(d, CONFIG, verify="full")
    assert log.offline is not None and (log.offline.path, log.offline.offset) == (path, offset)


def test_flipped_byte_in_flushed_part_of_last_segment_takes_partition_offline(tmp_path):
    d = tmp_path / "t-0"
    fill(d)
    (d / ".kafka_cleanshutdown").unlink()  # unclean, but the checkpointed recovery point is the end
    path, offset = flip_inside_batch(d, -1, 0)
    log = PartitionLog.open(d, CONFIG)
    assert log.offline is not None and (log.offline.path, log.offline.offset) == (path, offset)


def test_flipped_byte_in_unflushed_tail_is_treated_as_torn_write(tmp_path):
    d = tmp_path / "t-0"
    data = fill(d)
    crash(d)  # recovery point 0: everything is "unflushed" as far as recovery knows
    last = segment_files(d, ".log")[-1]
    count = len(split_batches(last.read_bytes()))
    _, offset = flip_inside_batch(d, -1, count - 2)
    log = PartitionLog.open(d, CONFIG)
    assert log.offline is None
    assert stored(log) == data[:offset]
    for raw in stored(log):
        validate_batch(raw)


def test_other_partitions_keep_serving(tmp_path):
    good, bad = tmp_path / "t-0", tmp_path / "t-1"
    data = fill(good)
    fill(bad)
    crash(bad)
    flip_inside_batch(bad, 0, 0)
    logs = [PartitionLog.open(good, CONFIG), PartitionLog.open(bad, CONFIG)]
    assert logs[1].offline is not None
    assert stored(logs[0]) == data
