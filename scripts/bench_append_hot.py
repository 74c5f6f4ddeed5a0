#!/usr/bin/env python3
"""Per-append cost of PartitionLog.append's hot path (one small CreateTime batch from the leader,
same leader epoch as the last batch): the Python overhead around the kernel's copy.

Appends ``--count`` batches of about 100 bytes to a fresh log in a temporary directory
(page cache only, no fsync) ``--repeat`` times and prints the best and median microseconds per
append, in CPU time of this process and in wall-clock time. Run it from two checkouts to compare
two versions of the log (the path of the checkout this script is in is the one measured).

Usage: .venv/bin/python scripts/bench_append_hot.py [--count 200000] [--repeat 5] [--dir DIR]
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
from protocol.records import Record, build_batch  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    batch = build_batch([Record(key=b"key", value=b"v" * 40, timestamp=int(time.time() * 1000))])
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
