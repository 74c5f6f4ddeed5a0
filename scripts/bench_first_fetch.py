"""Time of the first Fetch of a large topic written by a plain (non-idempotent) producer (issue 23).

A broker (``kbroker.testing.BrokerThread``, a data dir under /tmp) gets a topic of ``--partitions``
partitions filled with ``--mb`` MB of 1 KiB records in batches of 64 (one Produce request carries
one batch per partition), then one Fetch (v11, read_uncommitted, 1 MiB per partition, from offset
0 of every partition) is timed from send to answer; then a second Fetch, for comparison. Modes:

- ``fresh``: the first Fetch right after the writes, as in the ceiling benchmark
  (bench/NOTES.md "The ceiling");
- ``restart``: the same after a clean stop and a start on the same data dir;
- ``unclean``: after a stop whose producer snapshots are deleted (as after a crash: the state is
  rebuilt from the log);
``--tree DIR``: import kbroker from another checkout (e.g. ``git archive <commit> kbroker | tar -x
-C DIR``) for a before/after on the same machine; the rounds interleave the trees.

    .venv/bin/python scripts/bench_first_fetch.py --mb 500 --rounds 3 --tree /tmp/lso-base --tree .

Measured 2026-12-07 00:37-00:56 UTC (load ~15, 3 rounds each, interleaved; base = main b262820,
after = branch lso): ``fresh`` first Fetch median 1,324 ms (1,069-1,605) before, 372 ms (280-558)
after (df13e89; second Fetch 159-500 ms in both); ``unclean`` 2,219 ms (1,596-3,036) before,
752 ms (568-797) after (67c15cf, header walk). At 01:01-01:08 UTC (load falling 15 -> 5, 2 rounds
each, after = 0d474ba, the header-only snapshot check): ``restart`` 424 / 814
ms before, 65 / 352 ms after; ``fresh`` 143 / 196 ms before, 40 / 41 ms after (= the second Fetch,
38-42 ms: no producer-state work left in the first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_one(args: argparse.Namespace) -> dict[str, object]:
    """One round in this process (kbroker imported from ``args.one``)."""
    sys.path.insert(0, str(Path(args.one).resolve()))
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from wire import Wire, create_topic

    import kbroker
    from kbroker.testing import BrokerThread
    from kbroker_protocol.messages import REQUESTS
    from kbroker_protocol.records import Record, build_batch

    P, F = REQUESTS[0], REQUESTS[1]
    data_dir = tempfile.mkdtemp(prefix="first-fetch-")
    value = b"x" * 1024
    per_request = args.partitions * 64 * 1024
    requests = max(1, args.mb * 1_000_000 // per_request)

    def fetch(w: Wire) -> tuple[float, int]:
        parts = [F.FetchTopic.FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=0,
                                             log_start_offset=-1, partition_max_bytes=1 << 20)
                 for p in range(args.partitions)]
        t0 = time.perf_counter()
        resp = w.call(1, 11, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=64 << 20, isolation_level=0,
                      session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic="big", partitions=parts)],
                      forgotten_topics_data=[], rack_id="")
        ms = (time.perf_counter() - t0) * 1000
        return ms, sum(len(p.records or b"") for p in resp.responses[0].partitions)

    try:
        with BrokerThread(data_dir=data_dir) as b:
            w = Wire(b.bootstrap_servers, timeout=300)
            create_topic(w, "big", args.partitions)
            for _ in range(requests):
                batch = build_batch([Record(key=None, value=value, timestamp=1_700_000_000_000) for _ in range(64)])
                data = P.TopicProduceData(name="big", partition_data=[
                    P.TopicProduceData.PartitionProduceData(index=p, records=batch) for p in range(args.partitions)])
                w.call(0, 9, transactional_id=None, acks=1, timeout_ms=30000, topic_data=[data])
            if args.mode == "fresh":
                first = fetch(w)
                second = fetch(w)
            w.close()
        if args.mode != "fresh":
            if args.mode == "unclean":
                for snap in Path(data_dir).rglob("big-*/*.producer-snapshot"):
                    snap.unlink()
            t0 = time.perf_counter()
            with BrokerThread(data_dir=data_dir) as b:
                started_ms = (time.perf_counter() - t0) * 1000
                w = Wire(b.bootstrap_servers, timeout=300)
                first = fetch(w)
                second = fetch(w)
                w.close()
        else:
            started_ms = 0.0
        return {"tree": str(args.one), "kbroker": kbroker.__file__, "mode": args.mode, "mb": args.mb,
                "requests": requests, "first_ms": round(first[0], 1), "first_bytes": first[1],
                "second_ms": round(second[0], 1), "start_ms": round(started_ms, 1)}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=("fresh", "restart", "unclean"), default="fresh")
    ap.add_argument("--tree", action="append", default=[])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args)), flush=True)
        return
    trees = args.tree or ["."]
    results: dict[str, list[dict[str, object]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else list(reversed(trees))
        for tree in order:
            cmd = [sys.executable, __file__, "--one", tree, "--mb", str(args.mb), "--partitions",
                   str(args.partitions), "--mode", args.mode]
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            results[tree].append(row)
    for tree, rows in results.items():
        firsts = sorted(float(str(r["first_ms"])) for r in rows)
        print(f"{tree}: mode {args.mode}, first Fetch ms median {statistics.median(firsts):.0f} "
              f"(all {', '.join(f'{x:.0f}' for x in firsts)}); second Fetch ms "
              f"{', '.join(str(r['second_ms']) for r in rows)}")


if __name__ == "__main__":
    main()
