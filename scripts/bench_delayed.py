#!/usr/bin/env python3
"""What delayed delivery (kbroker/delayed.py) adds to the Produce hot path.

Every produced batch is asked ``may_carry_delay(batch)`` before the normal append. Without the
header it answers False and the batch takes the normal path; this measures that check against
what the normal path already pays for the same batch: the record validation
(``protocol.record_validation.validate_records``, inline). Process CPU time per batch, best of 5
rounds; batches of 1 KiB records without headers (the common case) and with ordinary headers.

    .venv/bin/python scripts/bench_delayed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kbroker.delayed import may_carry_delay  # noqa: E402
from protocol.record_batch import parse_header  # noqa: E402
from protocol.record_validation import Policy, validate_records  # noqa: E402
from protocol.records import Record, build_batch  # noqa: E402

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _batch(records: int, size: int, codec: int, headers: bool) -> bytes:
    value = os.urandom(size // 2).hex().encode()[:size]
    hdrs = (("trace-id", b"0123456789abcdef"), ("source", b"bench")) if headers else ()
    return build_batch([Record(key=b"k%d" % i, value=value, timestamp=1_700_000_000_000 + i, headers=hdrs)
                        for i in range(records)], compression=codec)


def _cpu_per_call(fn, batch, n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            fn(batch)
        best = min(best, (time.process_time() - t0) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    policy = Policy(topic_partition="bench-0", now_ms=1_700_000_000_000, max_message_bytes=1 << 30,
                    compacted=False, log_append_time=False, before_max_ms=2**62, after_max_ms=2**62,
                    target_codec=None, compression_level=None, max_decompressed=1 << 30)
    print(f"{'batch':<34}{'check us':>10}{'validation us':>15}{'check/validation':>18}")
    for records, size in ((16, 1024), (64, 1024), (1000, 1024)):
        for codec_name, codec in CODECS.items():
            for headers in (False, True):
                batch = _batch(records, size, codec, headers)
                assert not may_carry_delay(batch)
                header = parse_header(batch)
                n = max(3, 2000 // records)
                check = _cpu_per_call(may_carry_delay, batch, n, args.rounds)
                validate = _cpu_per_call(lambda b, h=header: validate_records(b, h, policy), batch, n, args.rounds)
                label = f"{records} x {size} B {codec_name}{' +headers' if headers else ''}"
                print(f"{label:<34}{check * 1e6:>10.1f}{validate * 1e6:>15.1f}{check / validate:>17.0%}")


if __name__ == "__main__":
    main()
