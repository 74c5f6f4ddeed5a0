"""Real clients follow a leader change: NOT_LEADER_OR_FOLLOWER with the new leader (KIP-951) and
they retry there (confluent-kafka / librdkafka, kafka-python)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer

from tests.replication.harness import Cluster, wait_for


def run_on_loop(loop: asyncio.AbstractEventLoop, fn) -> Any:
    """From a client's thread: run ``fn`` on the brokers' loop and wait for it."""
    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(10)


def _leader_change(cluster: Cluster, watch: bool) -> tuple[Callable[[], None], dict[str, int]]:
    """For a producer's thread (call inside the brokers' loop): a function that moves t-0's
    leadership to broker 2 (on the loop) while the producer still believes broker 1 leads; with
    ``watch``, a no-op fault rule on broker 1's Produce (its id in the dict returned) then counts the
    requests broker 1 still gets."""
    loop = asyncio.get_running_loop()
    rule: dict[str, int] = {}

    def on_loop() -> None:
        cluster.change("t", 0, leader=2)
        if watch:
            rule["id"] = cluster.nodes[1].add_fault(api="Produce", action="delay", delay_ms=0)

    return lambda: run_on_loop(loop, on_loop), rule


def _produce_confluent(bootstrap: str, topic: str, batches: list[list[bytes]], between,
                       idempotent: bool = False) -> list[str]:
    """One producer sends each batch (acks=all) and waits for it; ``between`` runs after the first."""
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000,
                         "retry.backoff.ms": 50, "linger.ms": 0, "enable.idempotence": idempotent})

    def report(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    for i, values in enumerate(batches):
        for v in values:
            producer.produce(topic, v, partition=0, on_delivery=report)
        assert producer.flush(30) == 0
        if i == 0:
            between()
    return errors


def _consume_confluent(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg.value())
        return out
    finally:
        consumer.close()


async def test_confluent_producer_and_consumer_move_to_the_new_leader():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        bootstrap = cluster.bootstrap(1)
        change_leader, rule = _leader_change(cluster, watch=True)

        first = [b"before-%d" % i for i in range(5)]
        second = [b"after-%d" % i for i in range(5)]
        assert await asyncio.to_thread(_produce_confluent, bootstrap, "t", [first, second], change_leader) == []
        # The producer asked the old leader first, was answered NOT_LEADER_OR_FOLLOWER (with the new
        # leader, KIP-951) and delivered to broker 2.
        assert cluster.nodes[1].fault(rule["id"])["fired"] >= 1
        new_leader = cluster.partition(2, "t")
        assert new_leader.log.log_end_offset == 10 and new_leader.leader_epoch == 1
        await wait_for(lambda: cluster.partition(1, "t").log.log_end_offset == 10, message="broker 1 replicated")
        assert cluster.log_bytes(1, "t") == cluster.log_bytes(2, "t")
        # A consumer bootstrapped on the old leader reads everything from the new one.
        assert await asyncio.to_thread(_consume_confluent, bootstrap, "t", 10) == first + second


def _produce_kafka_python(bootstrap: str, topic: str, batches: list[list[bytes]], between) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10, retry_backoff_ms=50,
                             request_timeout_ms=20000, linger_ms=0)
    try:
        for i, values in enumerate(batches):
            futures = [producer.send(topic, v, partition=0) for v in values]
            for f in futures:
                f.get(timeout=30)
            if i == 0:
                between()
    finally:
        producer.close()


async def test_kafka_python_producer_retries_to_the_new_leader_on_not_leader_or_follower():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        # between its two batches: the metadata the producer caches still names broker 1, so its
        # next produce goes there and is answered NOT_LEADER_OR_FOLLOWER
        change_leader, rule = _leader_change(cluster, watch=True)

        await asyncio.to_thread(_produce_kafka_python, cluster.bootstrap(1), "t",
                                [[b"a%d" % i for i in range(3)], [b"b%d" % i for i in range(3)]], change_leader)
        assert cluster.nodes[1].fault(rule["id"])["fired"] >= 1  # the stale leader was asked first
        leader = cluster.partition(2, "t")
        assert leader.log.log_end_offset == 6
        values = [data for _h, data in leader.log.iter_batches(3)]
        assert all(b"b" in v for v in values)


async def test_confluent_consumer_fetches_from_the_follower_in_its_rack():
    async with Cluster(2, config={"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"},
                       racks={1: "r1", 2: "r2"}) as cluster:
        cluster.create_topic("t", [[1, 2]])
        values = [b"v%d" % i for i in range(5)]
        assert await asyncio.to_thread(_produce_confluent, cluster.bootstrap(1), "t", [values], lambda: None) == []
        await wait_for(lambda: cluster.partition(2, "t").log.high_watermark == 5, message="the follower's HW at 5")
        rule = cluster.nodes[2].add_fault(api="Fetch", client_id="rack-consumer", action="delay", delay_ms=0)

        def consume() -> list[bytes]:
            consumer = Consumer({"bootstrap.servers": cluster.bootstrap(1), "group.id": "g", "client.id": "rack-consumer",
                                 "client.rack": "r2", "enable.auto.commit": False})
            try:
                consumer.assign([TopicPartition("t", 0, 0)])
                out: list[bytes] = []
                deadline = time.monotonic() + 30
                while len(out) < 5 and time.monotonic() < deadline:
                    msg = consumer.poll(0.2)
                    if msg is not None and msg.error() is None:
                        out.append(msg.value())
                return out
            finally:
                consumer.close()

        assert await asyncio.to_thread(consume) == values
        # The records came from broker 2, the follower in the consumer's rack.
        assert cluster.nodes[2].fault(rule)["fired"] >= 1


async def test_idempotent_producer_keeps_its_sequence_across_a_leader_change():
    # The new leader knows the producer's last sequence from the replicated log: the producer's
    # next batches (not starting at sequence 0) are accepted there, and nothing is duplicated.
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        change_leader, _rule = _leader_change(cluster, watch=False)

        first = [b"i-before-%d" % i for i in range(5)]
        second = [b"i-after-%d" % i for i in range(5)]
        errors = await asyncio.to_thread(_produce_confluent, cluster.bootstrap(1), "t", [first, second],
                                         change_leader, True)
        assert errors == []
        leader = cluster.partition(2, "t")
        assert leader.log.log_end_offset == 10
        headers = [h for h, _data in leader.log.iter_batches()]
        assert {h.producer_id for h in headers} == {headers[0].producer_id} and headers[0].producer_id >= 0
        assert [h.base_sequence for h in headers if h.base_offset >= 5][0] == 5
        assert await asyncio.to_thread(_consume_confluent, cluster.bootstrap(2), "t", 10) == first + second
