#!/usr/bin/env python3
"""One librdkafka consumer reading a full topic back, repeated on brokers kept running (issue 23).

    .venv/bin/python scripts/bench_consume_repeat.py [--brokers kbroker,kafka,null] [--rounds 4]
        [--partitions 16] [--records 500000] [--record-size 1024] [--keys 1000]
        [--kbroker HEAD --kbroker REV ...] [--worktree] [--out FILE]

Every broker (kbroker from each `--kbroker` commit, exported as bench_scale.py does; Apache Kafka
4.4; the null broker of scripts/null_broker.c) is started once, with the settings of
bench_brokers.BENCH_SETTINGS, and all run at the same time. kbroker and Kafka get a topic of
--partitions partitions filled with --records records of --record-size bytes by one librdkafka
producer (keyed with --keys keys, as the ceiling curve of bench_scale.py; not measured). Then
--rounds rounds: in each, one fresh consumer per broker (bench_loads `consume`: assign() from
offset 0 on every partition, fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB) reads all
records; the brokers' order alternates between rounds (forward, reversed). Per run: MB/s, seconds
to the first record, the broker's CPU seconds during the read, the 1-minute load average before.

The null broker stores nothing and serves 64 records of 1 KiB at any offset: include it only with
--record-size 1024 (its column is then the most this client reads on this machine).

This is the "same row repeated on brokers kept running" of README's Performance at scale (the
ceiling's consume row without a fresh broker, a produce phase and a JVM start per run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import bench_scale_nodes as sn  # noqa: E402
import reference_kafka  # noqa: E402
from bench_scale import bb_sh, export, loadavg, machine_info  # noqa: E402

ROOT = bb.ROOT
log = bb.log


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fill(node: sn.Node, a: argparse.Namespace, topic: str) -> dict:
    sn.create_topic(node.bootstrap, topic, a.partitions)
    node.wait_topic(topic, a.partitions)
    return bl.worker(["produce-conns", "--bootstrap", node.bootstrap, "--topic", topic, "--records",
                      str(a.records), "--record-size", str(a.record_size), "--conns", "1", "--acks", "1",
                      "--keys", str(a.keys)], timeout=1800)


def consume(node: sn.Node, a: argparse.Namespace, topic: str) -> dict:
    la = loadavg()
    cpu0 = node.cpu_s()
    c = bl.worker(["consume", "--bootstrap", node.bootstrap, "--topic", topic, "--records",
                   str(a.records), "--timeout", str(a.timeout)], timeout=a.timeout + 120)
    cpu = node.cpu_s() - cpu0
    return {"mb_per_s": c["mb_per_s"], "steady_mb_per_s": c.get("steady_mb_per_s"), "records": c["records"], "seconds": c["seconds"],
            "first_record_s": c["first_record_s"], "complete": c["complete"], "broker_cpu_s": cpu,
            "cpu_s_per_gb": cpu / (c["bytes"] / 1e9) if c["bytes"] else None,
            "loadavg_before": la, "loadavg_after": loadavg(), "at": now()}


def fmt(x: float) -> str:
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def summary(res: dict) -> str:
    lines = ["| broker | MB/s median | MB/s runs | steady MB/s median | steady MB/s runs | first record (s) "
             "| broker CPU s/GB | load avg |",
             "|---|---:|---|---:|---|---|---|---|"]
    for name, runs in res["runs"].items():
        ok = [r for r in runs if r.get("complete")]
        if not ok:
            lines.append(f"| {name} | - | {len(runs)} runs, none complete | | | | | |")
            continue
        mbs = [r["mb_per_s"] for r in ok]
        steady = [r["steady_mb_per_s"] for r in ok if r.get("steady_mb_per_s")]
        first = " / ".join(f"{r['first_record_s']:.2f}" for r in ok)
        lines.append(
            f"| {name} | {fmt(median(mbs))} | {' / '.join(fmt(x) for x in mbs)} | "
            f"{fmt(median(steady)) if steady else '-'} | {' / '.join(fmt(x) for x in steady)} | "
            f"{first} | "
            f"{fmt(median(r['cpu_s_per_gb'] for r in ok))} | "
            f"{min(r['loadavg_before'] for r in ok):.1f}-{max(r['loadavg_before'] for r in ok):.1f} |")
    for key in ("mb_per_s", "steady_mb_per_s"):
        meds = {n: median(r[key] for r in rs if r.get("complete") and r.get(key))
                for n, rs in res["runs"].items() if any(r.get("complete") and r.get(key) for r in rs)}
        kafka = meds.get("kafka")
        for n, m in meds.items():
            if kafka and n != "kafka":
                lines.append(f"{n}/kafka ({key}, medians): {m / kafka:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default="kbroker,kafka,null")
    ap.add_argument("--kbroker", action="append", default=None,
                    help="kbroker commit to run (repeat for an A/B; default HEAD)")
    ap.add_argument("--worktree", action="store_true", help="one more kbroker: this tree as it is")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--keys", type=int, default=1000, help="distinct keys of the filling producer (0: none)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a consumer may take")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON results (default: printed only)")
    a = ap.parse_args(argv)

    kinds = a.brokers.split(",")
    base = Path(tempfile.mkdtemp(prefix="bench-consume-repeat-", dir=a.data_dir))
    nodes: dict[str, sn.Node] = {}
    sources: dict[str, str] = {}
    res: dict = {"params": {k: v for k, v in vars(a).items() if k != "data_dir"}, "started": now(),
                 "machine": machine_info(), "sources": sources, "fill": {}, "runs": {}}
    try:
        reference_kafka.ensure_kafka()
        for kind in kinds:
            if kind == "kbroker":
                for rev in a.kbroker or ["HEAD"]:
                    src = base / f"src-{len(sources)}"
                    commit = export(rev, src)
                    name = f"kbroker@{commit[:7]}"
                    sources[name] = commit
                    nodes[name] = sn.make("kbroker", base, dict(bb.BENCH_SETTINGS), src)
                if a.worktree:
                    name = "kbroker@worktree"
                    sources[name] = bb_sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"]) + " + worktree"
                    nodes[name] = sn.make("kbroker", base, dict(bb.BENCH_SETTINGS), ROOT)
            else:
                nodes[kind] = sn.make(kind, base, dict(bb.BENCH_SETTINGS), ROOT, a.partitions)
        topic = "consume-repeat"
        for name, node in nodes.items():
            node.start()
            if not name.startswith("null"):
                t0 = time.monotonic()
                res["fill"][name] = fill(node, a, topic)
                log(f"{name}: filled in {time.monotonic() - t0:.1f} s")
            res["runs"][name] = []
        names = list(nodes)
        for rnd in range(a.rounds):
            for name in names if rnd % 2 == 0 else names[::-1]:
                r = consume(nodes[name], a, topic)
                res["runs"][name].append(r)
                log(f"round {rnd + 1}/{a.rounds} {name}: {r['mb_per_s']:.1f} MB/s "
                    f"(steady {r['steady_mb_per_s'] or 0:.1f}), first record "
                    f"{r['first_record_s']:.2f} s, broker CPU {r['broker_cpu_s']:.2f} s, "
                    f"load {r['loadavg_before']:.1f}{'' if r['complete'] else ', INCOMPLETE'}")
                if a.out:
                    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
        res["finished"] = now()
    finally:
        for node in nodes.values():
            node.stop(60)
            node.remove()
        shutil.rmtree(base, ignore_errors=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(summary(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
