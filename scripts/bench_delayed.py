#!/usr/bin/env python3
"""What delayed delivery (kbroker/delayed.py) adds to the Produce hot path.

A delay header is noticed where the record validation (``kbroker_protocol.record_validation``) already
reads header keys (``kbroker_protocol.record_walk._skip_headers``): a batch without headers pays nothing
more, one with headers a 16-byte comparison per header key of 16 bytes or more. This measures the
inline validation of the same batches in two source trees (this one, and e.g. main before the
change: ``--tree``). Process CPU time per batch, best of N rounds; 1 KiB records without headers
(the common case) and with two ordinary headers (``trace-id-of-request``, 19 bytes: compared).

    .venv/bin/python scripts/bench_delayed.py [--rounds 7]
    .venv/bin/python scripts/bench_delayed.py --tree /work/main
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", default=os.path.join(os.path.dirname(__file__), ".."))
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.tree))
    import kbroker_protocol
    from kbroker_protocol.record_batch import parse_header
    from kbroker_protocol.record_validation import Policy, validate_records
    from kbroker_protocol.records import Record, build_batch
    print(f"tree: {os.path.dirname(os.path.dirname(kbroker_protocol.__file__))}")
    policy = Policy(topic_partition="bench-0", now_ms=1_700_000_000_000, max_message_bytes=1 << 30,
                    before_max_ms=2**62, after_max_ms=2**62, max_decompressed=1 << 30)
    print(f"{'batch':<36}{'validation us':>14}")
    for records in (16, 64, 1000):
        for codec_name, codec in (("none", 0), ("lz4", 3), ("zstd", 4)):
            for headers in (False, True):
                value = (b"0123456789abcdef" * 64)[:1024]
                hdrs = (("trace-id-of-request", b"0123456789abcdef"), ("source", b"bench")) if headers else ()
                batch = build_batch([Record(key=b"k%d" % i, value=value, timestamp=1_700_000_000_000 + i,
                                            headers=hdrs) for i in range(records)], compression=codec)
                header = parse_header(batch)
                n = max(3, 2000 // records)
                best = float("inf")
                for _ in range(args.rounds):
                    t0 = time.process_time()
                    for _ in range(n):
                        validate_records(batch, header, policy)
                    best = min(best, (time.process_time() - t0) / n)
                label = f"{records} x 1 KiB {codec_name}{' +2 headers' if headers else ''}"
                print(f"{label:<36}{best * 1e6:>14.1f}")


if __name__ == "__main__":
    main()
