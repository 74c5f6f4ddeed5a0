"""The queue workload of Jepsen's Kafka-family analyses, with real clients (confluent-kafka).

* idempotent ``acks=all`` producers send unique integers to every partition of a topic, one
  partition after another, each send recorded as invoke then ok (with its offset) or info (an error:
  the write may or may not have happened);
* a consumer by ``assign`` reads every partition from the beginning;
* a consumer in a group (``subscribe``) reads and commits the offsets it consumed synchronously;
* ``drain``: after the faults, a fresh consumer reads every partition from offset 0 to its end.

The transactional variant (``transactional=True``): each producer has a ``transactional.id`` and
writes 1-4 values (to consecutive partitions) per transaction, then commits it or, one time in four,
aborts it (``txn`` ops: ``invoke`` with the values, ``txn-end`` ``invoke`` with the intent, then
``ok`` with the ``outcome`` or ``info`` when unknown); every reader, the drain included, uses
``isolation.level=read_committed``.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .history import History

log = logging.getLogger("faults.workload")

# Quick reconnects: the broker comes back within a second or two of a kill.
CLIENT = {"reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 250, "retry.backoff.ms": 20,
          "retry.backoff.max.ms": 250, "log_level": 0}
# The producers' statistics interval: a stall snapshot (stall.py) sees figures at most this old.
STATS_INTERVAL_MS = 5000


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0, replication_factor: int = 1,
                 config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                                            config=config or {})],
                                  operation_timeout=timeout, request_timeout=timeout)
    futures[topic].result(timeout)


def _decode(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value.decode(errors="replace")


class Workload:
    """Client threads writing to and reading from ``topic`` and recording into ``history``."""

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int, producers: int = 2,
                 rate: float = 200.0, group: str = "faults-group", producer_debug: str = "",
                 transactional: bool = False, seed: int = 0, abort_probability: float = 0.25,
                 message_timeout_ms: int = 60000) -> None:
        self.history = history
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.producers = producers
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.group = group
        # librdkafka debug contexts (e.g. "eos,msg") for the producers, logged to "faults.clients"; each
        # producer's client.id is its history process, so its log lines name it (clientlog.py).
        self.producer_extra: dict[str, Any] = (
            {"debug": producer_debug, "logger": logging.getLogger("faults.clients"), "log_level": 7}
            if producer_debug else {})
        self.transactional = transactional
        self.seed = seed
        self.abort_probability = abort_probability
        self.message_timeout_ms = message_timeout_ms  # the idempotent producers' message.timeout.ms
        self.isolation = {"isolation.level": "read_committed"} if transactional else {}
        self.values = itertools.count()
        self.acked = [0] * producers  # acknowledged sends so far, per producer (the runner waits on them)
        # each producer's last librdkafka statistics JSON, by history process (stall.py reads them when
        # a wait for acknowledgements is long)
        self.stats: dict[str, str] = {}
        self.stopping = threading.Event()
        self.stop_consumers = threading.Event()
        self.threads: list[threading.Thread] = []

    # -- producers ---------------------------------------------------------------------------------

    def start(self) -> None:
        for k in range(self.producers):
            self._spawn(f"producer-{k}", self._produce, k)
        self._spawn("consumer-assign", self._consume_assigned)
        self._spawn("consumer-group", self._consume_group)

    def _spawn(self, name: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _produce(self, k: int) -> None:
        for generation in itertools.count():
            process = f"p{k}" if generation == 0 else f"p{k}.{generation}"
            run = self._txn_producer_run if self.transactional else self._producer_run
            if not run(process, k) or self.stopping.is_set():
                return

    def _delivery_reports(self, process: str, k: int,
                          fatal: threading.Event | None) -> Callable[[Any, Any], None]:
        """The on_delivery callback of producer ``process``: ``ok`` with the offset, or ``info``
        (indeterminate) with the error; a fatal error sets ``fatal`` when given."""

        def delivered(err, msg) -> None:
            value = _decode(msg.value())
            if err is None:
                self.history.record(process, "ok", "send", value=value, partition=msg.partition(),
                                    offset=msg.offset())
                self.acked[k] += 1
            else:
                self.history.record(process, "info", "send", value=value, partition=msg.partition(),
                                    error=str(err.name()))
                if fatal is not None and err.fatal():
                    fatal.set()

        return delivered

    def _stats(self, process: str) -> dict[str, Any]:
        """Producer settings keeping its librdkafka statistics (every STATS_INTERVAL_MS) in ``self.stats``."""

        def keep(stats_json: str) -> None:
            self.stats[process] = stats_json

        return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": keep}

    def _fatal_errors(self, process: str, fatal: threading.Event) -> Callable[[KafkaError], None]:
        """The error_cb of producer ``process``: a fatal error is recorded and sets ``fatal``."""

        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self.history.record(process, "info", "fatal", error=str(err))
                fatal.set()

        return on_error

    def _producer_run(self, process: str, k: int) -> bool:
        """Send until stopped (False) or the producer hits a fatal error (True: start a new one)."""
        fatal = threading.Event()
        delivered = self._delivery_reports(process, k, fatal)
        on_error = self._fatal_errors(process, fatal)
        producer = Producer({"bootstrap.servers": self.bootstrap, "client.id": process,
                             "enable.idempotence": True, "acks": "all", "linger.ms": 2, "message.timeout.ms": self.message_timeout_ms, "error_cb": on_error, **CLIENT,
                             **self._stats(process), **self.producer_extra})
        partition = 0
        try:
            while not self.stopping.is_set() and not fatal.is_set():
                value = next(self.values)
                self.history.record(process, "invoke", "send", value=value, partition=partition)
                try:
                    producer.produce(self.topic, value=str(value).encode(), partition=partition,
                                     on_delivery=delivered)
                except BufferError as exc:
                    self.history.record(process, "fail", "send", value=value, partition=partition, error=str(exc))
                    producer.poll(0.1)
                    continue
                except KafkaException as exc:  # fatal state: the message was not queued
                    self.history.record(process, "fail", "send", value=value, partition=partition, error=str(exc))
                    fatal.set()
                    break
                partition = (partition + 1) % self.partitions
                try:
                    producer.poll(self.interval)  # serves delivery reports; paces the sends
                except KafkaException as exc:  # a fatal error raised from a callback
                    self.history.record(process, "info", "fatal", error=str(exc))
                    fatal.set()
        finally:
            try:
                remaining = producer.flush(0.0 if fatal.is_set() else 30.0)
            except KafkaException as exc:
                self.history.record(process, "info", "fatal", error=str(exc))
                remaining = len(producer)
            if remaining:
                log.warning("%s: %d sends still undelivered at the end (indeterminate)", process, remaining)
        return fatal.is_set()

    def _txn_producer_run(self, process: str, k: int) -> bool:
        """Transactions until stopped (False) or a fatal error (True: a new producer, the same
        ``transactional.id``, which fences this one)."""
        rng = random.Random(self.seed * 1000 + k)
        fatal = threading.Event()
        txns = itertools.count()
        delivered = self._delivery_reports(process, k, None)
        on_error = self._fatal_errors(process, fatal)
        producer = Producer({"bootstrap.servers": self.bootstrap, "client.id": process,
                             "transactional.id": f"faults-txn-{k}",
                             "enable.idempotence": True, "acks": "all", "linger.ms": 2,
                             "transaction.timeout.ms": 20000, "message.timeout.ms": 15000, "error_cb": on_error,
                             **CLIENT, **self._stats(process), **self.producer_extra})

        def attempt(call, what: str) -> str:
            """Call ``call`` until it succeeds ("ok"), needs an abort ("abort"), is fatal or the
            workload stops ("fatal"/"stopped"); retriable errors are retried."""
            while True:
                try:
                    call()
                    return "ok"
                except KafkaException as exc:
                    err = exc.args[0]
                    if err.fatal():
                        self.history.record(process, "info", "fatal", error=f"{what}: {err.name()}")
                        fatal.set()
                        return "fatal"
                    if err.txn_requires_abort():
                        return "abort"
                    if not err.retriable() and what != "init":
                        return "abort"
                    if self.stopping.is_set():
                        return "stopped"
                    time.sleep(0.1)  # back off before retrying a retriable transactional call

        if attempt(lambda: producer.init_transactions(30), "init") != "ok":
            return fatal.is_set()
        partition = 0
        try:
            while not self.stopping.is_set() and not fatal.is_set():
                txn = f"{process}-t{next(txns)}"
                values = [next(self.values) for _ in range(rng.randint(1, 4))]
                intent = "abort" if rng.random() < self.abort_probability else "commit"
                try:
                    producer.begin_transaction()
                except KafkaException as exc:
                    self.history.record(process, "info", "fatal", error=f"begin: {exc.args[0].name()}")
                    fatal.set()
                    break
                self.history.record(process, "invoke", "txn", txn=txn, values=values)
                for value in values:
                    self.history.record(process, "invoke", "send", value=value, partition=partition, txn=txn)
                    while True:
                        try:
                            producer.produce(self.topic, value=str(value).encode(), partition=partition,
                                             on_delivery=delivered)
                            break
                        except BufferError:
                            producer.poll(0.1)
                        except KafkaException as exc:  # the transaction is in an error state: not queued
                            self.history.record(process, "fail", "send", value=value, partition=partition, txn=txn,
                                                error=str(exc.args[0].name()))
                            intent = "abort"
                            break
                    partition = (partition + 1) % self.partitions
                    producer.poll(self.interval)
                self.history.record(process, "invoke", "txn-end", txn=txn, intent=intent)
                result = attempt(lambda: producer.commit_transaction(30), "commit") if intent == "commit" else "abort"
                if result == "ok":
                    self.history.record(process, "ok", "txn", txn=txn, outcome="commit")
                    continue
                if result == "abort" and attempt(lambda: producer.abort_transaction(30), "abort") == "ok":
                    self.history.record(process, "ok", "txn", txn=txn, outcome="abort")
                    continue
                self.history.record(process, "info", "txn", txn=txn, error=result)
                if result == "stopped":
                    break
                fatal.set()  # no clean end: start over with a new producer (fencing this one)
        finally:
            try:
                producer.flush(0.0 if fatal.is_set() else 30.0)
            except KafkaException as exc:
                self.history.record(process, "info", "fatal", error=str(exc))
        return fatal.is_set()

    # -- consumers ---------------------------------------------------------------------------------

    def _poll_loop(self, process: str, consumer: Consumer, commit: bool) -> None:
        while not self.stop_consumers.is_set():
            t0 = self.history.now()
            try:
                batch = consumer.consume(num_messages=500, timeout=0.2)
            except KafkaException as exc:
                self.history.record(process, "info", "poll", error=str(exc))
                continue
            values = []
            errors = []
            for msg in batch:
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(msg.error().name())
                    continue
                values.append([msg.partition(), msg.offset(), _decode(msg.value())])
            if errors:
                self.history.record(process, "info", "poll", error=",".join(errors))
            if not values:
                continue
            self.history.record(process, "invoke", "poll", at=t0)
            self.history.record(process, "ok", "poll", values=values)
            if commit:
                self._commit(process, consumer, values)

    def _commit(self, process: str, consumer: Consumer, values: list[list[Any]]) -> None:
        offsets: dict[int, int] = {}
        for partition, offset, _ in values:
            offsets[partition] = max(offsets.get(partition, -1), offset + 1)
        as_list = [[p, o] for p, o in sorted(offsets.items())]
        self.history.record(process, "invoke", "commit", offsets=as_list)
        try:
            result = consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in as_list],
                                     asynchronous=False)
        except KafkaException as exc:
            self.history.record(process, "fail", "commit", offsets=as_list, error=str(exc.args[0].name()))
            return
        failed = [tp for tp in result or () if tp.error is not None]
        if failed:
            self.history.record(process, "fail", "commit", offsets=as_list, error=str(failed[0].error))
        else:
            self.history.record(process, "ok", "commit", offsets=as_list)

    def _consume_assigned(self) -> None:
        process = "c-assign"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.group}-assign",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest", **self.isolation, **CLIENT})
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            self.history.record(process, "info", "assign", partitions=list(range(self.partitions)))
            self._poll_loop(process, consumer, commit=False)
        finally:
            consumer.close()

    def _consume_group(self) -> None:
        process = "c-group"

        def assigned(_consumer, partitions) -> None:
            self.history.record(process, "info", "assign", partitions=[tp.partition for tp in partitions])

        def revoked(_consumer, partitions) -> None:
            self.history.record(process, "info", "revoke", partitions=[tp.partition for tp in partitions])

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                             "heartbeat.interval.ms": 500, **self.isolation, **CLIENT})
        try:
            consumer.subscribe([self.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
            self._poll_loop(process, consumer, commit=True)
        finally:
            consumer.close()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the producers (flushing what they have in flight), then the consumers."""
        self.stopping.set()
        for thread in self.threads:
            if thread.name.startswith("producer"):
                thread.join(timeout)
        self.stop_consumers.set()
        for thread in self.threads:
            thread.join(timeout)


def drain(history: History, bootstrap: str, topic: str, partitions: int, timeout: float = 60.0,
          read_committed: bool = False) -> bool:
    """Read every partition from offset 0 to its high watermark; True when all were read.

    ``read_committed``: the end is the last stable offset (the high watermark once no transaction is
    open); control records and aborted writes are never delivered, so a partition is done when the
    consumer reports reaching its end (partition EOF) at or past it."""
    process = "drain"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-drain", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": read_committed,
                         **({"isolation.level": "read_committed"} if read_committed else {}), **CLIENT})
    deadline = time.monotonic() + timeout
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in range(partitions)}
        history.record(process, "info", "assign", partitions=list(range(partitions)), ends=ends)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        position = dict.fromkeys(range(partitions), 0)
        while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            t0 = history.now()
            values = []
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF and read_committed:
                        position[msg.partition()] = max(position[msg.partition()], msg.offset())
                    elif msg.error().code() != KafkaError._PARTITION_EOF:
                        history.record(process, "info", "poll", error=msg.error().name())
                    continue
                values.append([msg.partition(), msg.offset(), _decode(msg.value())])
                position[msg.partition()] = msg.offset() + 1
            if values:
                history.record(process, "invoke", "poll", at=t0)
                history.record(process, "ok", "poll", values=values)
        complete = all(position[p] >= ends[p] for p in ends)
        history.record(process, "info", "drained", complete=complete, positions=position)
        return complete
    finally:
        consumer.close()
