#!/usr/bin/env python3
"""Commit throughput and latency of a three-voter KRaft quorum (RaftDriver + FileRaftLog) on
127.0.0.1, all in this process: sequential single-record proposals, then concurrent proposers.

    .venv/bin/python scripts/raft_io_bench.py [--sequential N] [--concurrent N] [--writers W] [--linger MS]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.raft.file_log import FileRaftLog  # noqa: E402
from kbroker.raft.io import RaftDriver  # noqa: E402
from kbroker.raft.node import RaftConfig, Role  # noqa: E402
from kbroker.raft.state_store import FileQuorumStateStore  # noqa: E402

VOTERS = (1, 2, 3)


async def main(args: argparse.Namespace) -> None:
    config = RaftConfig(append_linger_ms=args.linger, fetch_max_entries=512)
    with tempfile.TemporaryDirectory() as tmp:
        addresses: dict[int, tuple[str, int]] = {}
        drivers = []
        for n in VOTERS:
            d = Path(tmp) / f"node{n}"
            drv = RaftDriver(n, VOTERS, addresses, FileRaftLog(d), FileQuorumStateStore(d), config=config,
                             cluster_id="bench", rng=random.Random(n))
            addresses[n] = ("127.0.0.1", await drv.listen())
            drv.start()
            drivers.append(drv)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not any(d.node.role is Role.LEADER for d in drivers):
            if loop.time() > deadline:
                raise SystemExit("no leader elected in 30 s")
            await asyncio.sleep(0.01)
        leader = next(d for d in drivers if d.node.role is Role.LEADER)

        latencies = []
        t0 = time.perf_counter()
        for i in range(args.sequential):
            t = time.perf_counter()
            await leader.propose([b"x" * 100 + str(i).encode()])
            latencies.append(time.perf_counter() - t)
        seq = time.perf_counter() - t0
        print(f"sequential: {args.sequential} proposals in {seq:.2f} s = {args.sequential / seq:.0f} commits/s, "
              f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")

        per_writer = args.concurrent // args.writers

        async def writer(w: int) -> None:
            for i in range(per_writer):
                await leader.propose([b"y" * 100 + f"{w}-{i}".encode()])

        t0 = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(args.writers)))
        conc = time.perf_counter() - t0
        total = per_writer * args.writers
        print(f"concurrent: {args.writers} writers, {total} proposals in {conc:.2f} s = {total / conc:.0f} commits/s")
        for d in drivers:
            await d.stop()
            d.log.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequential", type=int, default=200)
    p.add_argument("--concurrent", type=int, default=5000)
    p.add_argument("--writers", type=int, default=50)
    p.add_argument("--linger", type=int, default=25, help="append_linger_ms (Kafka's quorum.append.linger.ms: 25)")
    asyncio.run(main(p.parse_args()))
