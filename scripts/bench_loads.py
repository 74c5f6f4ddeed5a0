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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The code, by concern: bench_loads_java.py (Kafka's own load tools: ProducerPerformance,
# EndToEndLatency, ConsumerPerformance), bench_loads_workers.py (the workers that run in this process:
# consume, produce-conns, group, and the librdkafka helpers every worker shares); here the command line
# and the workers that start a consumer subprocess of this script (e2e, mixed).
from bench_client_stats import ClientStats  # noqa: E402
from bench_loads_java import (  # noqa: E402
    _PERF_RE,
    consumer_perf,
    end_to_end_latency,
    ensure_tools,
    java_tool,
    producer_perf,
)
from bench_loads_workers import (  # noqa: E402
    CLIENT_CONFIG,
    _consumer,
    _partitions,
    _sched_self,
    w_consume,
    w_group,
    w_produce_conns,
)

# What the other bench scripts use of this module (``import bench_loads as bl``).
__all__ = ["_PERF_RE", "consumer_perf", "create_topic", "end_to_end_latency", "ensure_tools", "java_tool",
           "producer_perf", "worker"]

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")


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
