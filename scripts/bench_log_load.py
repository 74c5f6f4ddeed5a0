"""Loading N partition logs at start-up, after a crash or a clean stop (issue 23, the partitions curve's
start-up and recovery at 10,000 partitions).

Makes N partition directories (``t-0`` .. ``t-N-1``) in a temporary log dir, each with a few
appended batches, then leaves them either as a crash does (``--mode unclean``: the logs are never
closed, so no clean-shutdown marker, and their data is past the recovery point) or closed cleanly
(``--mode clean``), and times ``LogManager(...)`` loading them, for each ``--threads`` value
(``num.recovery.threads.per.data.dir``) in turn, the same prepared copy of the logs each time
(re-made before every load, outside the timing).

    .venv/bin/python scripts/bench_log_load.py --partitions 10000 --threads 1,2 --rounds 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbroker.log import LogConfig, PartitionLog  # noqa: E402
from kbroker.log.log_manager import LogManager  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402


def prepare(src: Path, partitions: int, batches: int, clean: bool) -> None:
    config = LogConfig()
    batch = build_batch([Record(key=None, value=b"v" * 1024, timestamp=1_700_000_000_000)])
    for p in range(partitions):
        log = PartitionLog.open(src / f"t-{p}", config)
        for _ in range(batches):
            log.append(batch)
        if clean:
            log.close()
        # else: dropped without close, as kill -9 leaves it (no marker, data past the recovery point)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=2, help="1 KiB one-record batches per partition")
    ap.add_argument("--mode", choices=["unclean", "clean"], default="unclean")
    ap.add_argument("--threads", default="1,2", help="num.recovery.threads.per.data.dir values to time")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where the logs go (default: $TMPDIR)")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-log-load-", dir=a.dir))
    src = base / "prepared"
    try:
        t0 = time.monotonic()
        prepare(src, a.partitions, a.batches, a.mode == "clean")
        print(f"prepared {a.partitions} partitions ({a.mode}) in {time.monotonic() - t0:.1f} s", flush=True)
        results: dict[int, list[float]] = {}
        for rnd in range(a.rounds):
            counts = [int(x) for x in a.threads.split(",")]
            for threads in counts if rnd % 2 == 0 else counts[::-1]:
                work = base / "load"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(src, work)
                la = float(Path("/proc/loadavg").read_text().split()[0])
                t0 = time.monotonic()
                manager = LogManager([work], LogConfig(), recovery_threads=threads)
                elapsed = time.monotonic() - t0
                loaded = len(manager.partitions())
                manager.close()
                results.setdefault(threads, []).append(elapsed)
                print(f"threads {threads}: loaded {loaded} in {elapsed:.2f} s (load average {la:.1f})", flush=True)
        for threads, times in results.items():
            print(f"threads {threads}: median {statistics.median(times):.2f} s, runs "
                  + " / ".join(f"{t:.2f}" for t in times))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
