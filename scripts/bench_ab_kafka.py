#!/usr/bin/env python3
"""Two kbroker commits and Apache Kafka 4.4 in one run, interleaved round by round (issue 14).

    .venv/bin/python scripts/bench_ab_kafka.py --before a567189 --after main [--rounds 5] [--out bench/reshape-ab]

Exports both commits (`git archive`, so the trees are exactly the commits and nothing of a working
tree leaks in), starts one kbroker from each and one Kafka (scripts/bench_brokers.py: the same
settings, fresh data dirs, loopback ports from the OS), and runs the same points as
scripts/bench_vs_kafka.py at a smaller size. Every point runs in rounds; in each round all three
brokers run it once, one after the other, the order rotating from round to round
(before, after, kafka / after, kafka, before / ...), so that a change in the machine's load falls
on all three alike. Both kbroker trees run on this checkout's interpreter and libraries, so only the
kbroker code differs between them.

The report takes, for each point and figure, the ratio after/before *within each round* (and each
tree against Kafka in the same round) and gives the median with the smallest and largest of those
paired ratios, plus the median figures. Output: <out>.json (every run) and <out>.md (the table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import reference_kafka  # noqa: E402
from bench_machine import cpu_model  # noqa: E402

ROOT = bb.ROOT
log = bb.log
LABELS = ("before", "after", "kafka")
IDLE_SETTLE_S = 5.0
E2E_RATE = 5000


# --- pure helpers (tests/unit/test_bench_ab_report.py) --------------------------------------------

def rotation(labels: Sequence[str], rnd: int) -> list[str]:
    """The order of the brokers in round `rnd`: the list rotated left by rnd places."""
    k = rnd % len(labels)
    return [*labels[k:], *labels[:k]]


@dataclass(frozen=True)
class Figure:
    """One figure of a point: the key in a run's result, its unit, and which way is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


def paired_ratios(runs: dict[str, list[dict[str, Any] | None]], num: str, den: str, key: str) -> list[float]:
    """num/den for every round in which both have a numeric figure `key` (den non-zero).
    runs[label][round] is that broker's result in that round, or None if it failed."""
    out = []
    for a, b in zip(runs.get(num, []), runs.get(den, []), strict=False):
        if a is None or b is None:
            continue
        x, y = a.get(key), b.get(key)
        if _num(x) and _num(y) and y != 0:
            out.append(x / y)
    return out


def spread(values: Sequence[float]) -> dict[str, Any] | None:
    """Median, smallest and largest of the values, and their count (None when there are none)."""
    if not values:
        return None
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


MIN_ROUNDS_FOR_VERDICT = 3


def verdict(s: dict[str, Any] | None, higher_is_better: bool) -> str:
    """How an after/before spread reads: 'better'/'worse' when every paired ratio (at least
    MIN_ROUNDS_FOR_VERDICT of them) is on the same side of 1, otherwise 'no clear change' (the
    rounds disagree) or 'too few rounds'."""
    if s is None:
        return "n/a"
    if s["n"] < MIN_ROUNDS_FOR_VERDICT:
        return "too few rounds"
    if s["min"] > 1.0:
        return "better" if higher_is_better else "worse"
    if s["max"] < 1.0:
        return "worse" if higher_is_better else "better"
    return "no clear change"


def summarise(point: dict[str, Any], figures: Sequence[Figure]) -> list[dict[str, Any]]:
    """One row a figure: the median value of each broker, the paired ratios' spreads."""
    runs = point["runs"]
    rows = []
    for f in figures:
        med = {}
        for lab in LABELS:
            vals = [r[f.key] for r in runs.get(lab, []) if r is not None and _num(r.get(f.key))]
            med[lab] = median(vals) if vals else None
        ab = spread(paired_ratios(runs, "after", "before", f.key))
        rows.append({
            "point": point["id"], "label": point["label"], "figure": f.label, "unit": f.unit,
            "higher_is_better": f.higher_is_better, "median": med,
            "after_before": ab,
            "before_kafka": spread(paired_ratios(runs, "before", "kafka", f.key)),
            "after_kafka": spread(paired_ratios(runs, "after", "kafka", f.key)),
            "verdict": verdict(ab, f.higher_is_better),
        })
    return rows


def fmt_spread(s: dict[str, Any] | None) -> str:
    if s is None:
        return "n/a"
    return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f}, n={s['n']})"


def fmt_value(v: float | None) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table: one line a figure."""
    out = ["| point | figure | unit | better | before | after | Kafka | after/before: median (min–max, n) "
           "| reads | before/Kafka | after/Kafka |",
           "|---|---|---|---|---:|---:|---:|---|---|---|---|"]
    for r in rows:
        m = r["median"]
        out.append(
            f"| {r['label']} | {r['figure']} | {r['unit']} | {'higher' if r['higher_is_better'] else 'lower'} "
            f"| {fmt_value(m['before'])} | {fmt_value(m['after'])} | {fmt_value(m['kafka'])} "
            f"| {fmt_spread(r['after_before'])} | {r['verdict']} "
            f"| {fmt_spread(r['before_kafka'])} | {fmt_spread(r['after_kafka'])} |")
    return "\n".join(out) + "\n"


def _num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# --- the run ---------------------------------------------------------------------------------------

THROUGHPUT = Figure("mb_per_s", "throughput", "MB/s", True)
CPU_PER_GB = Figure("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False)
P99_PRODUCER = Figure("lat_p99_ms", "producer-side p99", "ms", False)

FULL = {"produce_records": 100_000, "conn_records": 50_000, "consume_records": 200_000, "e2e_seconds": 10,
        "warmup_records": 30_000}
QUICK = {"produce_records": 20_000, "conn_records": 10_000, "consume_records": 30_000, "e2e_seconds": 3,
         "warmup_records": 5_000}


def export(rev: str, dest: Path) -> str:
    """`git archive` of rev into dest, byte-compiled; returns the full commit id."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    subprocess.run([bb.PY, "-m", "compileall", "-q", str(dest / "kbroker"), str(dest / "protocol")], check=True)
    return commit


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


class ABRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.p = dict(QUICK if args.quick else FULL)
        self.base = Path(tempfile.mkdtemp(prefix="bench-ab-", dir=args.data_dir))
        self.brokers: dict[str, bb.Broker] = {}
        self.src: dict[str, Path] = {}
        self.out = Path(args.out)
        self.res: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "params": {**self.p, "rounds": args.rounds, "heavy_rounds": args.heavy_rounds,
                                               "startup_rounds": args.startup_rounds},
                                    "points": [], "errors": [], "loadavg": []}

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.with_suffix(".json").write_text(json.dumps(self.res, indent=1) + "\n")

    def start(self, lab: str) -> bb.Broker:
        if lab == "kafka":
            return bb.Kafka(self.base)
        return bb.KBroker(self.src[lab], self.base)

    def point(self, pid: str, label: str, rounds: int, fn: Callable[[bb.Broker, str, int], dict[str, Any]],
              figures: Sequence[Figure]) -> None:
        """Run fn(broker, label, round) `rounds` times on each broker, rotating the order."""
        runs: dict[str, list[dict[str, Any] | None]] = {lab: [] for lab in LABELS}
        orders = []
        for rnd in range(rounds):
            order = rotation(LABELS, rnd)
            orders.append(order)
            for lab in order:
                b = self.brokers[lab]
                try:
                    r = fn(b, lab, rnd)
                    r["loadavg1"] = float(loadavg()[0])
                    runs[lab].append(r)
                    log(f"{pid} round {rnd + 1}/{rounds} {lab}: "
                        + ", ".join(f"{f.key}={r.get(f.key, float('nan')):.2f}" for f in figures))
                except Exception as e:  # noqa: BLE001 - a failed run is a result (None), not a crash
                    runs[lab].append(None)
                    msg = f"{pid} round {rnd + 1} on {lab}: {type(e).__name__}: {str(e)[:300]}"
                    self.res["errors"].append(msg)
                    log(msg)
        self.res["points"].append({"id": pid, "label": label, "orders": orders, "runs": runs,
                                   "figures": [f.__dict__ for f in figures]})
        self.res["loadavg"].append([datetime.now(UTC).isoformat(timespec="seconds"), *loadavg()])
        self.save()

    # -- points --------------------------------------------------------------------------------
    def startup(self) -> None:
        """Each round starts each broker fresh (rotating order); the last round's stay up."""
        n = self.a.startup_rounds
        runs: dict[str, list[dict[str, Any] | None]] = {lab: [] for lab in LABELS}
        for rnd in range(n):
            for lab in rotation(LABELS, rnd):
                b = self.start(lab)
                time.sleep(IDLE_SETTLE_S)  # idle RSS is read after the broker has settled, not to wait for it
                runs[lab].append({"start_s": b.start_seconds, "idle_rss_mib": b.rss_kib() / 1024})
                log(f"startup round {rnd + 1}/{n} {lab}: {b.start_seconds:.3f}s, "
                    f"{runs[lab][-1]['idle_rss_mib']:.1f} MiB")
                if rnd == n - 1:
                    self.brokers[lab] = b
                else:
                    b.stop()
        self.res["points"].append({
            "id": "startup", "label": "startup", "orders": [rotation(LABELS, r) for r in range(n)], "runs": runs,
            "figures": [Figure("start_s", "spawn to first Metadata", "s", False).__dict__,
                        Figure("idle_rss_mib", "idle RSS 5 s after start", "MiB", False).__dict__]})
        self.save()

    def warmup(self) -> None:
        for lab, b in self.brokers.items():
            log(f"warm-up: {lab}")
            bl.create_topic(b.bootstrap, "warmup", 1)
            bl.producer_perf(b.bootstrap, "warmup", self.p["warmup_records"], "1", "none")
            bl.worker(["consume", "--bootstrap", b.bootstrap, "--topic", "warmup", "--records",
                       str(self.p["warmup_records"]), "--timeout", "120"])

    def produce_point(self, pid: str, label: str, rounds: int, parts: int, acks: str, comp: str) -> None:
        n = self.p["produce_records"]
        made: set[str] = set()

        def fn(b: bb.Broker, lab: str, rnd: int) -> dict[str, Any]:
            if lab not in made:
                bl.create_topic(b.bootstrap, pid, parts)
                made.add(lab)
            with bb.RssSampler(b.pid) as s:
                r = bl.producer_perf(b.bootstrap, pid, n, acks, comp)
            r.update(rss_max_mib=s.max_kib / 1024, broker_cpu_s=s.cpu, cpu_s_per_gb=s.cpu / (n * 1024 / 1e9))
            return r

        self.point(pid, label, rounds, fn, [THROUGHPUT, CPU_PER_GB, P99_PRODUCER])

    def conns_point(self, rounds: int, conns: int) -> None:
        n = self.p["conn_records"]
        pid = f"conns-{conns}"
        made: set[str] = set()

        def fn(b: bb.Broker, lab: str, rnd: int) -> dict[str, Any]:
            if lab not in made:
                bl.create_topic(b.bootstrap, pid, 1)
                made.add(lab)
            with bb.RssSampler(b.pid) as s:
                r = bl.worker(["produce-conns", "--bootstrap", b.bootstrap, "--topic", pid,
                               "--records", str(n), "--conns", str(conns), "--acks", "1"])
            r.update(broker_cpu_s=s.cpu, cpu_s_per_gb=s.cpu / (n * 1024 / 1e9))
            return r

        self.point(pid, f"produce, {conns} librdkafka connections, acks=1", rounds, fn, [THROUGHPUT, CPU_PER_GB])

    def consume_point(self, rounds: int) -> None:
        n = self.p["consume_records"]
        filled: set[str] = set()

        def fn(b: bb.Broker, lab: str, rnd: int) -> dict[str, Any]:
            if lab not in filled:  # written once (in this broker's first turn), read every round
                bl.create_topic(b.bootstrap, "consume", 1)
                bl.producer_perf(b.bootstrap, "consume", n, "1", "none")
                filled.add(lab)
            with bb.RssSampler(b.pid) as s:
                r = bl.worker(["consume", "--bootstrap", b.bootstrap, "--topic", "consume", "--records", str(n),
                               "--timeout", "600"])
            if not r["complete"]:
                raise RuntimeError(f"consumed only {r['records']} of {n} records")
            r.update(broker_cpu_s=s.cpu, cpu_s_per_gb=s.cpu / (r["bytes"] / 1e9))
            return r

        self.point("consume", f"consume {n * 1024 / 1e6:.0f} MB from offset 0 (librdkafka assign)", rounds, fn,
                   [THROUGHPUT, CPU_PER_GB])

    def e2e_point(self, rounds: int) -> None:
        secs = self.p["e2e_seconds"]
        made: set[str] = set()

        def fn(b: bb.Broker, lab: str, rnd: int) -> dict[str, Any]:
            if lab not in made:
                bl.create_topic(b.bootstrap, "e2e", 1)
                made.add(lab)
            return bl.worker(["e2e", "--bootstrap", b.bootstrap, "--topic", "e2e", "--rate", str(E2E_RATE),
                              "--seconds", str(secs), "--acks", "1", "--linger-ms", "1"], timeout=secs + 300)

        self.point("e2e", f"end-to-end latency at {E2E_RATE} records/s, {secs} s (librdkafka)", rounds, fn,
                   [Figure("p50_ms", "p50", "ms", False), Figure("p99_ms", "p99", "ms", False)])

    def run(self) -> None:
        a = self.a
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
        self.res["machine"] = {"cpu": cpu_model(), "nproc": __import__("os").cpu_count(),
                               "java": java[0] if java else "?", "kafka": reference_kafka.KAFKA_VERSION,
                               "python": sys.version.split()[0]}
        self.res["trees"] = {}
        for lab, rev in (("before", a.before), ("after", a.after)):
            self.src[lab] = self.base / f"src-{lab}"
            self.res["trees"][lab] = {"rev": rev, "commit": export(rev, self.src[lab])}
        log(f"trees {self.res['trees']}; data under {self.base}")
        reference_kafka.ensure_kafka()
        bl.ensure_tools()
        self.res["loadavg"].append([datetime.now(UTC).isoformat(timespec="seconds"), *loadavg()])
        light, heavy = a.rounds, a.heavy_rounds
        try:
            self.startup()
            self.warmup()
            self.produce_point("produce-acks1-none", "produce 1 KiB, acks=1, none, 1 partition", light, 1, "1", "none")
            self.produce_point("produce-acks1-lz4", "produce 1 KiB, acks=1, lz4, 1 partition", light, 1, "1", "lz4")
            self.produce_point("produce-acksall-none", "produce 1 KiB, acks=all, none, 1 partition", light, 1,
                               "all", "none")
            self.produce_point("partitions-256", "produce 1 KiB, acks=1, none, 256 partitions", heavy, 256, "1",
                               "none")
            self.conns_point(light, 100)
            self.consume_point(light)
            self.e2e_point(heavy)
        finally:
            self.res["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            self.res["loadavg"].append([self.res["finished"], *loadavg()])
            for b in self.brokers.values():
                b.stop()
            self.save()
            shutil.rmtree(self.base, ignore_errors=True)
        write_report(self.res, self.out)


def write_report(res: dict[str, Any], out: Path) -> str:
    rows = []
    for p in res["points"]:
        rows += summarise(p, [Figure(**f) for f in p["figures"]])
    res["summary"] = rows
    t = res.get("trees", {})
    head = (f"Run {res['started']} → {res.get('finished', '?')} UTC; before `{t.get('before', {}).get('commit', '?')[:12]}`"
            f" ({t.get('before', {}).get('rev', '?')}), after `{t.get('after', {}).get('commit', '?')[:12]}`"
            f" ({t.get('after', {}).get('rev', '?')}), Apache Kafka {res.get('machine', {}).get('kafka', '?')}; "
            f"load average (1/5/15 min) at points: "
            + "; ".join(f"{x[0][11:16]} {' '.join(x[1:])}" for x in res.get("loadavg", [])) + "\n\n")
    text = head + markdown(rows)
    if res.get("errors"):
        text += "\nFailed runs (left out of the ratios):\n\n" + "".join(f"- {e}\n" for e in res["errors"])
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision of the 'before' tree")
    ap.add_argument("--after", required=True, help="git revision of the 'after' tree")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the lighter points (default 4)")
    ap.add_argument("--heavy-rounds", type=int, default=3, help="rounds of 256 partitions and e2e (default 3)")
    ap.add_argument("--startup-rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of the script)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "reshape-ab"), help="output path without suffix")
    ap.add_argument("--data-dir", default=None, help="where the brokers' data goes (default: $TMPDIR)")
    ap.add_argument("--report-only", action="store_true", help="rewrite <out>.md from <out>.json")
    a = ap.parse_args(argv)
    if a.report_only:
        out = Path(a.out)
        print(write_report(json.loads(out.with_suffix(".json").read_text()), out))
        return 0
    ABRun(a).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
