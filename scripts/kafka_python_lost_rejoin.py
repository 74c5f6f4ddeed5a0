#!/usr/bin/env python3
"""kafka-python 3.0.12's lost rejoin, shown on kbroker and on Apache Kafka 4.4 (bench/NOTES.md,
"Mixed load at 4,000 records/s": why test_client_failover's kafka-python consumer read nothing).

A group consumer that is its group's leader can join before its metadata has the subscribed
topic: "No partition metadata for topic", an empty assignment. When the metadata comes, the
consumer rejoins because its metadata snapshot changed, but without setting its rejoin flag; if
that rejoin's JoinGroup answer is handled after ``poll()`` stopped waiting, the next ``poll()``
sees nothing to join and the finished join is never applied: no partition, no heartbeat, for good.

Each of ``--consumers`` consumers (a new group each, one topic of one partition) polls until it
has its partition or 8 s have passed, with delays drawn per consumer (``--seed``) and injected into
the client: its metadata refreshes later, its ``subscribe()`` later, and shorter ``poll()``
timeouts, to make the orders a busy machine makes. ``--wait``: the consumer first waits until
``partitions_for_topic()`` has the partition, as tests/cluster/test_client_failover.py does.

    .venv/bin/python scripts/kafka_python_lost_rejoin.py --consumers 30 --seed 7 [--wait] [--kafka]
      [--log FILE]   (the clients' logs at DEBUG)

Without ``--kafka`` the broker is kbroker in this process (kbroker.testing.BrokerThread); with it,
a reference Kafka node (scripts/reference_kafka.py). Prints one line per consumer and
``stuck K of N``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kafka.cluster  # noqa: E402
import kafka.consumer.subscription_state  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

TOPIC = "lost-rejoin"
DELAYS = {"metadata_s": [0, 0, 0.05, 0.15, 0.3, 0.6], "subscribe_s": [0, 0, 0.08, 0.1, 0.12, 0.2],
          "poll_ms": [200, 200, 20, 5]}


class Delays:
    """The current consumer's injected delays (its IO thread is named after its client id)."""

    def __init__(self) -> None:
        self.now: dict[str, float] = {"metadata_s": 0, "subscribe_s": 0, "poll_ms": 200}
        self.client_id = ""

    def install(self) -> None:
        refresh = kafka.cluster.ClusterMetadata._do_refresh_metadata
        subscribe = kafka.consumer.subscription_state.SubscriptionState.subscribe
        delays = self

        async def late_refresh(cluster: Any, node_id: Any) -> Any:
            if delays.now["metadata_s"] and threading.current_thread().name == f"kafka-io-{delays.client_id}":
                await cluster._manager._net.sleep(delays.now["metadata_s"])
            return await refresh(cluster, node_id)

        def late_subscribe(state: Any, *args: Any, **kwargs: Any) -> Any:
            if delays.now["subscribe_s"]:
                time.sleep(delays.now["subscribe_s"])  # the delay injected, not synchronisation
            return subscribe(state, *args, **kwargs)

        kafka.cluster.ClusterMetadata._do_refresh_metadata = late_refresh  # type: ignore[method-assign]
        kafka.consumer.subscription_state.SubscriptionState.subscribe = late_subscribe  # type: ignore[method-assign]


@contextlib.contextmanager
def broker(on_kafka: bool) -> Iterator[str]:
    if on_kafka:
        import reference_kafka

        with tempfile.TemporaryDirectory(prefix="lost-rejoin-") as tmp:
            handle = reference_kafka.start_reference_kafka(tmp)
            try:
                yield handle.bootstrap
            finally:
                handle.stop()
    else:
        from kbroker.testing import BrokerThread

        with BrokerThread({"group.initial.rebalance.delay.ms": "0"}) as b:
            yield b.bootstrap_servers


def run_one(bootstrap: str, i: int, seed: int, wait: bool, delays: Delays) -> tuple[bool, str]:
    delays.client_id = f"lost-rejoin-{i}"
    c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"lost-rejoin-{seed}-{i}",
                      client_id=delays.client_id, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        deadline = time.monotonic() + 8
        if wait:
            while not c.partitions_for_topic(TOPIC) and time.monotonic() < deadline:
                pass  # (each call waits for a metadata refresh)
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(int(delays.now["poll_ms"]))
        return bool(c.assignment()), str(delays.now)
    finally:
        c.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--consumers", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--wait", action="store_true", help="wait for partitions_for_topic before polling")
    p.add_argument("--kafka", action="store_true", help="on a reference Kafka node instead of kbroker")
    p.add_argument("--log", default=None, help="the clients' logs at DEBUG into this file")
    args = p.parse_args()
    if args.log:
        handler = logging.FileHandler(args.log, mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
        for name in ("kafka.cluster", "kafka.coordinator", "kafka.consumer", "kafka.net.connection"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger("kafka").addHandler(handler)
    delays = Delays()
    delays.install()
    rng = random.Random(args.seed)
    stuck = 0
    with broker(args.kafka) as bootstrap:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
        admin.close()
        for i in range(args.consumers):
            delays.now = {k: rng.choice(v) for k, v in DELAYS.items()}
            assigned, drawn = run_one(bootstrap, i, args.seed, args.wait, delays)
            stuck += not assigned
            print(f"consumer {i} {drawn}: {'assigned' if assigned else 'STUCK (no partition after 8 s)'}", flush=True)
    print(f"{'kafka' if args.kafka else 'kbroker'}{' --wait' if args.wait else ''}: stuck {stuck} of {args.consumers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
