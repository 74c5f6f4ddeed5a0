#!/usr/bin/env python3
"""Produce latency and throughput with replication, in one process.

Starts ``--brokers`` kbroker brokers in one event loop (the harness of ``tests/replication``: the
same metadata records given to each, no controller), creates one topic per case and sends
``--requests`` Produce requests of ``--records`` records of ``--record-size`` random bytes, one
at a time (the next sent when the previous is answered), to the partition's leader over TCP.
Cases: RF=1 acks=1, RF=1 acks=all, RF=N acks=1, RF=N acks=all. Prints, per case, the requests
per second, MB/s and the p50/p99 request latency in milliseconds.

Everything (brokers, followers' fetchers, the client) shares one core and one event loop, so
the figures compare the cases with each other; they are not what separate processes reach.

Usage: .venv/bin/python scripts/bench_replication.py [--brokers 3] [--requests 2000] [--records 10]
       [--record-size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.replication.harness import Cluster, batch, produce  # noqa: E402


async def _case(cluster: Cluster, name: str, rf: int, acks: int, args: argparse.Namespace) -> None:
    cluster.create_topic(name, [list(range(1, rf + 1))])
    conn = await cluster.connect(1)
    payload = [os.urandom(args.record_size) for _ in range(args.records)]
    latencies = []
    try:
        await produce(conn, name, batch(payload), acks=acks)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.requests):
            start = time.perf_counter()
            resp = await produce(conn, name, batch(payload), acks=acks)
            latencies.append(time.perf_counter() - start)
            code = resp.responses[0].partition_responses[0].error_code
            if code != 0:
                raise SystemExit(f"{name}: produce answered error {code}")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    latencies.sort()
    mb = args.requests * args.records * args.record_size / 1e6
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"RF={rf} acks={'all' if acks == -1 else acks:>3}: {args.requests / elapsed:8.0f} requests/s "
          f"{mb / elapsed:7.2f} MB/s  p50 {statistics.median(latencies) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms")


async def main(args: argparse.Namespace) -> None:
    async with Cluster(args.brokers) as cluster:
        for rf, acks in ((1, 1), (1, -1), (args.brokers, 1), (args.brokers, -1)):
            await _case(cluster, f"bench-rf{rf}-acks{acks}".replace("-1", "all"), rf, acks, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--record-size", type=int, default=100)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
