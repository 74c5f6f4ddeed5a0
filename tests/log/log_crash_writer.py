"""Child process of test_crash.py: append with flush.messages=1 and report each acknowledged batch.

Usage: log_crash_writer.py <partition dir>. Prints ``<first offset> <last offset>`` to stdout after each
append has returned (so after its fsync) and runs until killed.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from log_batches import make_batch

from kbroker.log import LogConfig, PartitionLog

CONFIG = LogConfig(segment_bytes=256 * 1024, index_interval_bytes=1024, flush_messages=1)


def batch_for(base_offset: int) -> bytes:
    """The batch the writer stores at ``base_offset`` (the test rebuilds it to compare)."""
    rng = random.Random(base_offset)
    records = [
        (b"k%d" % (base_offset + i), rng.randbytes(rng.choice([10, 100, 3000, 20000, 200_000])), 1_000_000 + base_offset + i)
        for i in range(rng.randint(1, 4))
    ]
    return make_batch(records, base_offset=base_offset)


def main() -> None:
    log = PartitionLog.open(Path(sys.argv[1]), CONFIG)
    out = sys.stdout
    batch = batch_for(log.log_end_offset)
    for _ in range(100_000):
        info = log.append(batch)
        # Build the next batch before acknowledging, so that a kill soon after an
        # acknowledgement tends to land inside the next append (write or fsync).
        batch = batch_for(log.log_end_offset)
        out.write(f"{info.first_offset} {info.last_offset}\n")
        out.flush()


if __name__ == "__main__":
    main()
