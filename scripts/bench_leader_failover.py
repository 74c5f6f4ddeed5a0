"""Partition leader failover time on three kbroker nodes and, with ``--kafka``, on three Apache
Kafka 4.4 nodes in the same run: kill -9 of an RF=3 partition's leader to the first acknowledged
produce on that partition (idempotent acks=all confluent-kafka producer).

    .venv/bin/python scripts/bench_leader_failover.py [--rounds 3] [--kafka]

Three combined-mode nodes each (``kbroker.cluster``; ``reference_kafka.start_reference_kafka_cluster``)
with Kafka's defaults (raft timeouts, ``broker.session.timeout.ms`` 9000: the leader's death is
noticed when its session expires). Each round creates a topic (1 partition, RF=3,
min.insync.replicas=2), waits for a full ISR, produces and flushes, kills the leader, then produces
one record and measures until it is acknowledged; the killed node is restarted and waited back in
the ISR before the next round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_failover import KafkaNodes, KbrokerNodes  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _full_isr_leader(admin: AdminClient, topic: str, nodes: list[int]) -> int | None:
    try:
        md = admin.list_topics(topic, timeout=5)
    except Exception:
        return None
    t = md.topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    p = t.partitions[0]
    return p.leader if p.leader >= 0 and sorted(p.isrs) == nodes else None


def run(nodes, rounds: int) -> list[float]:
    ids = sorted(nodes.ports)
    bootstrap = ",".join(f"127.0.0.1:{nodes.ports[n][0]}" for n in ids)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    times = []
    for r in range(rounds):
        topic = f"failover-{r}"
        admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
        leader = _wait(lambda topic=topic: _full_isr_leader(admin, topic, ids), 60, "a full ISR")
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                             "message.timeout.ms": 120000})
        for i in range(100):
            producer.produce(topic, b"warm-%d" % i, partition=0)
        assert producer.flush(60) == 0
        acked: list[float] = []
        nodes.kill(leader)
        t0 = time.monotonic()
        producer.produce(topic, b"after", partition=0,
                         on_delivery=lambda err, _m, acked=acked: acked.append(time.monotonic()) if err is None else None)
        assert producer.flush(120) == 0 and acked, "the produce after the kill failed"
        times.append(acked[0] - t0)
        print(f"{nodes.name} round {r}: leader {leader} killed, first acknowledged produce after "
              f"{times[-1] * 1000:.0f} ms", flush=True)
        nodes.start_node(leader)
        nodes.wait_ready(leader)
        _wait(lambda topic=topic: _full_isr_leader(admin, topic, ids), 120, "the restarted node in the ISR")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kafka", action="store_true", help="also three Apache Kafka 4.4 nodes, after kbroker")
    args = parser.parse_args()
    results = []
    for kind in [KbrokerNodes] + ([KafkaNodes] if args.kafka else []):
        nodes = kind()
        try:
            results.append((nodes.name, run(nodes, args.rounds)))
        finally:
            nodes.stop()
    for name, times in results:
        print(f"{name} leader failover (kill -9 to first acks=all ack), {len(times)} rounds: "
              f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
              f"max {max(times) * 1000:.0f} ms")
    if len(results) == 2:
        print(f"ratio kbroker/Kafka (median): "
              f"{statistics.median(results[0][1]) / statistics.median(results[1][1]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
