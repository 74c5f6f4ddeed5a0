"""Failover with real clients (issue 17), on three kbroker nodes and, for reference, on three
Apache Kafka 4.4 nodes (``scripts/reference_kafka.py``), the same scenario for both.

Three clients stream at once, each to its own RF=3 topic (min.insync.replicas=2) led by node 1:
confluent-kafka, kafka-python and the Java client (``compat/java``'s FailoverClient), each an
idempotent acks=all producer with a consumer group member reading and committing as it goes.
Meanwhile a confluent-kafka transactional producer whose transaction coordinator is node 1 has an
aborted transaction behind it and one open. Before, the Java client runs transactions (V2) whose
coordinator and partition leader are different nodes. Node 1 is killed (kill -9) mid-stream. Then: every
producer finished with every record acknowledged, each partition holds each record exactly once
and in order, every group consumed every record; the open transaction commits through the next
coordinator, and read_committed sees its records and none of the aborted one.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import confluent_kafka
import pytest
from cluster_fixture import FAST_SESSIONS
from confluent_kafka.admin import AdminClient, NewTopic
from waiting import wait_until
from wire import Wire

from tests.cluster.both_clusters import KafkaNodes, KbrokerNodes, started

COUNT = 600
KILLED = 1
PACE_S = 0.005  # one record every 5 ms
HOLD_AT = 300  # a stream not yet past the kill waits here for it: the kill falls mid-stream
KILLED_EVENT = threading.Event()


@pytest.fixture(params=["kbroker", "kafka"])
def nodes(request, tmp_path) -> Iterator[KbrokerNodes | KafkaNodes]:
    yield from started(request.param, tmp_path, FAST_SESSIONS)


def value(prefix: str, i: int) -> bytes:
    return b"%s%05d" % (prefix.encode(), i)


class Stream:
    """One client's producer and group member; ``acked``/``consumed`` as they go (also while the
    producer holds at HOLD_AT for the kill: the test waits for them then), ``error`` at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.acked = 0
        self.consumed: set[bytes] = set()
        self.holding = False  # the producer reached HOLD_AT and waits for the kill
        self.error: str | None = None
        self.done = threading.Event()

    def finish(self, error: str) -> None:
        self.error = error
        self.done.set()

    def state(self) -> str:
        """What the client saw so far, for a failure message."""
        return (f"{self.acked} acknowledged, {len(self.consumed)} consumed"
                + (f", holding at record {HOLD_AT}" if self.holding and not self.done.is_set() else "")
                + (f", finished: {self.error or 'ok'}" if self.done.is_set() else ""))


def check_log(read: list[bytes], prefix: str) -> str:
    want = [value(prefix, i) for i in range(COUNT)]
    return "" if read == want else f"the partition holds {len(read)} records, first difference at " \
        f"{next((i for i, (a, b) in enumerate(zip(read, want, strict=False)) if a != b), min(len(read), COUNT))}"


def confluent_stream(bootstrap: str, topic: str, s: Stream) -> None:
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        try:
            while len(s.consumed) < COUNT and not stop.is_set():
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    s.consumed.add(m.value())
                    c.commit(message=m, asynchronous=True)
        finally:
            c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "message.timeout.ms": 120000, "linger.ms": 5})

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            s.acked += 1

    for i in range(COUNT):
        if i == HOLD_AT:
            # Delivery callbacks run inside poll(): the producer keeps polling while it waits for
            # the kill, or the acknowledgements that came after record HOLD_AT - 1 was sent would
            # not be counted, and the test, waiting for them before the kill, would wait in vain.
            s.holding = True
            hold_end = time.monotonic() + 120
            while not KILLED_EVENT.is_set() and time.monotonic() < hold_end:
                p.poll(0.05)
        p.produce(topic, value("c", i), partition=0, on_delivery=delivered)
        p.poll(PACE_S)
    p.flush(120)
    reader.join(120)
    stop.set()
    if errors or s.acked != COUNT or len(s.consumed) != COUNT:
        return s.finish(f"errors {errors[:2]}, acknowledged {s.acked}, consumed {len(s.consumed)}")
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    read_back: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(read_back) < COUNT and time.monotonic() < deadline:
        read_back += [m.value() for m in c.consume(500, 0.5) if m.error() is None]
    read_back += [m.value() for m in c.consume(500, 0.5) if m.error() is None]
    c.close()
    s.finish(check_log(read_back, "c"))


def kafka_python_stream(bootstrap: str, topic: str, s: Stream) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    servers = bootstrap.split(",")
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        c = KafkaConsumer(topic, bootstrap_servers=servers, group_id=f"g-{topic}", auto_offset_reset="earliest",
                          enable_auto_commit=False)
        try:
            # The consumer's own metadata has the topic's partition before its first poll (what
            # partitions_for_topic, like the Java client's partitionsFor, waits for). Otherwise
            # kafka-python 3.0.12, the group's leader, may join before it: "No partition metadata
            # for topic", an empty assignment, then a rejoin once the metadata comes. That rejoin is
            # not marked in its rejoin flag (Java's KAFKA-9815, fixed there), so when its SyncGroup
            # answer comes after poll()'s timeout the next poll sees nothing to join and the
            # assignment is never applied: the consumer reads nothing and sends no heartbeat, on
            # Kafka 4.4 as on kbroker (more likely the busier the machine).
            wait_until(lambda: c.partitions_for_topic(topic) == {0}, 60, 0.05, "kafka-python's metadata of the topic")
            while len(s.consumed) < COUNT and not stop.is_set():
                batch = c.poll(200)
                for records in batch.values():
                    s.consumed.update(r.value for r in records)
                if batch:
                    try:
                        c.commit()
                    except Exception:  # noqa: BLE001 - a commit during the coordinator's move: the next covers it
                        pass
        finally:
            c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    p = KafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True, linger_ms=5,
                      delivery_timeout_ms=120000)

    def ok(_md) -> None:
        s.acked += 1

    for i in range(COUNT):
        if i == HOLD_AT:
            s.holding = True  # (kafka-python's callbacks run on its I/O thread: acked goes on rising)
            KILLED_EVENT.wait(120)
        p.send(topic, value("k", i), partition=0).add_callback(ok).add_errback(lambda e: errors.append(repr(e)))
        time.sleep(PACE_S)  # the stream's pace, not synchronisation
    p.flush(120)
    p.close()
    reader.join(120)
    stop.set()
    if errors or s.acked != COUNT or len(s.consumed) != COUNT:
        return s.finish(f"errors {errors[:2]}, acknowledged {s.acked}, consumed {len(s.consumed)}")
    c = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    read_back: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(read_back) < COUNT and time.monotonic() < deadline:
        for records in c.poll(500).values():
            read_back += [r.value for r in records]
    for records in c.poll(500).values():
        read_back += [r.value for r in records]
    c.close()
    s.finish(check_log(read_back, "k"))


def java_stream(bootstrap: str, topic: str, s: Stream, proc: subprocess.Popen) -> None:
    last = ""
    for line in proc.stdout:
        last = line.strip()
        if last.startswith(("progress ", "holding ")):
            kind, acked, consumed = last.split()
            s.holding |= kind == "holding"
            s.acked = max(s.acked, int(acked))  # (lines from the producer's callback and its loop)
            s.consumed = set(range(max(len(s.consumed), int(consumed))))  # (a count: the Java side checks the values)
    proc.wait()
    try:
        result = json.loads(last)
    except ValueError:
        return s.finish(f"no result from the Java client: {last!r}")
    s.finish(result["error"])


def guarded(fn, *args) -> threading.Thread:
    s = args[2]

    def run() -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported as the stream's error
            s.finish(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def coordinator_of(bootstrap: str, key_type: int, key: str) -> int | None:
    try:
        w = Wire(bootstrap.split(",")[0], timeout=10)
    except OSError:
        return None
    try:
        c = w.call(10, 4, key_type=key_type, coordinator_keys=[key]).coordinators[0]
    except OSError:
        return None
    finally:
        w.sock.close()
    return c.node_id if c.error_code == 0 else None


def full_isr_leader(admin: AdminClient, topic: str, ids: list[int]) -> int | None:
    try:
        t = admin.list_topics(topic, timeout=5).topics.get(topic)
    except Exception:  # noqa: BLE001 - not yet
        return None
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    p = t.partitions[0]
    return p.leader if sorted(p.isrs) == ids else None


def test_leader_kill_mid_stream_with_three_clients_and_an_open_transaction(nodes):
    from java_harness import ensure_java_harness

    java = ensure_java_harness("4")[:-1] + ["kbroker.compat.FailoverClient"]
    ids = nodes.ids
    bootstrap = nodes.bootstrap()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # node 1 leads every data partition (its preferred replica); the transaction's on node 2
    topics = {"confluent": "fo-confluent", "kafka-python": "fo-kafka-python", "java": "fo-java", "txn": "fo-txn",
              "java-txn": "fo-java-txn"}
    for name, topic in topics.items():
        assignment = [[2, 3, 1]] if "txn" in name else [[1, 2, 3]]
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=assignment,
                                      config={"min.insync.replicas": "2"})])[topic].result(60)
    for name, topic in topics.items():
        want = 2 if "txn" in name else KILLED
        wait_until(lambda topic=topic, want=want: full_isr_leader(admin, topic, ids) == want, 60, 0.1,
                   f"{topic} led by {want} with a full ISR", nodes.logs)

    # a transactional id coordinated by node 1
    wait_until(lambda: coordinator_of(bootstrap, 1, "probe"), 60, 0.1, "__transaction_state", nodes.logs)
    tid = next(t for t in (f"fo-tx-{i}" for i in range(500))
               if wait_until(lambda t=t: coordinator_of(bootstrap, 1, t), 30, 0.05, "a coordinator") == KILLED)

    # Transactions V2 (the Java 4.4 client, transaction.version 2) with the coordinator (node 3) and
    # the partition's leader (node 2) apart: Produce v12 has node 2 add the partition with
    # AddPartitionsToTxn v5, EndTxn v5's markers reach node 2 as WriteTxnMarkers.
    java_tid = next(t for t in (f"fo-java-tx-{i}" for i in range(500))
                    if wait_until(lambda t=t: coordinator_of(bootstrap, 1, t), 30, 0.05, "a coordinator") == 3)
    run = subprocess.run([*java, bootstrap, topics["java-txn"], java_tid, "txn"], capture_output=True, text=True,
                         timeout=180)
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"ok": True, "error": ""}, run.stdout[-2000:]

    # The transaction stays open from here until after the kill: longer than the test may last (its
    # 300 s timeout), so neither coordinator aborts it for its age on a slow machine.
    txn = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                                    "transaction.timeout.ms": 300000})
    txn.init_transactions(60)
    txn.begin_transaction()
    for i in range(10):
        txn.produce(topics["txn"], value("aborted-", i), partition=0)
    txn.abort_transaction(60)
    txn.begin_transaction()
    for i in range(10):
        txn.produce(topics["txn"], value("committed-", i), partition=0)
    assert txn.flush(60) == 0  # open on node 1, its records on node 2

    streams = {name: Stream(name) for name in ("confluent", "kafka-python", "java")}
    KILLED_EVENT.clear()
    proc = subprocess.Popen([*java, bootstrap, topics["java"], "g-fo-java", str(COUNT), str(HOLD_AT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        guarded(confluent_stream, bootstrap, topics["confluent"], streams["confluent"])
        guarded(kafka_python_stream, bootstrap, topics["kafka-python"], streams["kafka-python"])
        guarded(java_stream, bootstrap, topics["java"], streams["java"], proc)
        wait_until(lambda: all(s.acked >= 100 or s.done.is_set() for s in streams.values()), 120, 0.02,
                   "every client streaming (100 records acknowledged each) before the kill",
                   lambda: {n: s.state() for n, s in streams.items()})
        assert all(s.acked < COUNT for s in streams.values()), \
            f"a stream ended before the kill: { {n: s.state() for n, s in streams.items()} }"
        nodes.kill(KILLED)
        KILLED_EVENT.set()
        proc.stdin.write("killed\n")
        proc.stdin.flush()
        survivors = [n for n in ids if n != KILLED]

        # the open transaction commits through the next coordinator
        try:
            txn.commit_transaction(120)
        except confluent_kafka.KafkaException as exc:
            raise AssertionError(f"the open transaction's commit after the kill: {exc}; the streams: "
                                 f"{ {n: s.state() for n, s in streams.items()} }") from exc
        # the node asked names a survivor once it applied the new leader of the id's partition
        wait_until(lambda: coordinator_of(nodes.bootstrap(survivors), 1, tid) in survivors, 30, 0.1,
                   "a surviving coordinator", lambda: coordinator_of(nodes.bootstrap(survivors), 1, tid))

        wait_until(lambda: all(s.done.is_set() for s in streams.values()), 240, 0.1, "the streams finished",
                   lambda: {n: s.state() for n, s in streams.items()})
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert {n: s.error for n, s in streams.items()} == {n: "" for n in streams}

    for name in ("confluent", "kafka-python", "java"):
        leader = full_isr_leader(AdminClient({"bootstrap.servers": nodes.bootstrap(survivors)}), topics[name],
                                 ids)  # (the ISR no longer holds node 1)
        assert leader is None
    reader = confluent_kafka.Consumer({"bootstrap.servers": nodes.bootstrap(survivors), "group.id": "fo-committed",
                                       "isolation.level": "read_committed", "enable.auto.commit": False})
    reader.assign([confluent_kafka.TopicPartition(topics["txn"], 0, 0)])
    got: list[bytes] = []
    try:
        wait_until(lambda: got.extend(m.value() for m in reader.consume(100, 0.2) if m.error() is None)
                   or len(got) >= 10, 60, 0, "the committed transaction's records", nodes.logs)
        got += [m.value() for m in reader.consume(100, 1.0) if m.error() is None]
    finally:
        reader.close()
    assert got == [value("committed-", i) for i in range(10)]
