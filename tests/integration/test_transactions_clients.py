"""Transactions end to end with real transactional producers (kafka-python, confluent-kafka, aiokafka) and
read_committed consumers: visibility of commits and aborts, fencing, timeouts, exactly-once processing."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from waiting import wait_until

from kbroker.coordinator.txn_log import TxnState
from kbroker_protocol.errors import ErrorCode
from tests.integration.transaction_api_helpers import (  # noqa: F401 (fixtures)
    bootstrap_fixture,
    describe_state,
    raw_fixture,
    txn_broker_fixture,
)
from tests.integration.transaction_restart_helpers import consume_all
from tests.integration.transactions_helpers import (
    create_topic,
    data_batch,
    list_offset,
    new_name,
    produce,
)

# -- real clients -----------------------------------------------------------------------------------


def test_kafka_python_commit_and_abort_visibility(bootstrap, raw):
    topic = new_name("kp")
    create_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_name("kp-tx"))
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"c1")
    producer.send(topic, b"c2")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, b"a1")
    producer.send(topic, b"a2")
    producer.flush()
    # An open transaction holds the last stable offset at its first record.
    assert list_offset(raw, topic, isolation=1) == 3
    assert list_offset(raw, topic, isolation=0) == 5
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, b"c3")
    producer.commit_transaction()
    producer.close()
    end = list_offset(raw, topic)
    assert end == 8  # 2 + marker + 2 + marker + 1 + marker
    assert list_offset(raw, topic, isolation=1) == end

    committed = consume_all(bootstrap, topic, "read_committed", end)
    assert [m.value for m in committed] == [b"c1", b"c2", b"c3"]
    everything = consume_all(bootstrap, topic, "read_uncommitted", end)
    # Markers (offsets 2, 5, 7) never surface as records, at either isolation level.
    assert [(m.offset, m.value) for m in everything] == [(0, b"c1"), (1, b"c2"), (3, b"a1"), (4, b"a2"),
                                                          (6, b"c3")]


def test_confluent_kafka_commit_and_abort_visibility(bootstrap, raw):
    topic = new_name("ck")
    create_topic(bootstrap, topic, partitions=2)
    producer = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": new_name("ck-tx"), "linger.ms": 5})
    producer.init_transactions(30)
    for round_ in range(3):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, f"r{round_}-{i}".encode(), partition=i % 2)
        producer.flush(30)
        if round_ == 1:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
    ends = [list_offset(raw, topic, p) for p in range(2)]
    assert ends == [18, 18]  # 3 rounds x (5 records + marker)
    assert [list_offset(raw, topic, p, isolation=1) for p in range(2)] == ends

    def read(isolation: str) -> list[bytes]:
        consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": new_name("g"),
                               "isolation.level": isolation, "enable.auto.commit": False})
        consumer.assign([CKTopicPartition(topic, p, 0) for p in range(2)])
        tps = [CKTopicPartition(topic, p) for p in range(2)]
        got = []
        deadline = time.monotonic() + 30
        while [tp.offset for tp in consumer.position(tps)] != ends:
            assert time.monotonic() < deadline
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                got.append(msg.value())
        consumer.close()
        return sorted(got)

    assert read("read_committed") == sorted(f"r{r}-{i}".encode() for r in (0, 2) for i in range(10))
    assert read("read_uncommitted") == sorted(f"r{r}-{i}".encode() for r in range(3) for i in range(10))
    producer.flush(5)


def test_zombie_producer_is_fenced(txn_broker, bootstrap, raw):
    topic = new_name("zombie")
    create_topic(bootstrap, topic)
    tid = new_name("zombie-tx")
    zombie = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    zombie.init_transactions()
    zombie.begin_transaction()
    zombie.send(topic, b"from-zombie").get(timeout=10)
    old_pid = txn_broker.call(lambda: txn_broker.broker.txn_coordinator.txns[tid].producer_id)

    fresh = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    fresh.init_transactions()  # bumps the epoch and aborts the zombie's transaction
    fresh.begin_transaction()
    fresh.send(topic, b"from-fresh")
    fresh.commit_transaction()
    fresh.close()

    with pytest.raises(KafkaError) as info:
        zombie.send(topic, b"late").get(timeout=10)
        zombie.commit_transaction()
    assert type(info.value).__name__ in ("ProducerFencedError", "InvalidProducerEpochError"), info.value
    zombie.close(timeout=1)

    # At the protocol level: the zombie's epoch is rejected by the partition.
    txn = txn_broker.call(lambda: txn_broker.broker.txn_coordinator.txns[tid])
    assert txn.producer_id == old_pid and txn.producer_epoch >= 2
    resp = produce(raw, topic, 0, data_batch(old_pid, 0, 1, [b"x"], transactional=True), transactional_id=tid)
    assert resp.error_code == ErrorCode.INVALID_PRODUCER_EPOCH

    end = list_offset(raw, topic)
    assert [m.value for m in consume_all(bootstrap, topic, "read_committed", end)] == [b"from-fresh"]


def test_transaction_timeout_aborts_and_fences(txn_broker, bootstrap, raw):
    topic = new_name("timeout")
    create_topic(bootstrap, topic)
    tid = new_name("timeout-tx")
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid, transaction_timeout_ms=500)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"never-committed").get(timeout=10)
    wait_until(lambda: describe_state(txn_broker, tid) == TxnState.COMPLETE_ABORT, message="timeout abort")
    end = list_offset(raw, topic)
    assert end == 2  # the record and the ABORT marker
    assert list_offset(raw, topic, isolation=1) == end
    with pytest.raises(KafkaError):
        producer.commit_transaction()
    producer.close(timeout=1)
    assert consume_all(bootstrap, topic, "read_committed", end) == []


def test_consume_transform_produce_exactly_once_with_a_crash(txn_broker, bootstrap, raw):
    source, sink = new_name("in"), new_name("out")
    create_topic(bootstrap, source)
    create_topic(bootstrap, sink)
    group, tid = new_name("eos-group"), new_name("eos-tx")
    feeder = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(30):
        feeder.send(source, str(i).encode())
    feeder.close()

    def run(limit: int | None, crash: bool) -> int:
        consumer = KafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                 auto_offset_reset="earliest", isolation_level="read_committed")
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
        producer.init_transactions()
        done = 0
        deadline = time.monotonic() + 60
        while limit is None or done < limit:
            assert time.monotonic() < deadline
            batch = consumer.poll(timeout_ms=200, max_records=4)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                if limit is None and consumer.position(TopicPartition(source, 0)) >= 30:
                    break
                continue
            producer.begin_transaction()
            for r in records:
                producer.send(sink, b"out-" + r.value)
            offsets = {TopicPartition(source, 0): _offset_and_metadata(records[-1].offset + 1)}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            if crash and done + len(records) >= (limit or 0):
                producer.flush()
                # Crash mid-transaction: outputs written, offsets sent, nothing committed.
                producer.close(timeout=0)
                consumer.close(autocommit=False)
                return done
            producer.commit_transaction()
            done += len(records)
        producer.close()
        consumer.close(autocommit=False)
        return done

    first = run(limit=12, crash=True)
    assert first >= 8
    run(limit=None, crash=False)
    end = list_offset(raw, sink)
    assert list_offset(raw, sink, isolation=1) == end
    values = [m.value for m in consume_all(bootstrap, sink, "read_committed", end)]
    assert sorted(values) == sorted(f"out-{i}".encode() for i in range(30))
    assert len(values) == len(set(values)) == 30
    # The crashed transaction's outputs are in the log, aborted: read_uncommitted sees them twice.
    raw_values = [m.value for m in consume_all(bootstrap, sink, "read_uncommitted", end)]
    assert len(raw_values) > 30 and set(raw_values) == set(values)


def _offset_and_metadata(offset: int):
    from kafka.structs import OffsetAndMetadata

    try:
        return OffsetAndMetadata(offset, "", -1)
    except TypeError:
        return OffsetAndMetadata(offset, "")


def test_confluent_fenced_by_a_new_instance(bootstrap):
    topic = new_name("ckf")
    create_topic(bootstrap, topic)
    tid = new_name("ckf-tx")
    old = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    old.init_transactions(30)
    old.begin_transaction()
    old.produce(topic, b"old")
    old.flush(30)
    new = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    new.init_transactions(30)
    with pytest.raises(KafkaException) as info:
        old.commit_transaction(30)
    assert info.value.args[0].fatal() or "fenced" in str(info.value).lower()
    new.begin_transaction()
    new.produce(topic, b"new")
    new.commit_transaction(30)


def test_interleaved_transactions_in_one_partition(bootstrap, raw):
    topic = new_name("interleaved")
    create_topic(bootstrap, topic)
    a = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_name("a"), linger_ms=0)
    b = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_name("b"), linger_ms=0)
    for p in (a, b):
        p.init_transactions()
    plain = KafkaProducer(bootstrap_servers=bootstrap)
    a.begin_transaction()
    b.begin_transaction()
    for i in range(3):
        a.send(topic, b"a%d" % i).get(timeout=10)
        b.send(topic, b"b%d" % i).get(timeout=10)
        plain.send(topic, b"p%d" % i).get(timeout=10)
    # Both open: the last stable offset is the first record of the earliest one (a's, offset 0).
    assert list_offset(raw, topic, isolation=1) == 0
    b.abort_transaction()
    assert list_offset(raw, topic, isolation=1) == 0
    a.commit_transaction()
    end = list_offset(raw, topic)
    assert list_offset(raw, topic, isolation=1) == end == 11
    committed = [m.value for m in consume_all(bootstrap, topic, "read_committed", end)]
    assert committed == [b"a0", b"p0", b"a1", b"p1", b"a2", b"p2"]
    everything = [m.value for m in consume_all(bootstrap, topic, "read_uncommitted", end)]
    assert len(everything) == 9
    for p in (a, b, plain):
        p.close()


def test_aiokafka_transactions(bootstrap, raw):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = new_name("aio")
    create_topic(bootstrap, topic)

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_name("aio-tx"))
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"kept")
            with pytest.raises(RuntimeError):
                async with producer.transaction():
                    await producer.send_and_wait(topic, b"dropped")
                    raise RuntimeError("abort it")
            async with producer.transaction():
                await producer.send_and_wait(topic, b"kept-too")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            from aiokafka import TopicPartition as AioTP

            tp = AioTP(topic, 0)
            consumer.assign([tp])
            got = []
            deadline = time.monotonic() + 30
            while await consumer.position(tp) < 6:
                assert time.monotonic() < deadline
                batch = await consumer.getmany(timeout_ms=200)
                got.extend(m.value for ms in batch.values() for m in ms)
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [b"kept", b"kept-too"]
    assert list_offset(raw, topic) == 6
