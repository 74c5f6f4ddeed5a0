#!/usr/bin/env python3
"""How kbroker's cost grows with the work, side by side with Apache Kafka 4.4 (issue 23).

    .venv/bin/python scripts/bench_scale.py partitions [--points 1,100,1000,10000] [--reps 2]
    .venv/bin/python scripts/bench_scale.py durability [--producers 1,8,64]   (acks=all, flush per append)
    .venv/bin/python scripts/bench_scale.py sizes      [--sizes 100,1024,65536,1048576]
    .venv/bin/python scripts/bench_scale.py clients    [--clients 1,10,100] [--keys 1000] [--partitions 16]
    .venv/bin/python scripts/bench_scale.py groups     [--members 1,10,100]   (join, rebalance, fetch)
    .venv/bin/python scripts/bench_scale.py mixed      [--rates 1000,4000]    (OMB-like, e2e latency)
    .venv/bin/python scripts/bench_scale.py ceiling    [--clients 1,10,100]   (+ null broker, scripts/null_broker.c;
                                                    produce, then one consumer reads it back)
    .venv/bin/python scripts/bench_scale.py report     # bench/SCALE.md, plots, README tables from bench/scale.json

Every point runs kbroker and Kafka interleaved (the order alternates between repetitions), each on
a fresh data dir, with the same settings (scripts/bench_brokers.py BENCH_SETTINGS), and records the
load average before it. Results go to bench/scale.json (one key per curve, each point with every
repetition), ratios kbroker/Kafka are printed, plots go to bench/scale-*.png. kbroker runs from the
committed HEAD exported to a temp dir (`--worktree`: from this tree).

Partitions curve, per point P (one topic of P partitions):
- create: CreateTopics sent until Metadata shows all P partitions with a leader;
- idle RSS 5 s after that; Metadata latency: a Metadata request for that topic, pre-encoded, timed
  to the last byte of the answer (not decoded), median of 30 on one connection;
- produce: Kafka's ProducerPerformance with the RoundRobinPartitioner (every partition gets records,
  each request carries many partitions), 1 KiB records, acks=1, batch.size 16 KiB, linger.ms 5;
  MB/s and the broker's CPU seconds per GB;
- start-up: clean stop (SIGTERM), start on the same data dir, time until Metadata shows all P
  partitions led again;
- recovery: another produce run (acks=1, so unflushed data in the page cache), then kill -9 and
  start again: time until all P partitions are led.
"""

from __future__ import annotations

import argparse
import json
import signal
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
import bench_scale_nodes as sn  # noqa: E402
import bench_scale_report as report  # noqa: E402
import reference_kafka  # noqa: E402
from bench_machine import cpu_model  # noqa: E402
from bench_mixed_split import schedstat  # noqa: E402

ROOT = bb.ROOT
OUT = ROOT / "bench"
RESULTS = OUT / "scale.json"
BROKERS = ("kbroker", "kafka", "null")
log = bb.log


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def producer_perf(bootstrap: str, topic: str, records: int, *, acks: str = "1", record_size: int = 1024,
                  props: dict[str, str] | None = None, timeout: float = 900) -> dict:
    """Kafka's ProducerPerformance with extra producer properties."""
    conf = {"bootstrap.servers": bootstrap, "acks": acks, "batch.size": "16384", "linger.ms": "5",
            "compression.type": "none", **(props or {})}
    cmd = bl.java_tool("ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", "-1", "--command-property", *(f"{k}={v}" for k, v in conf.items())])
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    m = None
    for line in res.stdout.splitlines():
        m = bl._PERF_RE.search(line) or m
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"ProducerPerformance failed ({res.returncode}): {res.stdout[-1500:]}\n"
                           f"{res.stderr[-1500:]}")
    n, rps, _mbps, avg, _mx, p50, _p95, p99, p999 = m.groups()
    return {"records": int(n), "records_per_s": float(rps), "mb_per_s": float(rps) * record_size / 1e6,
            "lat_avg_ms": float(avg), "lat_p50_ms": int(p50), "lat_p99_ms": int(p99),
            "lat_p999_ms": int(p999), "tool_wall_s": wall}


def listen_overflows() -> int:
    """The machine's TcpExt ListenOverflows: SYNs dropped because a listener's accept queue
    (`socket.listen.backlog.size`, Kafka's default 50 on both brokers) was full; the client then
    retries the connect after 1 s, 3 s, ... (machine-wide: attributable on a quiet machine only)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def measured(node: sn.Node, fn) -> tuple[dict, float]:
    """Run fn() while watching the broker: (its result + peak RSS + broker CPU + the SYNs dropped on
    a full accept queue meanwhile, CPU seconds)."""
    overflows = listen_overflows()
    with bb.RssSampler(node.pid) as s:
        r = fn()
    r.update(rss_max_mib=s.max_kib / 1024, broker_cpu_s=s.cpu, listen_overflows=listen_overflows() - overflows)
    return r, s.cpu


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.partial: dict = {}
        self.base = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.data_dir))
        if args.worktree:
            self.src = ROOT
            commit = bb_sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
            self.source = {"source": "worktree", "commit": commit}
        else:
            self.src = self.base / "kbroker-src"
            commit = export(args.commit, self.src)
            self.source = {"source": args.commit, "commit": commit}
        log(f"kbroker {self.source}; data under {self.base}")
        reference_kafka.ensure_kafka()
        bl.ensure_tools()

    def node(self, kind: str, extra: dict[str, str] | None = None) -> sn.Node:
        return sn.make(kind, self.base, {**bb.BENCH_SETTINGS, **(extra or {})}, self.src)

    def interleave(self, reps: int, fn, runs: dict[str, list[dict]], saved) -> dict[str, list[dict]]:
        """fn(kind) -> dict, for both brokers, `reps` times, alternating which goes first; saved()
        after every run (into `runs`)."""
        brokers = tuple(b for b in BROKERS if b in self.args.brokers.split(","))
        for rep in range(reps):
            order = brokers if rep % 2 == 0 else brokers[::-1]
            for kind in order:
                la = loadavg()
                t0 = time.monotonic()
                self.partial = {}
                interrupted = None
                try:
                    r = fn(kind)
                except KeyboardInterrupt as e:  # SIGTERM/^C: keep what this run measured so far
                    r = {**self.partial, "error": "interrupted before the end of the run"}
                    interrupted = e
                except Exception as e:  # noqa: BLE001 - a failed point is a result
                    r = {**self.partial, "error": f"{type(e).__name__}: {str(e)[:600]}"}
                    log(f"  {kind}: FAILED {r['error']}")
                r["loadavg_before"] = la
                r["loadavg_after"] = loadavg()
                r["wall_s"] = time.monotonic() - t0
                runs[kind].append(r)
                saved()
                log(f"  {kind} [{rep + 1}/{reps}]: {report.short(r)}")
                if interrupted is not None:
                    raise interrupted
        return runs

    # -- partitions --------------------------------------------------------------------------
    def partitions_point(self, kind: str, parts: int) -> dict:
        a = self.args
        topic = f"scale-{parts}"
        node = self.node(kind)
        r: dict = self.partial  # filled as the run goes (kept if it is interrupted)
        try:
            r["fresh_start_s"] = node.start()
            t0 = time.monotonic()
            sn.create_topic(node.bootstrap, topic, parts, timeout=a.create_timeout)
            node.wait_topic(topic, parts, timeout=max(1.0, a.create_timeout - (time.monotonic() - t0)))
            r["create_s"] = time.monotonic() - t0
            time.sleep(a.settle)
            r["idle_rss_mib"] = node.rss_kib() / 1024
            probe = sn.RawMetadata(node.bootstrap, topic)
            lat = []
            for _ in range(a.metadata_calls):
                s, size = probe.call()
                lat.append(s * 1000)
            probe.close()
            lat.sort()
            r["metadata_ms"] = median(lat)
            r["metadata_p90_ms"] = lat[int(len(lat) * 0.9)]
            r["metadata_bytes"] = size
            if a.metadata_only:
                node.stop()
                return r
            rr = {"partitioner.class": "org.apache.kafka.clients.producer.RoundRobinPartitioner",
                  "buffer.memory": str(max(32 << 20, min(parts * 16384 * 2, 512 << 20)))}
            prod, cpu = measured(node, lambda: producer_perf(node.bootstrap, topic, a.records, props=rr))
            r["produce_mb_per_s"] = prod["mb_per_s"]
            r["produce_p99_ms"] = prod["lat_p99_ms"]
            r["produce_cpu_s_per_gb"] = cpu / (a.records * 1024 / 1e9)
            r["produce_rss_max_mib"] = prod["rss_max_mib"]
            r["stop_s"] = node.stop()
            r["startup_s"] = node.start(topic, parts)
            time.sleep(a.settle)
            r["idle_rss_restarted_mib"] = node.rss_kib() / 1024
            producer_perf(node.bootstrap, topic, a.recovery_records, props=rr)
            node.kill9()
            r["recovery_s"] = node.start(topic, parts)
            node.stop()
        finally:
            node.remove()
        return r

    def partitions(self) -> dict:
        return self.curve("partitions", "partitions", [int(x) for x in self.args.points.split(",")],
                          self.partitions_point)

    # -- one load on a fresh broker ----------------------------------------------------------
    def load_point(self, kind: str, settings: dict[str, str], parts: int, load, nbytes: float) -> dict:
        """Fresh broker with `settings`, a topic of `parts` partitions, then load(node, topic) measured
        (broker CPU, peak RSS); adds the broker's CPU seconds per GB of `nbytes`."""
        node = sn.make(kind, self.base, {**bb.BENCH_SETTINGS, **settings}, self.src, parts)
        try:
            node.start()
            topic = "load"
            if kind != "null":  # (every topic exists on the null broker)
                sn.create_topic(node.bootstrap, topic, parts)
                node.wait_topic(topic, parts)
            r, cpu = measured(node, lambda: load(node, topic))
            r["cpu_s_per_gb"] = cpu / (nbytes / 1e9)
            node.stop()
        finally:
            node.remove()
        return r

    def curve(self, name: str, xkey: str, xs: list[int], point) -> dict:
        """point(kind, x) for each x of `xs`, on each broker (interleaved), saved after every run."""
        a = self.args
        points = []
        for x in xs:
            log(f"{name}: {xkey}={x}")
            runs: dict[str, list[dict]] = {k: [] for k in BROKERS}
            points.append({xkey: x, "runs": runs})
            self.interleave(a.reps, lambda kind, x=x: point(kind, x), runs,
                            lambda: self.save(name, {"params": vars_of(a), "points": points}))
        return {"params": vars_of(a), "points": points}

    def produce_conns(self, node: sn.Node, topic: str, conns: int, acks: str) -> dict:
        """bench_loads produce-conns: --records 1 KiB records from `conns` librdkafka producers,
        keyed with --keys distinct keys if the curve has that option (0 or absent: no keys)."""
        a = self.args
        return bl.worker(["produce-conns", "--bootstrap", node.bootstrap, "--topic", topic,
                          "--records", str(a.records), "--conns", str(conns), "--acks", acks,
                          "--keys", str(getattr(a, "keys", 0))])

    def producers_curve(self, name: str, xkey: str, counts: str, acks: str, settings: dict[str, str]) -> dict:
        """librdkafka producer connections (bench_loads produce-conns, --records 1 KiB records over
        --partitions partitions): a point per count of the comma-separated `counts`."""
        a = self.args

        def point(kind: str, conns: int) -> dict:
            return self.load_point(kind, settings, a.partitions,
                                   lambda node, topic: self.produce_conns(node, topic, conns, acks),
                                   a.records * 1024)

        return self.curve(name, xkey, [int(x) for x in counts.split(",")], point)

    # -- durability: log.flush.interval.messages=1 -------------------------------------------
    def durability(self) -> dict:
        return self.producers_curve("durability", "producers", self.args.producers, "all",
                                    {"log.flush.interval.messages": "1"})

    # -- record sizes ----------------------------------------------------------------------
    def sizes(self) -> dict:
        a = self.args
        settings = {"message.max.bytes": str(4 << 20)}

        def point(kind: str, size: int) -> dict:
            records = max(200, int(a.mb * 1e6 / size))
            if size <= 1024:
                records = min(records, a.max_records)

            def load(node: sn.Node, topic: str) -> dict:
                return producer_perf(node.bootstrap, topic, records, record_size=size,
                                     props={"batch.size": "65536", "max.request.size": str(4 << 20)})
            return self.load_point(kind, settings, 1, load, records * size)

        return self.curve("sizes", "record_size", [int(x) for x in a.sizes.split(",")], point)

    # -- producer connections --------------------------------------------------------------
    def clients(self) -> dict:
        return self.producers_curve("clients", "clients", self.args.clients, "1", {})

    # -- consumer groups ---------------------------------------------------------------------
    def groups(self) -> dict:
        a = self.args

        def point(kind: str, members: int) -> dict:
            parts = max(a.partitions, 2 * members)

            def load(node: sn.Node, topic: str) -> dict:
                return bl.worker(["group", "--bootstrap", node.bootstrap, "--topic", topic,
                                  "--records", str(a.records), "--conns", str(members),
                                  "--timeout", "300"], timeout=900)
            return self.load_point(kind, {}, parts, load, a.records * 1024)

        return self.curve("groups", "members", [int(x) for x in a.members.split(",")], point)

    # -- the ceiling: the same client against a broker that does no work ---------------------
    def ceiling(self) -> dict:
        """Per point: the clients curve's producers (acks=1) send --records records; then one
        producer (not measured) tops the topic up to --consume-records records and one librdkafka
        consumer (the `consume` worker of bench_vs_kafka: assign() from offset 0, no group) reads
        them back from every partition; broker CPU measured apart for each. The null broker
        stores nothing and serves a fixed batch of 64 records of 1 KiB at any offset."""
        a = self.args

        def point(kind: str, conns: int) -> dict:
            node = sn.make(kind, self.base, dict(bb.BENCH_SETTINGS), self.src, a.partitions)
            try:
                node.start()
                topic = "load"
                if kind != "null":  # (every topic exists on the null broker)
                    sn.create_topic(node.bootstrap, topic, a.partitions)
                    node.wait_topic(topic, a.partitions)
                r, cpu = measured(node, lambda: self.produce_conns(node, topic, conns, "1"))
                r["cpu_s_per_gb"] = cpu / (a.records * 1024 / 1e9)
                self.partial.update(r)
                if a.consume_records:
                    more = a.consume_records - a.records
                    if more > 0:  # (not measured) one more keyed producer, so the read is long enough
                        bl.worker(["produce-conns", "--bootstrap", node.bootstrap, "--topic", topic,
                                   "--records", str(more), "--conns", "1", "--acks", "1",
                                   "--keys", str(a.keys)])
                    c, ccpu = measured(node, lambda: bl.worker(
                        ["consume", "--bootstrap", node.bootstrap, "--topic", topic, "--records",
                         str(a.consume_records), "--timeout", "300"], timeout=600))
                    if not c["complete"]:
                        raise RuntimeError(f"consumed only {c['records']} of {a.consume_records} records")
                    r.update(consume_mb_per_s=c["mb_per_s"], consume_steady_mb_per_s=c.get("steady_mb_per_s"),
                             consume_records_per_s=c["records_per_s"],
                             consume_seconds=c["seconds"], consume_first_record_s=c["first_record_s"],
                             consume_cpu_s_per_gb=ccpu / (c["bytes"] / 1e9))
                node.stop()
            finally:
                node.remove()
            return r

        return self.curve("ceiling", "clients", [int(x) for x in a.clients.split(",")], point)

    # -- TLS: the same broker's PLAINTEXT and SSL listeners -----------------------------------
    def tls(self) -> dict:
        """Per run one fresh broker with a PLAINTEXT and an SSL listener (PEM key store, RSA 2048) and
        two topics of --partitions partitions; --records 1 KiB records produced by N librdkafka
        producers (no keys, acks=1) to one topic over PLAINTEXT and to the other over SSL, then each
        topic read back by one librdkafka consumer (the ceiling's `consume`) over the listener that
        wrote it. The listeners' order alternates from run to run of a broker. Per phase: MB/s,
        broker CPU per GB and the broker's CPU seconds per second of the phase (cores: kbroker's
        event loop is one thread; Kafka's network and I/O threads can use both CPUs)."""
        from bench_tls_fetch import make_certs

        a = self.args
        certs = self.base / "certs"
        certs.mkdir(exist_ok=True)
        make_certs(certs)
        client_tls = ["--config", "security.protocol=ssl", "--config", f"ssl.ca.location={certs / 'ca.pem'}"]
        nbytes = a.records * 1024
        turns: dict[str, int] = {}

        def point(kind: str, conns: int) -> dict:
            turn = turns.get(kind, 0)
            turns[kind] = turn + 1
            modes = ("plain", "ssl") if turn % 2 == 0 else ("ssl", "plain")
            node = sn.make(kind, self.base, dict(bb.BENCH_SETTINGS), self.src, a.partitions,
                           tls_store=certs / "store.pem")
            r: dict = self.partial
            r["order"] = ",".join(modes)
            try:
                node.start()
                for mode in modes:
                    sn.create_topic(node.bootstrap, f"tls-{mode}", a.partitions)
                    node.wait_topic(f"tls-{mode}", a.partitions)

                def where(mode: str) -> list[str]:
                    if mode == "plain":
                        return ["--bootstrap", node.bootstrap, "--topic", "tls-plain"]
                    return ["--bootstrap", node.ssl_bootstrap, "--topic", "tls-ssl", *client_tls]

                for phase in ("produce", "consume"):
                    for mode in modes:
                        if phase == "produce":
                            args = ["produce-conns", *where(mode), "--records", str(a.records),
                                    "--conns", str(conns), "--acks", "1"]
                        else:
                            args = ["consume", *where(mode), "--records", str(a.records), "--timeout", "300"]
                        res, cpu = measured(node, lambda args=args: bl.worker(args, timeout=600))
                        if phase == "consume" and not res["complete"]:
                            raise RuntimeError(f"{mode}: consumed only {res['records']} of {a.records} records")
                        r[f"{phase}_{mode}_mb_per_s"] = res["mb_per_s"]
                        r[f"{phase}_{mode}_cpu_s_per_gb"] = cpu / (nbytes / 1e9)
                        r[f"{phase}_{mode}_broker_cores"] = cpu / res["seconds"]
                for phase in ("produce", "consume"):
                    r[f"{phase}_ssl_over_plain"] = r[f"{phase}_ssl_mb_per_s"] / r[f"{phase}_plain_mb_per_s"]
                node.stop()
            finally:
                node.remove()
            return r

        return self.curve("tls", "clients", [int(x) for x in a.clients.split(",")], point)

    # -- OMB-like mixed load ----------------------------------------------------------------
    def mixed(self) -> dict:
        """Producers with keys, a consumer group, and retention deleting 1 MiB segments while it
        runs (log.retention.bytes 4 MiB per partition, checked every 5 s), at fixed offered rates."""
        a = self.args
        settings = {"log.segment.bytes": str(1 << 20), "log.retention.bytes": str(4 << 20),
                    "log.retention.check.interval.ms": "5000"}

        def point(kind: str, rate: int) -> dict:
            def load(node: sn.Node, topic: str) -> dict:
                s0 = schedstat(node.pid)
                r = bl.worker(["mixed", "--bootstrap", node.bootstrap, "--topic", topic, "--rate", str(rate),
                               "--seconds", str(a.seconds), "--conns", str(a.producers),
                               "--consumers", str(a.consumers), "--acks", "1", "--linger-ms", "1"],
                              timeout=a.seconds + 600)
                # the broker's threads: seconds on a CPU and seconds runnable but waiting for one
                # (on this shared machine the second is where a one-thread broker's time goes)
                s1 = schedstat(node.pid)
                r.update(sched_run_s=(s1[0] - s0[0]) / 1e9, sched_wait_s=(s1[1] - s0[1]) / 1e9,
                         loadavg_after=loadavg())
                return r
            return self.load_point(kind, settings, a.partitions, load, rate * a.seconds * 1024)

        return self.curve("mixed", "rate", [int(x) for x in a.rates.split(",")], point)

    # -- bookkeeping -------------------------------------------------------------------------
    def save(self, curve: str, data: dict) -> None:
        OUT.mkdir(exist_ok=True)
        allres = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        xkey = report.CURVES[curve][0]
        for p in data["points"]:
            p.setdefault("kbroker", self.source)
            p.setdefault("started", self.started)
        mine = {p[xkey] for p in data["points"]}
        # points of earlier runs that this run does not measure are kept (each says its run)
        older = [p for p in allres.get(curve, {}).get("points", []) if p[xkey] not in mine]
        points = sorted(older + data["points"], key=lambda p: p[xkey])
        allres[curve] = {**data, "points": points, "kbroker": self.source, "machine": machine_info(),
                         "started": self.started, "saved": now()}
        RESULTS.write_text(json.dumps(allres, indent=1) + "\n")

    def run(self) -> None:
        import shutil

        self.started = now()
        try:
            getattr(self, self.args.curve)()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
        if RESULTS.parent == OUT:
            report.write(json.loads(RESULTS.read_text()), OUT, only=self.args.curve)
        else:
            print(report.table(self.args.curve, json.loads(RESULTS.read_text())[self.args.curve]))


def export(rev: str, dest: Path) -> str:
    """The tree of commit `rev` into dest, byte-compiled (as bench_vs_kafka.export_head does)."""
    commit = bb_sh(["git", "-C", str(ROOT), "rev-parse", rev])
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.wait()
    subprocess.run([bb.PY, "-m", "compileall", "-q", str(dest / "kbroker"), str(dest / "protocol")], check=True)
    return commit


def bb_sh(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def vars_of(a: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(a).items() if k not in ("curve", "data_dir")}


def machine_info() -> dict:
    import os
    import platform

    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "kafka": reference_kafka.KAFKA_VERSION}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="curve", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reps", type=int, default=2, help="repetitions of each point per broker")
        p.add_argument("--worktree", action="store_true", help="kbroker from this tree, not HEAD")
        p.add_argument("--commit", default="HEAD", help="kbroker from this commit (default HEAD)")
        p.add_argument("--data-dir", default=None, help="where the brokers' logs go (default: $TMPDIR)")
        p.add_argument("--settle", type=float, default=5.0, help="seconds idle before reading RSS")
        p.add_argument("--brokers", default="kbroker,kafka", help="which brokers to run")
        p.add_argument("--out", default=None, help="results file (default bench/scale.json)")

    def producer_clients(p: argparse.ArgumentParser) -> None:
        p.add_argument("--clients", default="1,10,100")
        p.add_argument("--records", type=int, default=100_000, help="1 KiB records per run")
        p.add_argument("--partitions", type=int, default=16)
        p.add_argument("--keys", type=int, default=1000,
                       help="distinct record keys (the partitioner places them); 0: no keys")

    p = sub.add_parser("partitions", help="1..10,000 partitions")
    common(p)
    p.add_argument("--points", default="1,100,1000,10000")
    p.add_argument("--records", type=int, default=200_000, help="1 KiB records in the measured produce")
    p.add_argument("--recovery-records", type=int, default=50_000, help="records written before kill -9")
    p.add_argument("--metadata-calls", type=int, default=30)
    p.add_argument("--metadata-only", action="store_true", help="stop after the create and Metadata figures")
    p.add_argument("--create-timeout", type=float, default=900.0,
                   help="seconds the topic's creation may take (all partitions led) before the run fails")
    p = sub.add_parser("durability", help="log.flush.interval.messages=1, 1/8/64 producers, acks=all")
    common(p)
    p.add_argument("--producers", default="1,8,64")
    p.add_argument("--records", type=int, default=40_000, help="1 KiB records per run")
    p.add_argument("--partitions", type=int, default=1)
    p = sub.add_parser("sizes", help="record sizes, one ProducerPerformance")
    common(p)
    p.add_argument("--sizes", default="100,1024,65536,1048576")
    p.add_argument("--mb", type=float, default=100, help="MB per run")
    p.add_argument("--max-records", type=int, default=500_000, help="cap on records of small sizes")
    p = sub.add_parser("clients", help="1/10/100 librdkafka producer connections")  # (groups: below)
    common(p)
    producer_clients(p)
    p = sub.add_parser("groups", help="consumer groups of 1/10/100 librdkafka members: join, rebalance, fetch")
    common(p)
    p.add_argument("--members", default="1,10,100")
    p.add_argument("--records", type=int, default=100_000, help="1 KiB records fetched by the group")
    p.add_argument("--partitions", type=int, default=16, help="at least this many (and 2 per member)")
    p = sub.add_parser("ceiling", help="librdkafka producers: kbroker, Kafka and the null broker (C)")
    common(p)
    p.set_defaults(brokers="kbroker,kafka,null")
    producer_clients(p)
    p.add_argument("--consume-records", type=int, default=500_000,
                   help="1 KiB records the consumer reads back (the topic topped up to this); 0: no consumer")
    p = sub.add_parser("mixed", help="OMB-like: keyed producers, a consumer group, retention; e2e latency")
    common(p)
    p.add_argument("--rates", default="1000,4000", help="offered records/s (1 KiB each)")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--producers", type=int, default=4)
    p.add_argument("--consumers", type=int, default=4)
    p.add_argument("--partitions", type=int, default=16)
    p = sub.add_parser("tls", help="PLAINTEXT against SSL on the same broker: librdkafka produce and consume")
    common(p)
    p.add_argument("--clients", default="1", help="producer connections per point (the consumer is one)")
    p.add_argument("--records", type=int, default=200_000, help="1 KiB records per listener")
    p.add_argument("--partitions", type=int, default=16)
    sub.add_parser("report", help="rewrite bench/SCALE.md and plots from bench/scale.json")
    a = ap.parse_args(argv)
    if a.curve == "report":
        res = json.loads(RESULTS.read_text())
        report.write(res, OUT)
        report.update_readme(res, ROOT / "README.md")
        return 0
    if a.out:
        globals()["RESULTS"] = Path(a.out)
    Bench(a).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
