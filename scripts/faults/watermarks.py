#!/usr/bin/env python3
"""How long confluent-kafka's ``Consumer.get_watermark_offsets`` takes after a kill -9 of a partition
leader, on three nodes in namespaces behind the harness's proxies (as root):

    scripts/faults/watermarks.py --target kbroker --out OUT
    scripts/faults/watermarks.py --target kafka --out OUT
    scripts/faults/watermarks.py --target kbroker --victims each --out OUT   # each node in turn

Topic ``wm`` (3 partitions, RF=3, min.insync.replicas=2), 50 records a partition, a consumer that
queried every partition's watermarks before the kill (``warm``) and one created after it
(``fresh``); after the kill each asks for every partition's watermarks (timeout ``--timeout`` s) in
``--rounds`` rounds. Prints (and writes OUT/watermarks.json) each call's duration and outcome, and
the leaders the metadata names meanwhile. librdkafka's debug log of the warm consumer goes to
OUT/warm-consumer.log.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402

from faults.cluster import TARGETS, Cluster  # noqa: E402
from faults.workload import create_topic  # noqa: E402

TOPIC = "wm"
PARTITIONS = 3


def leaders(consumer: Consumer) -> dict[int, int]:
    md = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
    return {p: md.partitions[p].leader for p in md.partitions}


def active_controller(cluster: Cluster) -> str | None:
    """kbroker: the node whose log last says it became the Raft leader (None for Kafka)."""
    best: tuple[str, str] | None = None
    for name, node in cluster.nodes.items():
        path = node.workdir / "stdout.log"
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ": Leader in epoch" in ln] \
            if path.exists() else []
        if lines and (best is None or lines[-1][:23] > best[0]):
            best = (lines[-1][:23], name)
    return best[1] if best else None


def wait_in_sync(cluster: Cluster, common: dict[str, Any], timeout: float = 60.0) -> None:
    """Until every partition has its three replicas in sync again."""
    probe = Consumer(common)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            md = probe.list_topics(TOPIC, timeout=10).topics[TOPIC]
            if all(len(md.partitions[p].isrs) == 3 for p in md.partitions):
                return
            probe.poll(0.5)
    finally:
        probe.close()
    raise RuntimeError("the partitions did not get their three replicas in sync again")


def query(consumer: Consumer, timeout: float) -> list[dict[str, Any]]:
    calls = []
    for p in range(PARTITIONS):
        t0 = time.monotonic()
        try:
            result: Any = list(consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=timeout))
        except KafkaException as exc:
            result = f"error {exc.args[0].name()}"
        calls.append({"partition": p, "s": round(time.monotonic() - t0, 2), "result": result})
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(TARGETS), default="kbroker")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--restart-after", type=float, metavar="S",
                        help="start the killed node again S seconds after the kill (while the queries wait)")
    parser.add_argument("--victims", choices=["leader", "each"], default="leader",
                        help="kill the leader of partition 0, or each node in turn (restarted in between)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(TARGETS[args.target](), args.out / "nodes", seed=7)
    report: dict[str, Any] = {"target": args.target, "timeout_s": args.timeout, "cases": [],
                              "restart_after_s": args.restart_after}
    debug = logging.getLogger("watermarks.warm")
    handler = logging.FileHandler(args.out / "warm-consumer.log")
    debug.addHandler(handler)
    debug.propagate = False
    debug.setLevel(logging.DEBUG)
    try:
        cluster.setup()
        cluster.start_all()
        for name in cluster.names:
            cluster.wait_ready(name)
        create_topic(cluster.bootstrap, TOPIC, PARTITIONS, replication_factor=3,
                     config={"min.insync.replicas": "2", "unclean.leader.election.enable": "false"})
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(50 * PARTITIONS):
            producer.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
        assert producer.flush(60) == 0, "records not acknowledged"
        common = {"bootstrap.servers": cluster.bootstrap, "group.id": "wm", "enable.auto.commit": False}
        for k, victim in enumerate(cluster.names if args.victims == "each" else [None]):
            warm = Consumer({**common, "debug": "broker,metadata,topic,protocol", "logger": debug})
            case: dict[str, Any] = {"before": query(warm, args.timeout)}
            before = leaders(warm)
            case["leaders_before"] = before
            victim = victim or f"n{before[0]}"
            case["killed"] = victim
            case["controller_before"] = active_controller(cluster)
            debug.info("=== kill -9 %s", victim)
            cluster.kill(victim)
            killed_at = time.monotonic()
            restart = None
            if args.restart_after is not None:  # the node comes back while the queries wait
                restart = threading.Timer(args.restart_after, cluster.start, [victim])
                restart.start()
            fresh = Consumer(common)
            case["rounds"] = []
            for r in range(args.rounds):
                entry: dict[str, Any] = {"round": r, "at_s": round(time.monotonic() - killed_at, 2)}
                entry["warm"] = query(warm, args.timeout)
                entry["fresh"] = query(fresh, args.timeout)
                try:
                    entry["leaders"] = leaders(fresh)
                except KafkaException as exc:
                    entry["leaders"] = str(exc)
                case["rounds"].append(entry)
                logging.info("%s round %d: %s", victim, r, json.dumps(entry))
            case["slowest_s"] = max(c["s"] for e in case["rounds"] for c in e["warm"] + e["fresh"])
            warm.close()
            fresh.close()
            report["cases"].append(case)
            if restart is not None:
                restart.join()
            if k < len(cluster.names) - 1 and args.victims == "each":
                if restart is None:
                    cluster.start(victim)
                cluster.wait_ready(victim)
                wait_in_sync(cluster, common)
    finally:
        cluster.close()
        handler.close()
    (args.out / "watermarks.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
