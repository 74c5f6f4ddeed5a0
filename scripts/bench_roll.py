#!/usr/bin/env python3
"""How long the append that rolls a segment takes, with and without early write-back.

A roll fsyncs the full segment on the appending thread (the broker's event loop). This writes
16 KiB batches at a paced rate (--mb-per-s, like a steady producer) into a segment of
--segment-mib, with a thread that calls ``PartitionLog.start_writeback()`` once a second as the log
manager's maintenance thread does (or without it, --no-writeback as the control), and reports the
slowest append (the roll) and the median append. Each mode runs --repeat times, alternating.

Usage: .venv/bin/python scripts/bench_roll.py [--segment-mib 512] [--mb-per-s 150] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log import make_batch  # noqa: E402

from kbroker.log import LogConfig, PartitionLog  # noqa: E402


def run(root: Path, batch: bytes, segment_mib: int, rate: float, kick: bool) -> tuple[float, float]:
    directory = root / "roll-0"
    shutil.rmtree(directory, ignore_errors=True)
    log = PartitionLog.open(directory, LogConfig(segment_bytes=segment_mib << 20))
    stop = threading.Event()

    def maintenance() -> None:
        while not stop.wait(1.0):
            log.start_writeback()

    thread = threading.Thread(target=maintenance, daemon=True)
    if kick:
        thread.start()
    times = []
    t0 = time.perf_counter()
    written = 0
    while len(log.segments) < 2:
        start = time.perf_counter()
        log.append(batch)
        times.append(time.perf_counter() - start)
        written += len(batch)
        ahead = written / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)  # pacing, as a producer at this rate
    stop.set()
    if kick:
        thread.join()
    log.close()
    return max(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segment-mib", type=int, default=512)
    parser.add_argument("--mb-per-s", type=float, default=150.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-roll-", dir=args.dir))
    batch = make_batch(16 * 1024)
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        for i in range(args.repeat):
            for kick in ((True, False) if i % 2 == 0 else (False, True)):
                results[kick].append(run(root, batch, args.segment_mib, args.mb_per_s * 1e6, kick))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"segment {args.segment_mib} MiB written at {args.mb_per_s:.0f} MB/s in 16 KiB batches, {args.repeat} runs each")
    for kick, label in ((False, "without early write-back"), (True, "with write-back queued once a second")):
        rolls = " / ".join(f"{m * 1000:.0f}" for m, _ in results[kick])
        medians = " / ".join(f"{med * 1e6:.0f}" for _, med in results[kick])
        print(f"{label:38} slowest append (the roll): {rolls} ms; median append: {medians} µs")


if __name__ == "__main__":
    main()
