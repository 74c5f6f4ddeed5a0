"""Partition leader failover time on three kbroker nodes: kill -9 of an RF=3 partition's leader to
the first acknowledged produce on that partition (idempotent acks=all confluent-kafka producer).

    .venv/bin/python scripts/bench_leader_failover.py [--rounds 3]

Three combined-mode nodes (``kbroker.cluster``) with Kafka's defaults (raft timeouts,
``broker.session.timeout.ms`` 9000: the leader's death is noticed when its session expires). Each
round creates a topic (1 partition, RF=3, min.insync.replicas=2), waits for a full ISR, produces
and flushes, kills the leader, then produces one record and measures until it is acknowledged;
the killed node is restarted and waited back in the ISR before the next round.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker.cluster import ClusterLayout, start_node, wait_ready  # noqa: E402


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kbroker-leader-failover-"))
    layout = ClusterLayout.create(root, 3)
    nodes = sorted(layout.ports)
    procs = {n: start_node(layout, n) for n in nodes}
    try:
        for n in nodes:
            wait_ready(layout, n, procs[n], 0, timeout=120)
        bootstrap = ",".join(layout.bootstrap(n) for n in nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        times = []
        for r in range(args.rounds):
            topic = f"failover-{r}"
            admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
            leader = _wait(lambda topic=topic: _full_isr_leader(admin, topic, nodes), 60, "a full ISR")
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                 "message.timeout.ms": 120000})
            for i in range(100):
                producer.produce(topic, b"warm-%d" % i, partition=0)
            assert producer.flush(60) == 0
            acked: list[float] = []
            os.killpg(procs[leader].pid, signal.SIGKILL)
            procs.pop(leader).wait()
            t0 = time.monotonic()
            producer.produce(topic, b"after", partition=0,
                             on_delivery=lambda err, _m, acked=acked: acked.append(time.monotonic()) if err is None else None)
            assert producer.flush(120) == 0 and acked, "the produce after the kill failed"
            times.append(acked[0] - t0)
            print(f"round {r}: leader {leader} killed, first acknowledged produce after {times[-1] * 1000:.0f} ms")
            size = layout.log_path(leader).stat().st_size
            procs[leader] = start_node(layout, leader)
            wait_ready(layout, leader, procs[leader], size, timeout=120)
            _wait(lambda topic=topic: _full_isr_leader(admin, topic, nodes), 60, "the restarted node in the ISR")
        print(f"kbroker leader failover (kill -9 to first acks=all ack), {len(times)} rounds: "
              f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
