"""Writes whose acknowledgements are kept, and a read-back of every partition, for the tests that
break a node or a disk under a producer and then check that no acknowledged record was lost."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


class AckedProducer:
    """An idempotent ``acks=all`` producer of numbered values spread round-robin over the partitions
    of ``topic``: ``acked`` maps (partition, offset) to the value of each acknowledged record,
    ``failed`` names the error of each record that was not."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, value_size: int,
                 message_timeout_ms: int) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.padding = b"x" * value_size
        self.acked: dict[tuple[int, int], bytes] = {}
        self.failed: list[str] = []
        self.sent = 0
        self.producer = self._producer(message_timeout_ms)

    def _producer(self, message_timeout_ms: int) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": message_timeout_ms})

    def renew(self, message_timeout_ms: int) -> None:
        """Go on with a new producer (a new producer id); the counts and acknowledgements are kept."""
        self.producer = self._producer(message_timeout_ms)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            self.failed.append(err.name())

    def send(self, count: int) -> None:
        for _ in range(count):
            self.producer.produce(self.topic, value=f"{self.sent:08d}".encode() + self.padding,
                                  partition=self.sent % self.partitions, on_delivery=self._delivered)
            self.sent += 1
        self.producer.poll(0)

    def poll(self, timeout: float) -> None:
        self.producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """The number of records still unacknowledged after ``timeout`` seconds."""
        return self.producer.flush(timeout)


class ReadBack:
    """A consumer of every partition of ``topic`` from offset 0 (once ``assign`` is called):
    ``records`` by (partition, offset), ``ended`` the partitions read to their end."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.partitions = partitions
        self.records: dict[tuple[int, int], bytes] = {}
        self.ended: set[int] = set()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False,
                                  "enable.partition.eof": True})
        self.topic = topic

    def read(self) -> bool:
        """Read what comes in half a second; whether every partition has been read to its end."""
        for msg in self.consumer.consume(1000, 0.5):
            if msg.error() is None:
                self.records[(msg.partition(), msg.offset())] = msg.value()
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                self.ended.add(msg.partition())
        return len(self.ended) == self.partitions

    def assign(self) -> None:
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])

    def close(self) -> None:
        self.consumer.close()
