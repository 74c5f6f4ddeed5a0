"""Model-based test: random sequences of RaftLog operations (appends of several entries, flushes,
truncations anywhere, snapshots, installs, crashes) on MetadataLog and FileRaftLog, each checked
after every step against MemoryLog (the reference: a crash keeps exactly the flushed prefix)."""

from __future__ import annotations

import random

import pytest

from kbroker.metadata.metadata_log import MetadataLog, snapshot_records
from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.log import Entry, MemoryLog, Snapshot


def observable(log, metadata: bool) -> tuple:
    snap = log.snapshot
    data = None
    if snap is not None:
        data = tuple(snapshot_records(snap.data)) if metadata else tuple(snap.data.split(b"|"))
    return (
        log.start_offset, log.end_offset, log.flushed_end, log.last_epoch,
        snap.snapshot_id if snap else None, data,
        log.read(log.start_offset, log.end_offset - log.start_offset),
        tuple(log.end_offset_for_epoch(e) for e in range(-1, 12)),
        tuple(log.epoch_at(o) for o in range(log.start_offset, log.end_offset + 1)),
    )


def reference_observable(ref: MemoryLog) -> tuple:
    snap = ref.snapshot
    return (
        ref.start_offset, ref.end_offset, ref.flushed_end, ref.last_epoch,
        snap.snapshot_id if snap else None, tuple(snap.data) if snap else None,
        ref.read(ref.start_offset, ref.end_offset - ref.start_offset),
        tuple(ref.end_offset_for_epoch(e) for e in range(-1, 12)),
        tuple(ref.epoch_at(o) for o in range(ref.start_offset, ref.end_offset + 1)),
    )


@pytest.mark.parametrize("impl", ["metadata", "file"])
@pytest.mark.parametrize("seed", range(12))
def test_random_operations_match_the_memory_log(impl, seed, tmp_path):
    run(impl, seed, tmp_path)


def run(impl: str, seed: int, tmp_path) -> dict[str, int]:
    """One random history; returns how many operations of each kind it ran (over the 12 seeds of
    the suite, for the metadata log: about 240 appends, 160 flushes, 50 truncations, 45 crashes,
    35 snapshots and 14 installs)."""
    rng = random.Random(seed)
    metadata = impl == "metadata"

    def open_log():
        return MetadataLog(tmp_path / "__cluster_metadata-0", voters=(1, 2)) if metadata else FileRaftLog(tmp_path)

    def snap_data(records: list[bytes]):
        return records if metadata else b"|".join(records)

    log = open_log()
    ref = MemoryLog()
    counter = 0
    done: dict[str, int] = {}
    for step in range(45):
        op = rng.choices(["append", "flush", "truncate", "snapshot", "install", "crash"],
                         weights=[6, 4, 2, 1, 0.4, 1.2])[0]
        if op == "append":
            epoch = ref.last_epoch + rng.choice([0, 0, 0, 1, 2])
            entries = []
            if epoch > ref.last_epoch and rng.random() < 0.7:
                entries.append(Entry(epoch, rng.randrange(1, 4), control=True))
            for _ in range(rng.randrange(0 if entries else 1, 6)):
                counter += 1
                entries.append(Entry(epoch, f"r{counter}".encode() * rng.randrange(1, 4)))
            log.append(entries)
            ref.append(entries)
        elif op == "flush":
            log.flush()
            ref.flush()
        elif op == "truncate" and ref.end_offset > ref.start_offset:
            offset = rng.randrange(ref.start_offset, ref.end_offset + 1)
            log.truncate_to(offset)
            ref.truncate_to(offset)
        elif op == "snapshot" and ref.flushed_end > ref.start_offset:
            end = rng.randrange(ref.start_offset + 1, ref.flushed_end + 1)
            records = [f"state@{end}".encode(), f"step{step}".encode()]
            log.take_snapshot(end, snap_data(records))
            ref.take_snapshot(end, records)
        elif op == "install":
            end = ref.end_offset + rng.randrange(0, 20)
            epoch = ref.last_epoch + rng.randrange(0, 2)
            records = [f"installed@{end}".encode()]
            if metadata:  # what a leader would send
                from kbroker.metadata.metadata_log import encode_snapshot

                data = encode_snapshot(records, epoch)
            else:
                data = b"|".join(records)
            log.install_snapshot(Snapshot(end, epoch, data))
            ref.install_snapshot(Snapshot(end, epoch, records))
        elif op == "crash":
            log.close()  # unflushed appends are lost
            log = open_log()
            ref.crash()
        assert observable(log, metadata) == reference_observable(ref), (seed, step, op)
        done[op] = done.get(op, 0) + 1
    log.close()
    return done
