#!/usr/bin/env python3
"""Per-append cost of PartitionLog.append's hot path (one small CreateTime batch from the leader,
same leader epoch as the last batch): the Python overhead around the kernel's copy.

Appends ``--count`` batches of about 100 bytes to a fresh log in a temporary directory
(page cache only, no fsync) ``--repeat`` times and prints the best and median microseconds per
append, in CPU time of this process and in wall-clock time. Run it from two checkouts to compare
two versions of the log (the path of the checkout this script is in is the one measured).

With ``--rebuild`` it measures instead the one-time cost of rebuilding the leader epoch cache
from the batch headers at open (a log without a ``leader-epoch-checkpoint`` file): a log of
``--count`` batches with a new epoch every 1,000 batches, opened with and without the file.

Usage: .venv/bin/python scripts/bench_append_hot.py [--count 200000] [--repeat 5] [--dir DIR] [--rebuild]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kbroker.log import LogConfig, PartitionLog  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402


def run(directory: Path, batch: bytes, count: int) -> tuple[float, float]:
    log = PartitionLog.open(directory, LogConfig())
    append = log.append
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(count):
            append(batch, leader_epoch=3)
        cpu1, wall1 = time.process_time(), time.perf_counter()
    finally:
        log.close(clean=False)
    return (cpu1 - cpu0) / count * 1e6, (wall1 - wall0) / count * 1e6


def rebuild(directory: Path, batch: bytes, count: int, repeat: int) -> None:
    log = PartitionLog.open(directory, LogConfig())
    for i in range(count):
        log.append(batch, leader_epoch=i // 1000)
    log.close()
    extra = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        PartitionLog.open(directory, LogConfig()).close()
        t1 = time.perf_counter()
        (directory / "leader-epoch-checkpoint").unlink()
        t2 = time.perf_counter()
        PartitionLog.open(directory, LogConfig()).close()
        t3 = time.perf_counter()
        extra.append(((t3 - t2) - (t1 - t0)) / count * 1e6)
        print(f"open with the file {t1 - t0:.3f} s, rebuilding it {t3 - t2:.3f} s")
    print(f"rebuild: best {min(extra):.2f} us, median {statistics.median(extra):.2f} us per batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    batch = build_batch([Record(key=b"key", value=b"v" * 40, timestamp=int(time.time() * 1000))])
    if args.rebuild:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            print(f"{args.count} batches of {len(batch)} bytes, a new epoch every 1,000")
            rebuild(Path(tmp) / "bench", batch, args.count, args.repeat)
        return
    cpu, wall = [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for i in range(args.repeat):
            c, w = run(Path(tmp) / f"bench-{i}", batch, args.count)
            cpu.append(c)
            wall.append(w)
    print(f"code: {Path(__file__).resolve().parents[1]}")
    print(f"{args.count} appends of {len(batch)}-byte batches, {args.repeat} repeats")
    print(f"CPU  us/append: best {min(cpu):.3f}  median {statistics.median(cpu):.3f}")
    print(f"wall us/append: best {min(wall):.3f}  median {statistics.median(wall):.3f}")


if __name__ == "__main__":
    main()
