#!/usr/bin/env python3
"""acks=all produce with RF=3 on three kbroker nodes and, with ``--kafka``, on three Apache Kafka
4.4 nodes in the same run: request latency (p50/p99) and throughput.

    .venv/bin/python scripts/bench_replication_cluster.py [--kafka] [--rounds 3] [--requests 2000] [--messages 50000]

Three combined-mode nodes each (``kbroker.cluster``; ``reference_kafka.start_reference_kafka_cluster``,
the same as ``bench_failover.py``), one topic of one partition, replication factor 3,
``min.insync.replicas`` 2, a full ISR awaited before measuring. Two measurements per cluster:

* **requests**: ``--requests`` Produce requests (v9, acks=all) of ``--records`` records of
  ``--record-size`` random bytes, one at a time on one connection to the leader (the next sent
  when the previous is answered): requests/s and the p50/p99 request latency. Each answer waits
  for both followers' next fetch, so this is the replication round trip; and the CPU time of the
  cluster's processes per request (the produce plus the followers' fetches it causes).
* **producer**: ``--messages`` messages of ``--record-size`` bytes through an idempotent
  confluent-kafka producer (acks=all, ``linger.ms`` 5): messages/s, MB/s and the p99 of each
  message's time from ``produce()`` to its acknowledgement, and the CPU time the cluster's
  processes (with their children: kbroker's validation workers) used per message meanwhile --
  on a saturated machine that, not the wall clock, decides the throughput. Also the share of
  the time the client spent in its own ``produce()`` loop (Python, a callback a message): near
  100 % means the client, not the cluster, set the pace (the client's own CPU a message, librdkafka's
  threads included, is printed too).

Both clusters run at the same time on the same machine, with the client in this process; each of
``--rounds`` rounds runs both cases on each cluster, the order alternating, so that a change in the
machine's load (it is shared) hits both alike. Medians over the rounds and the per-round ratios are
printed at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_failover import KafkaNodes, KbrokerNodes  # noqa: E402
from bench_leader_failover import _full_isr_leader, _wait  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402


class Connection:
    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0

    def call(self, request, version: int):
        self.correlation += 1
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version,
                               correlation_id=self.correlation, client_id="bench-replication-cluster")
        payload = encode_request(header, request)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._read(4))[0]
        return decode_response(self._read(size), request.API_KEY, version)[1]

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return bytes(out)


_TICKS = os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids`` and all their
    descendants (kbroker's validation workers, a JVM's wrapper), from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # ppid
        # utime, stime, and the reaped children's cutime, cstime
        times[pid] = sum(int(x) for x in fields[11:15]) / _TICKS
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def requests_case(address: str, topic: str, args: argparse.Namespace, pids: list[int]) -> dict[str, float]:
    Req = REQUESTS[0]
    payload = [os.urandom(args.record_size) for _ in range(args.records)]

    def request():
        records = build_batch([Record(key=None, value=v, timestamp=int(time.time() * 1000)) for v in payload])
        return Req(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[Req.TopicProduceData(
            name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=records)])])

    conn = Connection(address)
    try:
        for _ in range(20):  # warm-up
            conn.call(request(), 9)
        latencies = []
        cpu0 = cluster_cpu_seconds(pids)
        t0 = time.perf_counter()
        for _ in range(args.requests):
            req = request()
            start = time.perf_counter()
            resp = conn.call(req, 9)
            latencies.append(time.perf_counter() - start)
            code = resp.responses[0].partition_responses[0].error_code
            if code != 0:
                raise SystemExit(f"produce answered error {code}")
        elapsed = time.perf_counter() - t0
        cpu = cluster_cpu_seconds(pids) - cpu0
    finally:
        conn.sock.close()
    return {"rps": args.requests / elapsed,
            "mbps": args.requests * args.records * args.record_size / 1e6 / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _p(latencies, 0.99) * 1000,
            "cpu_us": cpu / args.requests * 1e6}


def producer_case(bootstrap: str, topic: str, args: argparse.Namespace, pids: list[int]) -> dict[str, float]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    value = os.urandom(args.record_size)
    for _ in range(1000):  # warm-up
        producer.produce(topic, value, partition=0)
    assert producer.flush(60) == 0
    latencies: list[float] = []
    errors: list[str] = []

    def done(err, msg) -> None:  # one callback for all (no closure a message)
        if err is not None:
            errors.append(str(err))
        else:
            latencies.append(msg.latency())  # librdkafka's own produce()-to-acknowledgement time

    cpu0, client0 = cluster_cpu_seconds(pids), time.process_time()
    t0 = time.perf_counter()
    produce, poll = producer.produce, producer.poll
    for i in range(args.messages):
        while True:
            try:
                produce(topic, value, partition=0, on_delivery=done)
                break
            except BufferError:
                poll(0.01)
        if i % 100 == 0:
            poll(0)
    enqueued = time.perf_counter() - t0
    assert producer.flush(120) == 0
    elapsed = time.perf_counter() - t0
    cpu, client_cpu = cluster_cpu_seconds(pids) - cpu0, time.process_time() - client0
    if errors:
        raise SystemExit(f"producer errors: {errors[:3]}")
    return {"mps": args.messages / elapsed, "mbps": args.messages * args.record_size / 1e6 / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _p(latencies, 0.99) * 1000,
            "cpu_us": cpu / args.messages * 1e6, "client_share": enqueued / elapsed,
            "client_cpu_us": client_cpu / args.messages * 1e6}


def prepare(nodes, topic: str = "bench-rf3") -> tuple[str, str]:
    """Create the topic (RF=3, min.insync.replicas=2) and wait for a full ISR: (bootstrap, leader address)."""
    ids = sorted(nodes.ports)
    bootstrap = ",".join(f"127.0.0.1:{nodes.ports[n][0]}" for n in ids)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(60)
    leader = _wait(lambda: _full_isr_leader(admin, topic, ids), 120, "a full ISR")
    return bootstrap, f"127.0.0.1:{nodes.ports[leader][0]}"


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", action="store_true", help="also three Apache Kafka 4.4 nodes, interleaved")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each runs both cases on each cluster, the order alternating (default 3)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50000)
    args = parser.parse_args()
    clusters = []
    try:
        for kind in [KbrokerNodes] + ([KafkaNodes] if args.kafka else []):
            nodes = kind()
            clusters.append(nodes)
        targets = [(nodes.name, *prepare(nodes), [p.pid for p in nodes.procs.values()]) for nodes in clusters]
        results: dict[str, tuple[list[dict[str, float]], list[dict[str, float]]]] = {t[0]: ([], []) for t in targets}
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for name, bootstrap, leader, pids in order:
                load = os.getloadavg()[0]
                req = requests_case(leader, "bench-rf3", args, pids)
                prod = producer_case(bootstrap, "bench-rf3", args, pids)
                results[name][0].append(req)
                results[name][1].append(prod)
                print(f"round {r + 1} {name} (load {load:.1f}): requests {req['rps']:.0f}/s p50 {req['p50']:.2f} ms "
                      f"p99 {req['p99']:.2f} ms {req['cpu_us']:.0f} us of the nodes' CPU a request; producer {prod['mps']:.0f} messages/s {prod['mbps']:.2f} MB/s "
                      f"p50 {prod['p50']:.1f} ms p99 {prod['p99']:.1f} ms, {prod['cpu_us']:.1f} us of the nodes' CPU a message, "
                      f"{prod['client_share']:.0%} of the time in the client's produce() loop, "
                      f"client CPU {prod['client_cpu_us']:.1f} us a message",
                      flush=True)
    finally:
        for nodes in clusters:
            nodes.stop()
    for name, (reqs, prods) in results.items():
        print(f"{name} RF=3 acks=all, median of {len(reqs)}: requests {_median(reqs, 'rps'):.0f}/s "
              f"p50 {_median(reqs, 'p50'):.2f} ms p99 {_median(reqs, 'p99'):.2f} ms "
              f"{_median(reqs, 'cpu_us'):.0f} us of the nodes' CPU a request; producer "
              f"{_median(prods, 'mps'):.0f} messages/s {_median(prods, 'mbps'):.2f} MB/s "
              f"p50 {_median(prods, 'p50'):.1f} ms p99 {_median(prods, 'p99'):.1f} ms, "
              f"{_median(prods, 'cpu_us'):.1f} us of the nodes' CPU a message", flush=True)
    if len(results) == 2:
        (kreq, kprod), (areq, aprod) = results.values()
        print(f"ratios kbroker/Kafka (medians): requests/s {_median(kreq, 'rps') / _median(areq, 'rps'):.2f}, "
              f"request p99 {_median(kreq, 'p99') / _median(areq, 'p99'):.2f}; producer messages/s "
              f"{_median(kprod, 'mps') / _median(aprod, 'mps'):.2f}, producer p99 "
              f"{_median(kprod, 'p99') / _median(aprod, 'p99'):.2f}, nodes' CPU a message "
              f"{_median(kprod, 'cpu_us') / _median(aprod, 'cpu_us'):.2f}; per round (messages/s): "
              + ", ".join(f"{k['mps'] / a['mps']:.2f}" for k, a in zip(kprod, aprod, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
