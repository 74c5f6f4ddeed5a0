"""Apache Kafka's own load tools for scripts/bench_loads.py's users (the same for every broker): the
kafka-tools jars fetched with Maven into .cache/, and ProducerPerformance, EndToEndLatency and
ConsumerPerformance run and their output parsed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KAFKA_VERSION = os.environ.get("REFERENCE_KAFKA_VERSION", "4.4.0")

POM = ROOT / "scripts" / "bench-kafka" / "pom.xml"

CACHE = ROOT / ".cache" / f"bench-kafka-{KAFKA_VERSION}"

LIBS = CACHE / "libs"

TOOLS_LOG4J = """\
status = error
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.console.ref = STDERR
"""


def ensure_tools() -> Path:
    """Resolve kafka-tools and its runtime dependencies into the cache (idempotent)."""
    stamp = CACHE / ".complete"
    want = POM.read_bytes()
    if stamp.exists() and stamp.read_bytes() == want and any(LIBS.glob("kafka-tools-*.jar")):
        return LIBS
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: Maven is needed to fetch Apache Kafka's perf tools")
    if LIBS.exists():
        shutil.rmtree(LIBS)
    LIBS.mkdir(parents=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies", "-DincludeScope=runtime",
                    f"-DoutputDirectory={LIBS}"], check=True, cwd=ROOT)
    (CACHE / "log4j2.properties").write_text(TOOLS_LOG4J)
    stamp.write_bytes(want)
    return LIBS


def java_tool(main: str, args: list[str], heap: str = "512m") -> list[str]:
    libs = ensure_tools()
    return ["java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={CACHE / 'log4j2.properties'}",
            "-cp", f"{libs}/*", f"org.apache.kafka.tools.{main}", *args]


_PERF_RE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def producer_perf(bootstrap: str, topic: str, records: int, acks: str, compression: str,
                  record_size: int = 1024, throughput: int = -1, timeout: float = 900) -> dict:
    """Run Kafka's ProducerPerformance; returns its summary (MB/s there is MiB/s of values)."""
    props = [f"bootstrap.servers={bootstrap}", f"acks={acks}", "batch.size=65536", "linger.ms=5",
             f"compression.type={compression}"]
    cmd = java_tool("ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", str(throughput), "--command-property", *props])
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    m = None
    for line in res.stdout.splitlines():
        m = _PERF_RE.search(line) or m
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"ProducerPerformance failed ({res.returncode}): {res.stdout[-1500:]}\n"
                           f"{res.stderr[-1500:]}")
    n, rps, mbps, avg, mx, p50, p95, p99, p999 = m.groups()
    return {"records": int(n), "records_per_s": float(rps), "mib_per_s": float(mbps),
            "mb_per_s": float(rps) * record_size / 1e6, "lat_avg_ms": float(avg),
            "lat_max_ms": float(mx), "lat_p50_ms": int(p50), "lat_p95_ms": int(p95),
            "lat_p99_ms": int(p99), "lat_p999_ms": int(p999), "tool_wall_s": wall}


_E2E_RE = re.compile(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)")

_E2E_AVG_RE = re.compile(r"Avg latency: ([\d.]+) ms")


def end_to_end_latency(bootstrap: str, topic: str, records: int, acks: str = "1",
                       record_size: int = 1024, timeout: float = 600) -> dict:
    """Kafka's EndToEndLatency: send one record, wait until it is consumed, repeat (closed loop)."""
    cmd = java_tool("EndToEndLatency", ["--bootstrap-server", bootstrap, "--topic", topic,
                                        "--num-records", str(records), "--producer-acks", acks,
                                        "--record-size", str(record_size)])
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    m, avg = _E2E_RE.search(res.stdout), _E2E_AVG_RE.search(res.stdout)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"EndToEndLatency failed ({res.returncode}): {res.stdout[-1500:]}\n"
                           f"{res.stderr[-1500:]}")
    return {"records": records, "p50_ms": float(m[1]), "p99_ms": float(m[2]), "p999_ms": float(m[3]),
            "mean_ms": float(avg[1]) if avg else None, "tool_wall_s": wall}


def consumer_perf(bootstrap: str, topic: str, records: int, timeout: float = 600) -> dict:
    """Kafka's ConsumerPerformance (subscribe() in a consumer group; needs the group coordinator).
    Its fetch.* figures leave out the group join ("rebalance") time."""
    cmd = java_tool("ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--group", f"bench-perf-{os.getpid()}-{time.monotonic_ns()}", "--timeout", "20000",
        "--command-property", "auto.offset.reset=earliest"])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = [ln.split(",") for ln in res.stdout.splitlines() if ln.count(",") >= 9 and "start.time" not in ln]
    if res.returncode != 0 or not rows:
        raise RuntimeError(f"ConsumerPerformance failed ({res.returncode}): {res.stdout[-1000:]}\n"
                           f"{res.stderr[-1500:]}")
    f = [x.strip() for x in rows[-1]]
    consumed_mib, n = float(f[2]), int(float(f[4]))
    fetch_ms, fetch_mibps, fetch_nps = float(f[7]), float(f[8]), float(f[9])
    if n < records:
        raise RuntimeError(f"ConsumerPerformance read only {n} of {records} records")
    return {"records": n, "bytes_mib": consumed_mib, "rebalance_ms": float(f[6]), "fetch_ms": fetch_ms,
            "mib_per_s": fetch_mibps, "mb_per_s": fetch_mibps * 1048576 / 1e6, "records_per_s": fetch_nps,
            "total_mb_per_s": float(f[3]) * 1048576 / 1e6}
