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
  for both followers' next fetch, so this is the replication round trip.
* **producer**: ``--messages`` messages of ``--record-size`` bytes through an idempotent
  confluent-kafka producer (acks=all, ``linger.ms`` 5): messages/s, MB/s and the p99 of each
  message's time from ``produce()`` to its acknowledgement.

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


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def requests_case(address: str, topic: str, args: argparse.Namespace) -> dict[str, float]:
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
    finally:
        conn.sock.close()
    return {"rps": args.requests / elapsed,
            "mbps": args.requests * args.records * args.record_size / 1e6 / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _p(latencies, 0.99) * 1000}


def producer_case(bootstrap: str, topic: str, args: argparse.Namespace) -> dict[str, float]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    value = os.urandom(args.record_size)
    for _ in range(1000):  # warm-up
        producer.produce(topic, value, partition=0)
    assert producer.flush(60) == 0
    latencies: list[float] = []
    errors: list[str] = []

    def done(err, _msg, sent: float) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            latencies.append(time.perf_counter() - sent)

    t0 = time.perf_counter()
    for _ in range(args.messages):
        sent = time.perf_counter()
        while True:
            try:
                producer.produce(topic, value, partition=0, on_delivery=lambda e, m, s=sent: done(e, m, s))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(120) == 0
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"producer errors: {errors[:3]}")
    return {"mps": args.messages / elapsed, "mbps": args.messages * args.record_size / 1e6 / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _p(latencies, 0.99) * 1000}


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
        targets = [(nodes.name, *prepare(nodes)) for nodes in clusters]
        results: dict[str, tuple[list[dict[str, float]], list[dict[str, float]]]] = {t[0]: ([], []) for t in targets}
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for name, bootstrap, leader in order:
                load = os.getloadavg()[0]
                req = requests_case(leader, "bench-rf3", args)
                prod = producer_case(bootstrap, "bench-rf3", args)
                results[name][0].append(req)
                results[name][1].append(prod)
                print(f"round {r + 1} {name} (load {load:.1f}): requests {req['rps']:.0f}/s p50 {req['p50']:.2f} ms "
                      f"p99 {req['p99']:.2f} ms; producer {prod['mps']:.0f} messages/s {prod['mbps']:.2f} MB/s "
                      f"p50 {prod['p50']:.1f} ms p99 {prod['p99']:.1f} ms", flush=True)
    finally:
        for nodes in clusters:
            nodes.stop()
    for name, (reqs, prods) in results.items():
        print(f"{name} RF=3 acks=all, median of {len(reqs)}: requests {_median(reqs, 'rps'):.0f}/s "
              f"p50 {_median(reqs, 'p50'):.2f} ms p99 {_median(reqs, 'p99'):.2f} ms; producer "
              f"{_median(prods, 'mps'):.0f} messages/s {_median(prods, 'mbps'):.2f} MB/s "
              f"p50 {_median(prods, 'p50'):.1f} ms p99 {_median(prods, 'p99'):.1f} ms", flush=True)
    if len(results) == 2:
        (kreq, kprod), (areq, aprod) = results.values()
        print(f"ratios kbroker/Kafka (medians): requests/s {_median(kreq, 'rps') / _median(areq, 'rps'):.2f}, "
              f"request p99 {_median(kreq, 'p99') / _median(areq, 'p99'):.2f}; producer messages/s "
              f"{_median(kprod, 'mps') / _median(aprod, 'mps'):.2f}, producer p99 "
              f"{_median(kprod, 'p99') / _median(aprod, 'p99'):.2f}; per round (messages/s): "
              + ", ".join(f"{k['mps'] / a['mps']:.2f}" for k, a in zip(kprod, aprod, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
