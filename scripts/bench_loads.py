"""Load generators for scripts/bench_vs_kafka.py, the same for every broker.

- Kafka's own ProducerPerformance (org.apache.kafka:kafka-tools, Java), fetched with Maven from
  scripts/bench-kafka/pom.xml into .cache/bench-kafka-<version>/libs;
- librdkafka (confluent-kafka) workers, run as subprocesses of this module (`python
  scripts/bench_loads.py <worker> ...`, one JSON line on stdout):
  `consume`  read a partition set from the start with assign() (no group) and time it;
  `e2e`      end-to-end latency at a fixed rate: producer and consumer in two processes, the send
             time (CLOCK_REALTIME ns) in the first 8 bytes of each record;
  `produce-conns` N producer instances (N connections) in one process, records spread round robin
             over the instances; with `--keys K` each record has one of K keys (the partitioner
             picks its partition), without, librdkafka spreads them over the partitions itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_client_stats import ClientStats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KAFKA_VERSION = os.environ.get("REFERENCE_KAFKA_VERSION", "4.4.0")
POM = ROOT / "scripts" / "bench-kafka" / "pom.xml"
CACHE = ROOT / ".cache" / f"bench-kafka-{KAFKA_VERSION}"
LIBS = CACHE / "libs"
PY = str(ROOT / ".venv" / "bin" / "python")
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


def worker(args: list[str], timeout: float = 900) -> dict:
    """Run a librdkafka worker of this module in a subprocess; returns its JSON result."""
    res = subprocess.run([PY, __file__, *args], capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"worker {args[0]} failed ({res.returncode}): {res.stdout[-1000:]}\n"
                           f"{res.stderr[-2000:]}")
    return json.loads(lines[-1])


# --- admin ------------------------------------------------------------------------------------

def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                               operation_timeout=timeout, request_timeout=timeout)
    futs[topic].result(timeout)
    # wait until metadata shows every partition with a leader
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic} not ready")


# --- librdkafka workers -----------------------------------------------------------------------

# librdkafka settings added to every client of a worker (`--config key=value`, e.g. for TLS)
CLIENT_CONFIG: dict[str, str] = {}


def _consumer(bootstrap: str, extra: dict | None = None):
    from confluent_kafka import Consumer

    conf = {"bootstrap.servers": bootstrap, "group.id": f"bench-{os.getpid()}",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "enable.partition.eof": False, "api.version.request": True}
    conf.update(extra or {})
    conf.update(CLIENT_CONFIG)
    return Consumer(conf)


def _sched_self() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable and waiting for one) of this process's threads so far,
    from /proc/self/task/*/schedstat (zeros where it cannot be read)."""
    run = wait = 0
    for path in Path("/proc/self/task").glob("*/schedstat"):
        try:
            a, b, _ = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            continue
        run, wait = run + a, wait + b
    return run / 1e9, wait / 1e9


def _partitions(bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_CONFIG}).list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions)


def w_consume(a: argparse.Namespace) -> dict:
    """Read `records` records from the start of every partition of the topic; time it."""
    from confluent_kafka import TopicPartition

    c = _consumer(a.bootstrap, {"fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 1048576,
                                "queued.max.messages.kbytes": 262144, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(a.topic, p, 0) for p in _partitions(a.bootstrap, a.topic)])
    n = nbytes = 0
    t_start = time.monotonic()
    t_first = t_steady = None
    first_bytes = 0
    deadline = t_start + a.timeout
    while n < a.records and time.monotonic() < deadline:
        msgs = c.consume(num_messages=10000, timeout=1.0)
        if msgs and t_first is None:
            t_first = time.monotonic()
        for m in msgs:
            if m.error() is None:
                n += 1
                nbytes += len(m)
        if msgs and t_steady is None:
            t_steady = time.monotonic()
            first_bytes = nbytes
    t_end = time.monotonic()
    c.close()
    el = t_end - t_start
    # steady: after the first consume() call's records (that call waits for 10,000 records or 1 s)
    # to the end, without the start-up (the client's first Fetch sometimes starts ~1 s late, with
    # any broker, the null broker included)
    steady_s = t_end - (t_steady or t_end)
    return {"records": n, "bytes": nbytes, "seconds": el, "records_per_s": n / el,
            "mb_per_s": nbytes / el / 1e6, "mib_per_s": nbytes / el / 1048576,
            "first_record_s": (t_first or t_end) - t_start, "complete": n >= a.records,
            "steady_mb_per_s": (nbytes - first_bytes) / steady_s / 1e6 if steady_s > 0 else None}


def w_e2e_consumer(a: argparse.Namespace) -> dict:
    from confluent_kafka import OFFSET_END, TopicPartition

    c = _consumer(a.bootstrap, {"fetch.wait.max.ms": 500, "fetch.min.bytes": 1})
    # start at the high watermark, resolved now, so that the fetcher is running before the producer
    tps = []
    for p in _partitions(a.bootstrap, a.topic):
        _lo, hi = c.get_watermark_offsets(TopicPartition(a.topic, p, OFFSET_END), timeout=30)
        tps.append(TopicPartition(a.topic, p, hi))
    c.assign(tps)
    for _ in range(5):
        c.poll(0.1)
    print("READY", flush=True)
    lats: list[int] = []
    deadline = time.monotonic() + a.timeout
    while len(lats) < a.records and time.monotonic() < deadline:
        # poll(), not consume(n): consume() waits for n records or the timeout, which adds latency
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            now = time.time_ns()
            lats.append(now - int.from_bytes(m.value()[:8], "big"))
    c.close()
    return {"latencies_ns": lats}


def w_e2e(a: argparse.Namespace) -> dict:
    """Fixed-rate producer here, consumer in a subprocess; latencies after a warm-up second."""
    from confluent_kafka import Producer

    n = int(a.rate * a.seconds)
    cons = subprocess.Popen([PY, __file__, "e2e-consumer", "--bootstrap", a.bootstrap, "--topic", a.topic,
                             "--records", str(n), "--timeout", str(a.seconds + 60)],
                            stdout=subprocess.PIPE, text=True)
    assert cons.stdout is not None
    line = cons.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError("e2e consumer did not start")
    time.sleep(1.0)
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": a.linger_ms,
                  "batch.size": 65536, "compression.type": "none"})
    pad = b"x" * (a.record_size - 8)
    t0 = time.monotonic()
    late = 0
    for i in range(n):
        target = t0 + i / a.rate
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        elif d < -0.01:
            late += 1
        p.produce(a.topic, time.time_ns().to_bytes(8, "big") + pad)
        p.poll(0)
    p.flush(60)
    produce_s = time.monotonic() - t0
    out, _ = cons.communicate(timeout=a.seconds + 120)
    lats = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])["latencies_ns"]
    warm = int(a.rate)  # drop the first second
    ms = sorted(x / 1e6 for x in lats[warm:])

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")

    return {"sent": n, "received": len(lats), "rate": a.rate, "achieved_rate": n / produce_s,
            "late_sends": late, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": ms[-1] if ms else float("nan"), "mean_ms": sum(ms) / len(ms) if ms else float("nan")}


def w_produce_conns(a: argparse.Namespace) -> dict:
    """`conns` producer instances (one connection each), `records` records round robin over them;
    with `keys` > 0 the records carry keys `key-0000`.. (a stride through them, as `mixed` does), so
    librdkafka's default partitioner (consistent_random: a hash of the key) places them."""
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": 5, "batch.size": 65536,
            "compression.type": "none", "queue.buffering.max.kbytes": 65536, **CLIENT_CONFIG}
    producers = [Producer(dict(conf, **{"client.id": f"bench-{i}"})) for i in range(a.conns)]
    for p in producers:  # connect before the clock starts
        p.list_topics(a.topic, timeout=30)
    errors = 0

    def cb(err, _msg):
        nonlocal errors
        if err is not None:
            errors += 1

    value = b"v" * a.record_size
    keys = [b"key-%04d" % k for k in range(a.keys)]
    nkeys = len(keys)
    t0 = time.monotonic()
    k = len(producers)
    for i in range(a.records):
        p = producers[i % k]
        key = keys[(i * 7919) % nkeys] if nkeys else None
        while True:
            try:
                p.produce(a.topic, value, key=key, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            for q in producers:
                q.poll(0)
    for p in producers:
        p.flush(300)
    el = time.monotonic() - t0
    return {"conns": a.conns, "records": a.records, "keys": nkeys, "errors": errors, "seconds": el,
            "records_per_s": a.records / el, "mb_per_s": a.records * a.record_size / el / 1e6,
            "mib_per_s": a.records * a.record_size / el / 1048576}


def w_group(a: argparse.Namespace) -> dict:
    """A consumer group of `conns` librdkafka members (classic protocol) on the topic:

    - join: all members subscribe; seconds until each has a partition and together they hold every
      partition once (the topic needs at least conns + 1 partitions);
    - rebalance: one more member subscribes; seconds until the same holds for conns + 1 members;
    - fetch: every member pauses, `records` records of `record_size` are produced, then all
      resume; MB/s until the group has consumed them all."""
    from confluent_kafka import Consumer, Producer

    parts = set(_partitions(a.bootstrap, a.topic))
    conf = {"bootstrap.servers": a.bootstrap, "group.id": f"bench-group-{os.getpid()}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.wait.max.ms": 100, "session.timeout.ms": 45000, "heartbeat.interval.ms": 3000,
            "queued.max.messages.kbytes": 16384}
    assigned: list[set[int]] = []
    consumers: list = []
    state = {"records": 0, "bytes": 0}

    def add_member() -> None:
        i = len(consumers)
        assigned.append(set())

        def on_assign(_c, ps, i=i) -> None:
            assigned[i] = {p.partition for p in ps}

        def on_revoke(_c, _ps, i=i) -> None:
            assigned[i] = set()

        c = Consumer(dict(conf, **{"client.id": f"bench-member-{i}"}))
        c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
        consumers.append(c)

    def poll_all() -> None:
        for c in consumers:
            for m in c.consume(1000, 0):
                if m.error() is None:
                    state["records"] += 1
                    state["bytes"] += len(m.value() or b"")

    def stable() -> bool:
        if not all(assigned):
            return False
        union = set().union(*assigned)
        return union == parts and sum(len(x) for x in assigned) == len(parts)

    def wait_stable(what: str) -> float:
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        while not stable():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {sum(1 for x in assigned if x)} of {len(consumers)} members assigned")
            poll_all()
            time.sleep(0.005)
        return time.monotonic() - t0

    t0 = time.monotonic()
    for _ in range(a.conns):
        add_member()
    wait_stable("join")
    join_s = time.monotonic() - t0  # from the first member's creation
    add_member()
    rebalance_s = wait_stable("rebalance")
    from confluent_kafka import TopicPartition

    for c, mine in zip(consumers, assigned, strict=True):
        c.pause([TopicPartition(a.topic, p) for p in mine])
    producer = Producer({"bootstrap.servers": a.bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 65536,
                         "queue.buffering.max.kbytes": 262144})
    value = b"v" * a.record_size
    for i in range(a.records):
        while True:
            try:
                producer.produce(a.topic, value, partition=i % len(parts))
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
            poll_all()  # (keeps the members' heartbeats served while paused)
    producer.flush(300)
    state["records"] = state["bytes"] = 0
    t1 = time.monotonic()
    for c, mine in zip(consumers, assigned, strict=True):
        c.resume([TopicPartition(a.topic, p) for p in mine])
    deadline = t1 + a.timeout
    while state["records"] < a.records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fetch: {state['records']} of {a.records} records")
        poll_all()
    fetch_s = time.monotonic() - t1
    result = {"members": a.conns, "partitions": len(parts), "join_s": join_s, "rebalance_s": rebalance_s,
              "records": a.records, "fetch_s": fetch_s, "fetch_mb_per_s": state["bytes"] / fetch_s / 1e6,
              "fetch_records_per_s": state["records"] / fetch_s}
    # Closing the members one by one makes each leave a rebalance the others (not polled) hold up:
    # 101 closes against Kafka took over ten minutes. The figures are taken: exit without them.
    print(json.dumps(result), flush=True)
    os._exit(0)


def w_mixed_consumer(a: argparse.Namespace) -> dict:
    """`conns` members of one consumer group; READY once they hold every partition; then the
    end-to-end latency of each record (its first 8 bytes: the producer's time_ns)."""
    from confluent_kafka import Consumer

    parts = set(_partitions(a.bootstrap, a.topic))
    conf = {"bootstrap.servers": a.bootstrap, "group.id": f"bench-mixed-{os.getpid()}",
            "auto.offset.reset": "latest", "enable.auto.commit": True, "enable.partition.eof": False,
            "fetch.wait.max.ms": 100, "fetch.min.bytes": 1}
    stats = ClientStats(a.stats)
    if a.stats:
        conf.update({"statistics.interval.ms": 1000, "stats_cb": stats.cb})
    assigned: list[set[int]] = [set() for _ in range(a.conns)]
    consumers = []
    for i in range(a.conns):
        def on_assign(c, ps, i=i) -> None:
            assigned[i] = {p.partition for p in ps}
            c.assign(ps)

        c = Consumer(dict(conf, **{"client.id": f"bench-mixed-{i}"}))
        c.subscribe([a.topic], on_assign=on_assign)
        consumers.append(c)
    deadline = time.monotonic() + 120
    while set().union(*assigned) != parts or not all(assigned[: min(a.conns, len(parts))]):
        if time.monotonic() > deadline:
            raise TimeoutError("the group did not get every partition")
        for c in consumers:
            c.poll(0.01)
    for _ in range(20):  # positions resolved (auto.offset.reset=latest) before the producers start
        for c in consumers:
            c.poll(0.01)
    # each partition's next offset: the end offset before the producers start (the topic is new
    # and empty in bench_scale.py); a record read past it means the records in between were never
    # read: deleted by retention before this consumer got to them, and the position reset to the
    # end (auto.offset.reset=latest) on OFFSET_OUT_OF_RANGE
    expect: dict[int, int] = {}
    for c in consumers:
        for tp in c.position(c.assignment()):
            expect[tp.partition] = max(tp.offset, 0)
    start = dict(expect)
    got: dict[int, int] = {}  # records read per partition
    print("READY", flush=True)
    lats: list[int] = []
    # with message.timestamp.type=LogAppendTime: ms from the send to the broker's append, and
    # from the append to the record in the consumer's hands
    to_append: list[int] = []
    from_append: list[int] = []
    skipped = 0
    deadline = time.monotonic() + a.timeout
    stats.reset()
    t0, cpu0, sched0 = time.monotonic(), os.times(), _sched_self()
    while len(lats) + skipped < a.records and time.monotonic() < deadline:
        for c in consumers:
            for m in c.consume(500, 0.002):
                if m.error() is None:
                    now = time.time_ns()
                    sent = int.from_bytes(m.value()[:8], "big")
                    lats.append(now - sent)
                    kind, ts = m.timestamp()
                    if kind == 2:  # TIMESTAMP_LOG_APPEND_TIME
                        to_append.append(ts * 1_000_000 - sent)
                        from_append.append(now - ts * 1_000_000)
                    off, p = m.offset(), m.partition()
                    skipped += max(0, off - expect.get(p, off))
                    expect[p] = off + 1
                    got[p] = got.get(p, 0) + 1
    cpu1, sched1 = os.times(), _sched_self()
    wall = time.monotonic() - t0
    # never read: every record appended after the start and not read, whether or not a later
    # record of its partition was (`skipped` counts only the jumps seen: a position reset to the
    # log end after the producers stopped leaves the records before it unread and uncounted there)
    ends: dict[int, int] = {}
    for c in consumers:
        for tp in c.assignment():
            ends[tp.partition] = c.get_watermark_offsets(tp, timeout=10)[1]
    never_read = sum(max(0, hi - start.get(p, 0) - got.get(p, 0)) for p, hi in ends.items())
    for c in consumers:
        c.close()
    # the consumer process's CPU seconds (librdkafka's threads and this loop) over `wall`, and
    # each partition's next offset to read (where the consumers stopped)
    return {"latencies_ns": lats, "to_append_ns": to_append, "from_append_ns": from_append,
            "skipped": skipped, "never_read": never_read, "stats": stats.summary(),
            "consumer_cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system, "consumer_wall_s": wall,
            "consumer_sched_wait_s": sched1[1] - sched0[1],
            "next_offsets": {str(k): v for k, v in sorted(expect.items())}}


def w_mixed(a: argparse.Namespace) -> dict:
    """An OpenMessaging-Benchmark-like load: `producers` producers sending keyed records (1,000
    keys) at a fixed total `rate` for `seconds`, a group of `consumers` members reading them in a
    subprocess; throughput and end-to-end latency percentiles after a warm-up of 5 s."""
    from confluent_kafka import Producer

    n = int(a.rate * a.seconds)
    cons = subprocess.Popen([PY, __file__, "mixed-consumer", "--bootstrap", a.bootstrap, "--topic", a.topic,
                             "--records", str(n), "--timeout", str(a.seconds + 60), "--conns", str(a.consumers),
                             *(["--stats"] if a.stats else [])],
                            stdout=subprocess.PIPE, text=True)
    assert cons.stdout is not None
    line = cons.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError("mixed consumers did not start")
    conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": a.linger_ms, "batch.size": 65536,
            "compression.type": "none"}
    stats = ClientStats(a.stats)
    if a.stats:
        conf.update({"statistics.interval.ms": 1000, "stats_cb": stats.cb})
    # records the producers gave up on (a delivery error: never appended, so never consumed)
    failed: dict[str, int] = {}

    def delivered(err, _msg) -> None:
        if err is not None:
            failed[err.name()] = failed.get(err.name(), 0) + 1

    conf["on_delivery"] = delivered
    producers = [Producer(dict(conf, **{"client.id": f"bench-mixed-p{i}"})) for i in range(a.conns)]
    keys = [b"key-%04d" % k for k in range(1000)]
    pad = b"x" * (a.record_size - 8)
    t0 = time.monotonic()
    cpu0, sched0 = os.times(), _sched_self()
    late = 0
    k = len(producers)
    for i in range(n):
        target = t0 + i / a.rate
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        elif d < -0.01:
            late += 1
        p = producers[i % k]
        p.produce(a.topic, time.time_ns().to_bytes(8, "big") + pad, key=keys[(i * 7919) % 1000])
        p.poll(0)
    unflushed = sum(p.flush(60) for p in producers)
    produce_s = time.monotonic() - t0
    cpu1, sched1 = os.times(), _sched_self()
    out, _ = cons.communicate(timeout=a.seconds + 180)
    result = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    lats = result["latencies_ns"]
    warm = int(a.rate * 5)
    ms = sorted(x / 1e6 for x in lats[warm:])

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")

    split = {}
    for key in ("to_append", "from_append"):
        xs = sorted(x / 1e6 for x in result.get(f"{key}_ns", [])[warm:])
        if xs:
            split[f"{key}_p50_ms"] = xs[len(xs) // 2]
            split[f"{key}_p99_ms"] = xs[int(len(xs) * 0.99)]
    # skipped: records the consumers jumped over (retention deleted them first and the position
    # went to the log end); never_read: every record appended and not read (those, and any after a
    # jump no later record revealed); the percentiles are over the records read only.
    # delivery_failed / unflushed: records the producers gave up on or still held after flush(60)
    return {"sent": n, "received": len(lats), "skipped": result.get("skipped", 0),
            "never_read": result.get("never_read"), "rate": a.rate,
            "achieved_rate": n / produce_s, "mb_per_s": n * a.record_size / produce_s / 1e6, "late_sends": late, **split,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": ms[-1] if ms else float("nan"),
            "delivery_failed": failed, "unflushed": unflushed,
            "producer_cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
            "producer_sched_wait_s": sched1[1] - sched0[1],
            "consumer_sched_wait_s": result.get("consumer_sched_wait_s"),
            "consumer_cpu_s": result.get("consumer_cpu_s"), "consumer_wall_s": result.get("consumer_wall_s"),
            "next_offsets": result.get("next_offsets"),
            **({"producer_stats": stats.summary(), "consumer_stats": result.get("stats")} if a.stats else {})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("worker", choices=["consume", "e2e", "e2e-consumer", "produce-conns", "group", "mixed",
                                       "mixed-consumer"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--linger-ms", type=float, default=1)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--keys", type=int, default=0, help="produce-conns: distinct record keys (0: no keys)")
    ap.add_argument("--stats", action="store_true", help="mixed: librdkafka's request counts and round trips")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="consume, produce-conns: a librdkafka setting for every client (repeatable)")
    a = ap.parse_args(argv)
    CLIENT_CONFIG.update(kv.split("=", 1) for kv in a.config)
    fn = {"consume": w_consume, "e2e": w_e2e, "e2e-consumer": w_e2e_consumer,
          "produce-conns": w_produce_conns, "group": w_group, "mixed": w_mixed,
          "mixed-consumer": w_mixed_consumer}[a.worker]
    print(json.dumps(fn(a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
