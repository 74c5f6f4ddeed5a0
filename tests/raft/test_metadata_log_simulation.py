"""The whole-quorum simulation (kbroker/raft/simulation.py) with every node's log a MetadataLog on
disk: crashes close the log without flushing and reopen it from its segments and .checkpoint files.

The simulation's values are ints and its snapshots the tuple of committed entries; ``SimLog``
stores them as bytes records and checkpoint records and gives them back, so that the simulation's
invariants (one leader per epoch, committed entries never lost or changed, identical committed
prefixes, snapshots equal to the committed log, liveness) are checked over the real files. fsync is
turned into a no-op here: a simulated crash is a close without flush, which loses the unflushed
tail whether or not the kernel has written it.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kbroker.metadata.metadata_log import MetadataLog, snapshot_records
from kbroker.raft import simulation
from kbroker.raft.log import Entry, RaftLog, Snapshot


def _enc(e: Entry) -> Entry:
    if e.control:
        return e
    return Entry(e.epoch, str(e.value).encode(), batch_end=e.batch_end)


def _dec(e: Entry) -> Entry:
    if e.control:
        return e
    return Entry(e.epoch, int(e.value), batch_end=e.batch_end)


def _snap_record(e: Entry) -> bytes:
    return f"{e.epoch}:{'c' if e.control else 'd'}:{e.value}".encode()


def _snap_entry(raw: bytes) -> Entry:
    epoch, kind, value = raw.decode().split(":")
    return Entry(int(epoch), int(value), control=kind == "c")


class SimLog(RaftLog):
    """A MetadataLog in its own directory, speaking the simulation's values."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.inner = MetadataLog(directory, voters=(1, 2, 3))
        self._snap_cache: tuple[tuple[int, int], Snapshot] | None = None

    @property
    def start_offset(self) -> int:
        return self.inner.start_offset

    @property
    def end_offset(self) -> int:
        return self.inner.end_offset

    @property
    def flushed_end(self) -> int:
        return self.inner.flushed_end

    @property
    def snapshot(self) -> Snapshot | None:
        snap = self.inner.snapshot
        if snap is None:
            return None
        if self._snap_cache is None or self._snap_cache[0] != snap.snapshot_id:
            data = tuple(_snap_entry(r) for r in snapshot_records(snap.data))
            self._snap_cache = (snap.snapshot_id, Snapshot(snap.end_offset, snap.epoch, data))
        return self._snap_cache[1]

    def entry(self, offset: int) -> Entry:
        return _dec(self.inner.entry(offset))

    def read(self, start: int, max_entries: int) -> tuple[Entry, ...]:
        return tuple(_dec(e) for e in self.inner.read(start, max_entries))

    def append(self, entries: Sequence[Entry]) -> None:
        self.inner.append([_enc(e) for e in entries])

    def truncate_to(self, offset: int) -> None:
        self.inner.truncate_to(offset)

    def flush(self) -> None:
        self.inner.flush()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self.inner.end_offset_for_epoch(epoch)

    @property
    def last_epoch(self) -> int:
        return self.inner.last_epoch

    def epoch_at(self, offset: int) -> int:
        return self.inner.epoch_at(offset)

    def take_snapshot(self, end_offset: int, data: Any) -> Snapshot:
        self.inner.take_snapshot(end_offset, [_snap_record(e) for e in data])
        return self.snapshot  # type: ignore[return-value]

    def install_snapshot(self, snapshot: Snapshot) -> None:
        records = [_snap_record(e) for e in snapshot.data]
        self.inner.install_snapshot(Snapshot(snapshot.end_offset, snapshot.epoch, records))

    def crash(self) -> None:
        self.inner.close()  # the unflushed tail is lost
        self.inner = MetadataLog(self.directory, voters=(1, 2, 3))


def use_metadata_logs(monkeypatch, tmp_path) -> list[SimLog]:
    """From now on the simulation's logs are SimLogs in ``tmp_path``; returns the list of them."""
    counter = itertools.count()
    logs: list[SimLog] = []

    def factory() -> SimLog:
        log = SimLog(tmp_path / f"log{next(counter)}" / "__cluster_metadata-0")
        logs.append(log)
        return log

    monkeypatch.setattr(simulation, "MemoryLog", factory)
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
    return logs


SEEDS = {"3-voters": range(1, 7), "5-voters-crashes": range(3), "1-voter": range(3)}
CASES = [(name, seed) for name, seeds in SEEDS.items() for seed in seeds]


@pytest.mark.parametrize(("scenario", "seed"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_simulation_over_metadata_logs(monkeypatch, tmp_path, scenario, seed):
    """The invariants hold over the files, and the run is the very run the in-memory logs give
    (same events, same committed log): MetadataLog behaves as MemoryLog, crashes included."""
    reference = simulation.Simulation(seed, simulation.SCENARIOS[scenario])
    reference.run()
    logs = use_metadata_logs(monkeypatch, tmp_path)
    sim = simulation.Simulation(seed, simulation.SCENARIOS[scenario])
    try:
        sim.run()
    finally:
        for log in logs:
            log.inner.close()
    assert isinstance(sim.logs[1], SimLog)
    assert len(sim.committed) > 10 and sim.stops > 0
    assert (sim.committed, sim.events, sim.now, sim.snapshot_loads) == (
        reference.committed, reference.events, reference.now, reference.snapshot_loads)
    # the logs really are Kafka partition directories
    for log in logs:
        assert list(log.directory.glob("*.log"))


def test_the_adapter_really_reopens_from_disk(tmp_path):
    log = SimLog(Path(tempfile.mkdtemp(dir=tmp_path)) / "__cluster_metadata-0")
    log.append([Entry(1, 1, control=True), Entry(1, 7)])
    log.flush()
    log.append([Entry(1, 8)])
    log.crash()
    assert log.read(0, 10) == (Entry(1, 1, control=True), Entry(1, 7))
    log.take_snapshot(2, (Entry(1, 1, control=True), Entry(1, 7)))
    log.crash()
    assert log.snapshot == Snapshot(2, 1, (Entry(1, 1, control=True), Entry(1, 7)))
    log.inner.close()
