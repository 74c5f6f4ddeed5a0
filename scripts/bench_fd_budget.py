#!/usr/bin/env python3
"""The cost of the descriptor budget (kbroker/log/fd_budget.py) when it is too small.

Appends 1 KiB batches round-robin to ``--partitions`` partition logs, once with a budget larger
than the partition count (every active segment stays open) and once with a budget of half the
partitions (round-robin is the LRU's worst case: every append finds its file released and
reopens it, releasing another). Prints microseconds per append for both, best of ``--repeat``.

Usage: .venv/bin/python scripts/bench_fd_budget.py [--partitions 200] [--appends 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kbroker.log import LogConfig, PartitionLog  # noqa: E402
from kbroker.log.fd_budget import BUDGET  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402


def run(partitions: int, appends: int, budget: int) -> float:
    directory = Path(tempfile.mkdtemp(prefix="kbroker-bench-fd-"))
    try:
        BUDGET.resize(budget)
        logs = [PartitionLog.open(directory / f"t-{i}", LogConfig()) for i in range(partitions)]
        batch = build_batch([Record(key=None, value=b"x" * 1000, timestamp=int(time.time() * 1000))])
        for log in logs:  # first append of each: a roll check, not what is measured
            log.append(batch)
        reopens = BUDGET.reopens
        t0 = time.perf_counter()
        for i in range(appends):
            logs[i % partitions].append(batch)
        elapsed = time.perf_counter() - t0
        reopened = BUDGET.reopens - reopens
        for log in logs:
            log.close()
        print(f"  budget {budget:5d}: {elapsed / appends * 1e6:6.1f} us per append, {reopened} reopens")
        return elapsed / appends
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    saved = BUDGET.capacity
    try:
        fits, small = [], []
        for _ in range(args.repeat):
            fits.append(run(args.partitions, args.appends, args.partitions * 2))
            small.append(run(args.partitions, args.appends, args.partitions // 2))
    finally:
        BUDGET.resize(saved)
    print(f"{args.partitions} partitions, 1 KiB batches, round-robin; best of {args.repeat}:")
    print(f"  every file open:          {min(fits) * 1e6:6.1f} us per append")
    print(f"  budget of half of them:   {min(small) * 1e6:6.1f} us per append (a reopen per append)")


if __name__ == "__main__":
    main()
