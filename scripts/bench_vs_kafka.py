#!/usr/bin/env python3
"""kbroker side by side with Apache Kafka 4.4.0 on this machine (issue 8).

    .venv/bin/python scripts/bench_vs_kafka.py [--quick] [--worktree] [--no-profile]

Starts kbroker and Apache Kafka (KRaft, one node) with the same settings, drives both with the same
load generators (Kafka's ProducerPerformance from kafka-tools, librdkafka through confluent-kafka),
scenario by scenario (kbroker run, then Kafka run), and writes bench/results.json,
bench/RESULTS.md and bench/*.png. kbroker is the committed HEAD (exported to a temp dir) unless
--worktree is given, so concurrent uncommitted edits don't leak into a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import bench_profile as bp  # noqa: E402
import bench_report as br  # noqa: E402
import reference_kafka  # noqa: E402
from bench_machine import cpu_model  # noqa: E402

ROOT = bb.ROOT
OUT = ROOT / "bench"
log = bb.log

FULL = {"produce_records": 500_000, "consume_records": 1_000_000, "conn_records": 200_000,
        "e2e_seconds": 30, "startup_reps": 3, "partitions": [1, 16, 256], "conns": [1, 10, 100],
        "profile_seconds": 20, "reps": 3, "scaling_reps": 2, "consume_reps": 5, "warmup_records": 100_000, "e2e_java_records": 5000}
QUICK = {"produce_records": 60_000, "consume_records": 150_000, "conn_records": 40_000,
         "e2e_seconds": 10, "startup_reps": 1, "partitions": [1, 16, 256], "conns": [1, 10, 100],
         "profile_seconds": 8, "reps": 1, "scaling_reps": 1, "consume_reps": 1, "warmup_records": 20_000, "e2e_java_records": 1000}
E2E_RATE = 5000
IDLE_SETTLE_S = 5.0


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict:
    cpu = cpu_model()
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import confluent_kafka
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "java": java[0] if java else "?", "kafka": reference_kafka.KAFKA_VERSION,
        "librdkafka": confluent_kafka.libversion()[0], "confluent_kafka": confluent_kafka.version()[0],
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def export_head(dest: Path) -> str:
    """Export the committed HEAD of the repo into dest; returns the commit id."""
    rev = sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", "HEAD"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.wait()
    # byte-compile now, as an installed package would be, so that the first start is not also a compile
    subprocess.run([bb.PY, "-m", "compileall", "-q", str(dest / "kbroker"), str(dest / "protocol")], check=True)
    return rev


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.p = dict(QUICK if args.quick else FULL)
        if args.reps:
            self.p["reps"] = self.p["scaling_reps"] = self.p["consume_reps"] = args.reps
        self.base = Path(tempfile.mkdtemp(prefix="bench-vs-kafka-", dir=args.data_dir))
        self.results: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                              "mode": "quick" if args.quick else "full", "params": dict(self.p),
                              "scenarios": [], "errors": []}
        self.brokers: dict[str, bb.Broker] = {}

    # -- helpers -------------------------------------------------------------------------------
    def both(self, group: str, sid: str, label: str, fn, reps: int = 1, **meta) -> dict:
        """Run fn(broker, rep) on kbroker, then on Kafka, `reps` times interleaved; record the
        median of each figure over the repetitions (all runs are kept under "runs")."""
        row = {"group": group, "id": sid, "label": label, "reps": reps, **meta,
               "loadavg_before": Path("/proc/loadavg").read_text().split()[0]}
        runs: dict[str, list[dict]] = {"kbroker": [], "kafka": []}
        errors: dict[str, str] = {}
        for rep in range(reps):
            for name in ("kbroker", "kafka"):
                if name in errors:
                    continue
                b = self.brokers[name]
                log(f"{sid} [{rep + 1}/{reps}]: {name} ...")
                try:
                    runs[name].append(fn(b, rep))
                    log(f"{sid} [{rep + 1}/{reps}]: {name}: {short(runs[name][-1])}")
                except Exception as e:  # noqa: BLE001 - a failed scenario is a result, not a crash
                    errors[name] = f"{type(e).__name__}: {str(e)[:400]}"
                    self.results["errors"].append(f"{sid} on {name}: {errors[name]}")
                    log(f"{sid}: {name} FAILED: {errors[name]}")
        for name in ("kbroker", "kafka"):
            if name in errors and not runs[name]:
                row[name] = {"error": errors[name]}
            else:
                row[name] = aggregate(runs[name])
        self.results["scenarios"].append(row)
        self.save()
        return row

    def save(self) -> None:
        OUT.mkdir(exist_ok=True)
        (OUT / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")

    def topic(self, b: bb.Broker, name: str, partitions: int) -> str:
        bl.create_topic(b.bootstrap, name, partitions)
        return name

    # -- phases --------------------------------------------------------------------------------
    def startup(self) -> None:
        reps = self.p["startup_reps"]
        st: dict[str, list[float]] = {"kbroker": [], "kafka": []}
        idle: dict[str, list[int]] = {"kbroker": [], "kafka": []}
        for i in range(reps):
            for name in ("kbroker", "kafka"):
                log(f"startup {i + 1}/{reps}: {name}")
                b = bb.KBroker(self.src, self.base) if name == "kbroker" else bb.Kafka(self.base)
                time.sleep(IDLE_SETTLE_S)
                st[name].append(b.start_seconds)
                idle[name].append(b.rss_kib())
                log(f"  {name}: ready in {b.start_seconds:.3f}s, idle RSS {idle[name][-1] / 1024:.1f} MiB")
                if i == reps - 1:
                    self.brokers[name] = b
                else:
                    b.stop()
        self.results["startup"] = {n: {"seconds": median(v), "all": v} for n, v in st.items()}
        self.results["idle_rss"] = {n: {"mib": median(v) / 1024, "all_kib": v} for n, v in idle.items()}
        try:  # where kbroker's startup goes: its imports (py-spy can't attach before the process exists)
            self.results["startup_imports"] = bp.import_profile(bb.PY, self.src)
        except (OSError, ValueError) as e:
            self.results["startup_imports"] = {"error": str(e)}
        self.save()

    def produce(self) -> None:
        n = self.p["produce_records"]
        for acks in ("1", "all"):
            for comp in ("none", "lz4"):
                sid = f"produce-acks{acks}-{comp}"

                def fn(b, rep, acks=acks, comp=comp, sid=sid):
                    t = self.topic(b, sid, 1) if rep == 0 else sid
                    with bb.RssSampler(b.pid) as s:
                        r = bl.producer_perf(b.bootstrap, t, n, acks, comp)
                    r.update(rss_max_mib=s.max_kib / 1024, broker_cpu_s=s.cpu)
                    return r

                self.both("produce", sid, f"produce 1 KiB, acks={acks}, {comp}", fn, self.p["reps"],
                          acks=acks, compression=comp, partitions=1)

    def partitions(self) -> None:
        n = self.p["produce_records"]
        for parts in self.p["partitions"]:
            sid = f"partitions-{parts}"
            base = next((x for x in self.results["scenarios"] if x["id"] == "produce-acks1-none"), None)
            if parts == 1 and base is not None:  # the same load as produce acks=1 none: reuse it
                self.results["scenarios"].append(
                    {**base, "group": "partitions", "id": sid, "label": "produce, 1 partition(s)",
                     "partitions": 1, "same_as": "produce-acks1-none"})
                continue

            def fn(b, rep, parts=parts, sid=sid):
                t = self.topic(b, sid, parts) if rep == 0 else sid
                with bb.RssSampler(b.pid) as s:
                    r = bl.producer_perf(b.bootstrap, t, n, "1", "none")
                r.update(rss_max_mib=s.max_kib / 1024, broker_cpu_s=s.cpu)
                return r

            self.both("partitions", sid, f"produce, {parts} partition(s)", fn, self.p["scaling_reps"],
                      partitions=parts)

    def conns(self) -> None:
        n = self.p["conn_records"]
        for c in self.p["conns"]:
            sid = f"conns-{c}"

            def fn(b, rep, c=c, sid=sid):
                t = self.topic(b, sid, 1) if rep == 0 else sid
                with bb.RssSampler(b.pid) as s:
                    r = bl.worker(["produce-conns", "--bootstrap", b.bootstrap, "--topic", t,
                                   "--records", str(n), "--conns", str(c), "--acks", "1"])
                r.update(rss_max_mib=s.max_kib / 1024, broker_cpu_s=s.cpu)
                return r

            self.both("conns", sid, f"produce, {c} producer connection(s)", fn, self.p["scaling_reps"],
                      conns=c)

    def consume(self) -> None:
        n = self.p["consume_records"]

        filled: dict[str, tuple[dict, int]] = {}

        def fn(b, rep):
            t = "consume"
            if b.name not in filled:  # written once, read `reps` times
                self.topic(b, t, 1)
                filled[b.name] = (bl.producer_perf(b.bootstrap, t, n, "1", "none"), b.data_bytes("consume-0"))
            fill, size = filled[b.name]
            with bb.RssSampler(b.pid) as s:
                r = bl.worker(["consume", "--bootstrap", b.bootstrap, "--topic", t, "--records", str(n),
                               "--timeout", "900"])
            r.update(log_bytes=size, fill_mb_per_s=fill["mb_per_s"], rss_max_mib=s.max_kib / 1024,
                     broker_cpu_s=s.cpu)
            if not r["complete"]:
                raise RuntimeError(f"consumed only {r['records']} of {n} records")
            return r

        self.both("consume", "consume", f"consume {n * 1024 / 1e9:.2f} GB from offset 0", fn,
                  self.p["consume_reps"], records=n)

        def fn_java(b, rep):
            if b.name not in filled:
                raise RuntimeError("the consume topic was not written")
            return bl.consumer_perf(b.bootstrap, "consume", n, timeout=300)

        self.both("consume-java", "consume-java", f"Kafka ConsumerPerformance (group), {n * 1024 / 1e9:.2f} GB",
                  fn_java, records=n)

    def e2e(self) -> None:
        secs = self.p["e2e_seconds"]

        def fn(b, rep):
            t = self.topic(b, "e2e", 1)
            return bl.worker(["e2e", "--bootstrap", b.bootstrap, "--topic", t, "--rate", str(E2E_RATE),
                              "--seconds", str(secs), "--acks", "1", "--linger-ms", "1"],
                             timeout=secs + 300)

        self.both("e2e", "e2e", f"end-to-end latency at {E2E_RATE} records/s (librdkafka)", fn, rate=E2E_RATE)
        n = self.p["e2e_java_records"]

        def fn_java(b, rep):
            t = self.topic(b, "e2e-java", 1)
            return bl.end_to_end_latency(b.bootstrap, t, n, "1")

        self.both("e2e-java", "e2e-java", f"Kafka EndToEndLatency, {n:,} records one at a time", fn_java,
                  records=n)

    def warmup(self) -> None:
        """An unrecorded produce and consume run per broker, so that neither meets the first
        measured scenario cold (Kafka's JIT, kbroker's first segment)."""
        for name, b in self.brokers.items():
            log(f"warm-up: {name}")
            try:
                t = self.topic(b, "warmup", 1)
                bl.producer_perf(b.bootstrap, t, self.p["warmup_records"], "1", "none")
                bl.worker(["consume", "--bootstrap", b.bootstrap, "--topic", t, "--records",
                           str(self.p["warmup_records"]), "--timeout", "120"])
            except Exception as e:  # noqa: BLE001
                log(f"warm-up on {name} failed: {e}")

    def profile(self) -> None:
        """py-spy on kbroker under the produce and the consume loads."""
        if not bp.available():
            self.results["profile"] = {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
            return
        b = self.brokers["kbroker"]
        secs = self.p["profile_seconds"]
        prof: dict = {}
        # produce: ProducerPerformance at full speed for `secs` seconds' worth of records
        t = self.topic(b, "profile-produce", 1)
        out = OUT / "profile-produce.folded"
        spy = bp.start(b.pid, secs, out)
        try:
            r = bl.producer_perf(b.bootstrap, t, self.p["produce_records"] * 4, "1", "none",
                                 timeout=secs + 5)
        except (RuntimeError, subprocess.TimeoutExpired):
            r = None  # the load ran for the whole profile; its summary is not needed
        spy.wait()
        prof["produce"] = {"load": "ProducerPerformance acks=1 none 1 KiB, 1 partition",
                           **bp.summarize(out), "throughput": r}
        # many connections: 100 librdkafka producers, small requests (where kbroker fell behind)
        t = self.topic(b, "profile-conns", 1)
        out = OUT / "profile-conns100.folded"
        spy = bp.start(b.pid, secs, out)
        try:
            r = bl.worker(["produce-conns", "--bootstrap", b.bootstrap, "--topic", t, "--records",
                           str(self.p["conn_records"] * 10), "--conns", "100", "--acks", "1"], timeout=secs + 5)
        except (RuntimeError, subprocess.TimeoutExpired):
            r = None
        spy.wait()
        prof["conns100"] = {"load": "100 librdkafka producers (one connection each), acks=1, 1 partition",
                            **bp.summarize(out), "throughput": r}
        # consume: the 'consume' topic written earlier, read again from offset 0
        out = OUT / "profile-consume.folded"
        spy = bp.start(b.pid, secs, out)
        try:
            r = bl.worker(["consume", "--bootstrap", b.bootstrap, "--topic", "consume", "--records",
                           str(self.p["consume_records"]), "--timeout", str(secs)], timeout=secs + 60)
        except RuntimeError:
            r = None
        spy.wait()
        prof["consume"] = {"load": "librdkafka assign() consumer from offset 0, 1 partition",
                           **bp.summarize(out), "throughput": r}
        prof["rate_hz"] = 250
        prof["seconds"] = secs
        self.results["profile"] = prof
        self.save()

    # -- main ----------------------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        self.results["machine"] = machine()
        if a.worktree:
            self.src = ROOT
            rev = sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
            dirty = bool(sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "kbroker", "protocol"]))
            self.results["kbroker"] = {"source": "worktree", "commit": rev, "dirty": dirty}
        else:
            self.src = self.base / "kbroker-src"
            rev = export_head(self.src)
            self.results["kbroker"] = {"source": "HEAD", "commit": rev, "dirty": False}
        log(f"kbroker {self.results['kbroker']}; data under {self.base}")
        reference_kafka.ensure_kafka()
        bl.ensure_tools()
        phases = [("startup", self.startup), ("warmup", self.warmup), ("produce", self.produce), ("partitions", self.partitions),
                  ("conns", self.conns), ("consume", self.consume), ("e2e", self.e2e)]
        only = set(a.only.split(",")) if a.only else None
        try:
            for name, fn in phases:
                if name in ("startup", "warmup") or only is None or name in only:
                    t0 = time.monotonic()
                    fn()
                    log(f"phase {name} done in {time.monotonic() - t0:.0f}s")
            if not a.no_profile:
                self.profile()
        finally:
            self.results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            self.results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
            for b in self.brokers.values():
                b.stop()
            self.save()
            shutil.rmtree(self.base, ignore_errors=True)
        br.write(self.results, OUT)


def aggregate(runs: list[dict]) -> dict:
    """Median of every numeric field over the runs; the runs themselves under "runs"."""
    out: dict = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        out[k] = median(vals) if len(vals) == len(runs) else runs[0][k]
    if len(runs) > 1:
        out["runs"] = runs
    return out


def short(r: dict) -> str:
    keys = ("mb_per_s", "records_per_s", "p50_ms", "p99_ms", "p999_ms", "rss_max_mib")
    return ", ".join(f"{k}={r[k]:.1f}" for k in keys if isinstance(r.get(k), (int, float)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs (consume log < 1 GB)")
    ap.add_argument("--worktree", action="store_true",
                    help="run kbroker from the working tree instead of the committed HEAD")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles of kbroker")
    ap.add_argument("--only", help="comma-separated phases: produce,partitions,conns,consume,e2e")
    ap.add_argument("--reps", type=int, help="repetitions of each throughput scenario (default: 3, quick: 1)")
    ap.add_argument("--data-dir", default=None, help="where the brokers' logs go (default: $TMPDIR)")
    ap.add_argument("--report-only", action="store_true", help="regenerate RESULTS.md/plots from results.json")
    a = ap.parse_args(argv)
    if a.report_only:
        br.write(json.loads((OUT / "results.json").read_text()), OUT)
        return 0
    if re.search(r"\d", a.only or "") is not None:
        ap.error("--only takes phase names")
    Run(a).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
