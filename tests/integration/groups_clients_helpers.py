"""Client group members of three libraries shared by the group client tests (moved from test_groups_clients)."""

from __future__ import annotations

import threading

from confluent_kafka import Consumer as ConfluentConsumer
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i, v in enumerate(values):
        producer.send(topic, v, partition=i % partitions)
    producer.flush()
    producer.close()


class Member(threading.Thread):
    def __init__(self, name: str, sink: list, lock: threading.Lock) -> None:
        super().__init__(name=name, daemon=True)
        self.member_name = name
        self.sink = sink
        self.lock = lock
        self.stopping = threading.Event()
        self.assignment: frozenset[tuple[str, int]] = frozenset()
        self.error: BaseException | None = None

    def record(self, topic, partition, offset, value) -> None:
        with self.lock:
            self.sink.append((self.member_name, topic, partition, offset, value))

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), f"{self.member_name} did not stop"
        if self.error is not None:
            raise self.error


class KafkaPythonMember(Member):
    def __init__(self, bootstrap, topics, group, sink, lock, name="kafka-python", **config):
        super().__init__(name, sink, lock)
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        self.config = dict(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                           auto_offset_reset="earliest", client_id=name, session_timeout_ms=6000,
                           heartbeat_interval_ms=300, partition_assignment_strategy=[RoundRobinPartitionAssignor])
        self.config.update(config)
        self.topics = topics

    def run(self) -> None:
        try:
            consumer = KafkaConsumer(**self.config)
            consumer.subscribe(self.topics, listener=_AssignmentListener(self, consumer))
            while not self.stopping.is_set():
                # A long poll timeout on purpose: kafka-python 3.0 drops a JoinGroup/SyncGroup
                # result that completes after poll() gave up waiting and sends a new JoinGroup,
                # which from a leader restarts the rebalance (churn under load).
                batch = consumer.poll(2000)
                for records in batch.values():
                    for r in records:
                        self.record(r.topic, r.partition, r.offset, r.value)
                if batch:
                    consumer.commit()
                self.assignment = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
            consumer.close()
        except BaseException as exc:  # reported by stop()
            self.error = exc


class _AssignmentListener(ConsumerRebalanceListener):
    """Keeps a kafka-python member's ``assignment`` current as a rebalance changes it, inside the
    long poll() that runs it: the loop's own update comes only when poll() returns (up to 2 s
    later when there are no records)."""

    def __init__(self, member: KafkaPythonMember, consumer: KafkaConsumer) -> None:
        self.member, self.consumer = member, consumer

    def on_partitions_revoked(self, revoked) -> None:
        self.member.assignment = frozenset((tp.topic, tp.partition) for tp in self.consumer.assignment()
                                           if tp not in set(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        self.member.assignment = frozenset((tp.topic, tp.partition) for tp in self.consumer.assignment())


class ConfluentMember(Member):
    def __init__(self, bootstrap, topics, group, sink, lock, name="confluent", **config):
        super().__init__(name, sink, lock)
        self.config = {
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "client.id": name, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300, "partition.assignment.strategy": "roundrobin",
            "topic.metadata.refresh.interval.ms": 1000,
        }
        self.config.update(config)
        self.topics = topics
        self.assign_events: list[list[tuple[str, int]]] = []
        self.revoke_events: list[list[tuple[str, int]]] = []
        self.close_consumer = True

    def run(self) -> None:
        try:
            consumer = ConfluentConsumer(self.config)

            def on_assign(c, partitions):
                self.assign_events.append(sorted((p.topic, p.partition) for p in partitions))

            def on_revoke(c, partitions):
                self.revoke_events.append(sorted((p.topic, p.partition) for p in partitions))

            consumer.subscribe(self.topics, on_assign=on_assign, on_revoke=on_revoke)
            while not self.stopping.is_set():
                messages = consumer.consume(num_messages=100, timeout=0.1)
                good = [m for m in messages if m.error() is None]
                for m in good:
                    self.record(m.topic(), m.partition(), m.offset(), m.value())
                if good:
                    consumer.commit(asynchronous=False)
                self.assignment = frozenset((p.topic, p.partition) for p in consumer.assignment())
            if self.close_consumer:
                consumer.close()
        except BaseException as exc:  # reported by stop()
            self.error = exc


def stop_all(members) -> None:
    """Stop the members still running, together: each kafka-python member finishes its current 2 s
    poll first, and one after the other those waits would add up. The first error is raised, once
    every member has stopped."""
    alive = [m for m in members if m.is_alive()]
    for m in alive:
        m.stopping.set()
    errors = []
    for m in alive:
        try:
            m.stop()
        except BaseException as exc:  # noqa: BLE001 - raised below, after the other members stopped
            errors.append(exc)
    if errors:
        raise errors[0]


def balanced(members, topic_partitions: set[tuple[str, int]]) -> bool:
    sets = [m.assignment for m in members]
    union = frozenset().union(*sets)
    return union == topic_partitions and sum(len(s) for s in sets) == len(topic_partitions) and all(sets)
