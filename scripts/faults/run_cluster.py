#!/usr/bin/env python3
"""Cluster fault runs: ``scripts/faults/run_cluster.py --target {kafka,kbroker} --runs N --seed S``.

Run i uses seed S+i: three nodes (``process.roles=broker,controller``) each in its own network
namespace behind fault-injecting proxies, acks=all, RF=3, min.insync.replicas=2, unclean leader
election off, the queue workload, ``--faults`` faults per run. Each run writes history.jsonl,
report.json, report.txt, report.png under OUT/run-<seed>; OUT/summary.json and the printed summary add
them up. Exits 1 if any run found an anomaly (or did not recover, or its drain was incomplete).
``--cleanup`` removes what an interrupted run left (namespaces, links, mounts) and exits. Needs root.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.cluster import TARGETS  # noqa: E402
from faults.cluster_runner import ClusterRunConfig, rescore, run  # noqa: E402
from faults.netns import cleanup, require_tools  # noqa: E402
from faults.report import text  # noqa: E402
from faults.schedule import KINDS  # noqa: E402


def summarize(reports: list[dict]) -> dict:
    total: dict = {"runs": len(reports), "valid_runs": sum(1 for r in reports if r["valid"]),
                   "broker_valid_runs": sum(1 for r in reports if r["broker_valid"]),
                   "duplicates_after_client_timeout": sum(r["duplicates_after_client_timeout"] for r in reports),
                   "duplicates_after_epoch_bump": sum(r.get("duplicates_after_epoch_bump", 0) for r in reports),
                   "reorders_of_those_duplicates": sum(r["reorders_of_those_duplicates"] for r in reports),
                   "broker_anomaly_counts": {},
                   "faults": sum(r["faults_applied"] for r in reports), "fault_kinds": {},
                   "operations": sum(r["operations"] for r in reports),
                   "sends_acknowledged": sum(r["sends_acknowledged"] for r in reports),
                   "values_read": sum(r["values_read"] for r in reports), "anomaly_counts": {},
                   "crashes": sum(len(r["crashes"]) for r in reports), "crashes_during": {},
                   "runs_without_first_acks": sum(1 for r in reports if not r.get("first_acks", True)),
                   "heals_without_progress": sum(r["heals_without_progress"] for r in reports),
                   "runs_with_nodes_not_back": sum(1 for r in reports if r["nodes_not_back"]),
                   "incomplete_drains": sum(1 for r in reports if not r["drain_complete"]),
                   "transactions": {},
                   "ack_latency_p99_ms_max": max((r["ack_latency_ms"]["p99"] or 0) for r in reports) if reports else None,
                   "longest_write_stall_s_max": max((r.get("longest_write_stall", {}).get("s") or 0) for r in reports)
                   if reports else None}
    for r in reports:
        for crash in r["crashes"]:
            during = str(crash.get("during"))
            total["crashes_during"][during] = total["crashes_during"].get(during, 0) + 1
        for k, v in r["fault_kinds"].items():
            total["fault_kinds"][k] = total["fault_kinds"].get(k, 0) + v
        for k, v in r["anomaly_counts"].items():
            total["anomaly_counts"][k] = total["anomaly_counts"].get(k, 0) + v
        for k, v in r["broker_anomaly_counts"].items():
            total["broker_anomaly_counts"][k] = total["broker_anomaly_counts"].get(k, 0) + v
        for k, v in r.get("transactions", {}).items():
            total["transactions"][k] = total["transactions"].get(k, 0) + v
    return total


def table(reports: list[dict]) -> str:
    """A Markdown table of the runs' figures, one row a run (as in docs/faults.md); transactional
    runs add their transactions: committed, aborted, of unknown outcome, and the values of aborted
    transactions that were written (which read_committed readers must skip)."""
    txn = any(r.get("transactional") for r in reports)
    extra = " commits | aborts | unknown | aborted values written |" if txn else ""
    rows = ["| seed | faults | acked | indeterminate | duplicates (client) | p50 ms | p99 ms | max ms | stall s "
            "| broker anomalies | valid | broker_valid | crashes |" + extra,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
            + (" --- | --- | --- | --- |" if txn else "")]
    for r in sorted(reports, key=lambda r: r["seed"]):
        lat = r["ack_latency_ms"]
        broker = ", ".join(f"{k} {v}" for k, v in r["broker_anomaly_counts"].items() if v) or "0"
        row = (f"| {r['seed']} | {r['faults_applied']} | {r['sends_acknowledged']} | "
               f"{r.get('ops', {}).get('send:info', 0)} | {r['anomaly_counts']['duplicate']} "
               f"({r['duplicates_after_client_timeout'] + r.get('duplicates_after_epoch_bump', 0)}) | {lat['p50']} | {lat['p99']} | {lat['max']} | "
               f"{r.get('longest_write_stall', {}).get('s', '-')} | {broker} | "
               f"{r['valid']} | {r['broker_valid']} | {len(r['crashes'])} |")
        if txn:
            t = r.get("transactions", {})
            row += " " + " | ".join(str(t.get(k, "-")) for k in ("commit", "abort", "unknown",
                                                                 "aborted_values_written")) + " |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def _cell(r: dict | None) -> list[str]:
    """One broker's cells of a ``compare`` row: operations, acknowledged, the broker's anomalies,
    duplicates (client-explained), crashes, epoch bumps by reason (clients.log)."""
    if r is None:
        return ["-"] * 6
    broker = ", ".join(f"{k} {v}" for k, v in r["broker_anomaly_counts"].items() if v) or "0"
    if not r["broker_valid"] and broker == "0":
        broker = "0 (run unhealthy)"
    explained = r["duplicates_after_client_timeout"] + r.get("duplicates_after_epoch_bump", 0)
    events = r.get("client_events")
    bumps = "-" if events is None else (", ".join(f"{k} {v}" for k, v in sorted(events["epoch_bumps"].items()))
                                        or "0")
    return [f"{r['operations']:,}", f"{r['sends_acknowledged']:,}", broker,
            f"{r['anomaly_counts'].get('duplicate', 0)} ({explained})", str(len(r["crashes"])), bumps]


def compare(left: list[dict], right: list[dict]) -> str:
    """A Markdown table of the same seeds on two brokers (e.g. kbroker's runs, then Kafka's), one row
    a seed: its faults (same seed, same schedule), then per broker the operations, acknowledged sends,
    the broker's anomalies, duplicates (client-explained), node crashes and the producers' epoch bumps
    by reason."""
    by_left = {r["seed"]: r for r in left}
    by_right = {r["seed"]: r for r in right}
    names = [(left or right or [{}])[0].get("target", "left"), (right or [{}])[0].get("target", "right")]
    cols = ["operations", "acked", "broker anomalies", "duplicates (client)", "crashes", "epoch bumps"]
    rows = ["| seed | faults | " + " | ".join(f"{n}: {c}" for n in names for c in cols) + " |",
            "| --- | --- |" + " --- |" * (2 * len(cols))]
    for seed in sorted(by_left.keys() | by_right.keys()):
        some = by_left.get(seed) or by_right[seed]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(some["fault_kinds"].items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append(f"| {seed} | {some['faults_applied']}: {kinds} | "
                    + " | ".join(_cell(by_left.get(seed)) + _cell(by_right.get(seed))) + " |")
    return "\n".join(rows) + "\n"


def _reports(out: Path) -> list[dict]:
    return [json.loads((d / "report.json").read_text()) for d in sorted(out.glob("run-*"))
            if (d / "report.json").exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["kafka", "kbroker"], default="kafka")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", type=int, default=10, help="faults per run")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds to draw from (of {','.join(KINDS)})")
    parser.add_argument("--out", type=Path, help="output directory (default: a new temporary directory)")
    parser.add_argument("--rate", type=float, default=100.0, help="sends per second per producer")
    parser.add_argument("--duration", default="2,8", help="min,max seconds a fault lasts")
    parser.add_argument("--heal", default="2,5", help="min,max seconds of calm after each fault")
    parser.add_argument("--transactional", action="store_true",
                        help="the transactional workload (transactions committed or aborted, read_committed readers)")
    parser.add_argument("--producer-debug", default="", metavar="CONTEXTS",
                        help="librdkafka debug contexts for the producers (e.g. eos,msg,protocol), logged to "
                             "OUT/run-<seed>/clients.log")
    parser.add_argument("--table", type=Path, metavar="OUT",
                        help="print a Markdown table of the finished runs under OUT (their report.json) and exit")
    parser.add_argument("--summary", type=Path, nargs="+", metavar="OUT",
                        help="print the summary of the finished runs under one or more OUT directories (their "
                             "report.json, not re-checked) and exit")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OUT1", "OUT2"),
                        help="print a Markdown table of the seeds run under both (e.g. kbroker's and Kafka's "
                             "runs), one row a seed, and exit")
    parser.add_argument("--cleanup", action="store_true", help="remove leftovers of interrupted runs and exit")
    parser.add_argument("--rescore", type=Path, metavar="OUT",
                        help="re-check every finished run under OUT (run-*/history.jsonl), rewrite the reports and "
                             "the summary, and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cleanup:
        for item in cleanup():
            print(f"removed {item}")
        return 0
    if args.table:
        sys.stdout.write(table(_reports(args.table)))
        return 0
    if args.compare:
        sys.stdout.write(compare(_reports(args.compare[0]), _reports(args.compare[1])))
        return 0
    if args.summary:
        reports = [json.loads((d / "report.json").read_text()) for out in args.summary
                   for d in sorted(out.glob("run-*")) if (d / "report.json").exists()]
        summary = summarize(reports)
        summary["seeds"] = sorted(r["seed"] for r in reports)
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    if args.rescore:
        reports = [rescore(d) for d in sorted(args.rescore.glob("run-*")) if (d / "report.json").exists()]
        summary = summarize(reports)
        (args.rescore / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0 if summary["valid_runs"] == summary["runs"] else 1
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    try:
        dmin, dmax = (float(x) for x in args.duration.split(","))
        hmin, hmax = (float(x) for x in args.heal.split(","))
    except ValueError:
        parser.error("--duration and --heal take MIN,MAX")
    if unknown or not kinds or args.runs < 1 or args.faults < 0 or not 0 <= dmin <= dmax or not 0 <= hmin <= hmax:
        parser.error(f"--kinds from {','.join(KINDS)} (unknown: {sorted(unknown)}), --runs >= 1, --faults >= 0, "
                     "0 <= min <= max")
    try:
        require_tools()
        TARGETS[args.target]().check()
    except (PermissionError, RuntimeError) as exc:
        print(f"run_cluster: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix=f"kbroker-faults-cluster-{args.target}-"))
    reports: list[dict] = []
    failed_runs: list[dict] = []
    for i in range(args.runs):
        seed = args.seed + i
        try:
            report = run(ClusterRunConfig(out=out / f"run-{seed}", target=args.target, faults=args.faults,
                                          seed=seed, kinds=kinds, rate=args.rate, duration_min=dmin,
                                          duration_max=dmax, heal_min=hmin, heal_max=hmax,
                                          transactional=args.transactional, producer_debug=args.producer_debug))
        except Exception as exc:  # noqa: BLE001 - one broken run (e.g. a cluster that never started) is reported
            logging.getLogger("faults").exception("run seed %d failed", seed)
            failed_runs.append({"seed": seed, "error": f"{type(exc).__name__}: {exc}"[:500]})
            (out / "failed_runs.json").write_text(json.dumps(failed_runs, indent=2) + "\n")
            continue
        sys.stdout.write(f"--- run seed {seed}\n" + text(report))
        sys.stdout.flush()
        reports.append(report)
        (out / "summary.json").write_text(json.dumps(summarize(reports), indent=2) + "\n")
    summary = summarize(reports)
    summary["runs_that_failed_to_run"] = failed_runs
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    sys.stdout.write("=== summary\n" + json.dumps(summary, indent=2) + f"\noutput: {out}\n")
    return 0 if summary["valid_runs"] == summary["runs"] and not failed_runs else 1


if __name__ == "__main__":
    sys.exit(main())
