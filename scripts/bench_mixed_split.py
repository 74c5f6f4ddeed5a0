#!/usr/bin/env python3
"""The mixed load of `bench_scale.py mixed`, instrumented: where a record's end-to-end latency goes.

    .venv/bin/python scripts/bench_mixed_split.py [--tree old=/path/to/tree] [--tree new=.] [--no-kafka]
                                                  [--reps 3] [--seconds 30] [--rate 1000] [--append-time]

Runs the same load as `bench_scale.py mixed` (4 keyed librdkafka producers, a 4-member consumer
group, 16 partitions, retention deleting 1 MiB segments) against each kbroker tree given and
Apache Kafka 4.4, interleaved (the order alternates between repetitions), on a fresh broker each
run, and prints one JSON line per run, then the medians. Besides the end-to-end percentiles:

- `--append-time`: both brokers get `message.timestamp.type=LogAppendTime`, so each consumed
  record carries the broker's append time and its latency splits into send -> append (producer
  linger, the Produce round trip up to the append) and append -> consumer (the wait for a
  fetch, its answer, the consumer's poll loop): `to_append_p50_ms`, `from_append_p50_ms`;
- librdkafka's statistics of producers and consumers (`bench_loads.py mixed --stats`): requests
  sent per type, round-trip p50/p99;
- the broker's CPU seconds and, from `/proc/<pid>/task/*/schedstat`, the seconds its threads ran
  and waited in the run queue (`sched_wait_per_slice_ms`: how long it waited for a CPU each time
  it became runnable; on a shared machine this is where most of the latency goes);
- `--profile`: py-spy of each kbroker run (raw folded stacks into --out-dir).

The kbroker trees run as they are (byte-compiled first); export a commit with `git archive`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import bench_scale_nodes as sn  # noqa: E402

ROOT = bb.ROOT
SETTINGS = {"log.segment.bytes": str(1 << 20), "log.retention.bytes": str(4 << 20),
            "log.retention.check.interval.ms": "5000"}


def schedstat(pid: int) -> tuple[int, int, int]:
    """(ns on CPU, ns waiting to run, time slices) summed over the process's threads."""
    run = wait = slices = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            a, b, c = (int(x) for x in Path(path).read_text().split())
        except (OSError, ValueError):
            continue
        run, wait, slices = run + a, wait + b, slices + c
    return run, wait, slices


def one_run(kind: str, tree: Path | None, base: Path, a: argparse.Namespace) -> dict[str, Any]:
    settings = {**bb.BENCH_SETTINGS, **SETTINGS}
    if a.append_time:
        settings["log.message.timestamp.type"] = "LogAppendTime"
    node = (sn.KBrokerNode(base, settings, tree) if tree is not None
            else sn.make("kafka", base, settings, ROOT))
    spy = None
    try:
        node.start()
        sn.create_topic(node.bootstrap, "load", 16)
        node.wait_topic("load", 16)
        cpu0, s0 = node.cpu_s(), schedstat(node.pid)
        if a.profile and tree is not None:
            spy = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-p", str(node.pid), "-r", "250", "-f", "raw",
                 "--nonblocking", "-o", str(Path(a.out_dir) / f"mixed-{kind}-{os.getpid()}-{cpu0:.0f}.folded"),
                 "-d", str(a.seconds + 5)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = bl.worker(["mixed", "--bootstrap", node.bootstrap, "--topic", "load", "--rate", str(a.rate),
                       "--seconds", str(a.seconds), "--conns", "4", "--consumers", "4", "--acks", "1",
                       "--linger-ms", "1", "--stats"], timeout=a.seconds + 600)
        s1 = schedstat(node.pid)
        r["broker_cpu_s"] = node.cpu_s() - cpu0
        r["sched_run_s"] = (s1[0] - s0[0]) / 1e9
        r["sched_wait_s"] = (s1[1] - s0[1]) / 1e9
        r["sched_wait_per_slice_ms"] = (s1[1] - s0[1]) / 1e6 / max(1, s1[2] - s0[2])
        node.stop()
    finally:
        if spy is not None:
            spy.wait()
        node.remove()
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], help="name=path of a kbroker tree (default: this one)")
    ap.add_argument("--no-kafka", action="store_true", help="kbroker trees only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--append-time", action="store_true", help="message.timestamp.type=LogAppendTime: split at the append")
    ap.add_argument("--profile", action="store_true", help="py-spy each kbroker run")
    ap.add_argument("--out-dir", default=tempfile.gettempdir(), help="where --profile writes")
    a = ap.parse_args(argv)
    trees: dict[str, Path | None] = {}
    for spec in a.tree or [f"kbroker={ROOT}"]:
        name, _, path = spec.partition("=")
        tree = trees[name] = Path(path).resolve()
        subprocess.run([bb.PY, "-m", "compileall", "-q", str(tree / "kbroker"), str(tree / "protocol")], check=True)
    if not a.no_kafka:
        trees["kafka"] = None
    base = Path(tempfile.mkdtemp(prefix="bench-mixed-split-"))
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    try:
        for rep in range(a.reps):
            names = list(trees) if rep % 2 == 0 else list(trees)[::-1]
            for name in names:
                load = float(Path("/proc/loadavg").read_text().split()[0])
                try:
                    r = one_run(name, trees[name], base, a)
                except Exception as exc:  # noqa: BLE001 - a failed run is a result
                    r = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
                r["loadavg_before"] = load
                runs[name].append(r)
                print(name, rep, json.dumps(r), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for name, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            continue

        def col(key: str, rs: list[dict[str, Any]] = ok) -> str:
            xs = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
            return f"{median(xs):.3g} [{' / '.join(f'{x:.3g}' for x in xs)}]" if xs else "-"

        print(f"{name}: p50 {col('p50_ms')} ms | p99 {col('p99_ms')} ms | send->append p50 {col('to_append_p50_ms')} | "
              f"append->consumer p50 {col('from_append_p50_ms')} | broker CPU {col('broker_cpu_s')} s | "
              f"run-queue wait {col('sched_wait_s')} s ({col('sched_wait_per_slice_ms')} ms a slice) | "
              f"load {col('loadavg_before')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
