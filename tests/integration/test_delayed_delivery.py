"""Delayed delivery (kbroker extension, docs/delayed-delivery.md) with real clients on a manual
clock: a record produced with ``kbroker-deliver-after-ms`` or ``kbroker-deliver-at`` reaches its
topic only once the clock passes its due time, keeps its key, value and other headers, survives a
restart, and bad header values are refused with INVALID_RECORD, storing nothing."""

from __future__ import annotations

import uuid

import pytest
from waiting import wait_until

from kbroker.delayed import DELAYED_TOPIC
from kbroker.testing import BrokerThread


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _tp(topic: str, partition: int = 0):
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, partition)


def _producer(b, **extra):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0, **extra})


def _create(b, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def _produce(producer, topic: str, value: bytes, headers=None, key: bytes | None = None, partition: int = 0):
    """Produce one record and flush; returns the delivery report's (error, offset)."""
    reports: list = []
    producer.produce(topic, value, key=key, headers=headers or [], partition=partition,
                     on_delivery=lambda err, msg: reports.append((err, msg.offset() if msg else None)))
    assert producer.flush(30) == 0
    return reports[0]


def _end(b, topic: str, partition: int = 0) -> int:
    return b.call(lambda: b.broker.partition(topic, partition).log.log_end_offset)


def _consume_all(b, topic: str, expected: int, partition: int = 0) -> list:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": name("g"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([_tp(topic, partition)])
    got: list = []
    try:
        def more() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
            return len(got) >= expected
        wait_until(more, message=f"{expected} records of {topic}")
    finally:
        consumer.close()
    return got


@pytest.fixture
def clocked(kbroker_factory):
    return kbroker_factory(clock="manual", control=True)


def test_delayed_record_is_visible_only_after_the_clock_passes_its_delay(clocked):
    b = clocked
    topic = name("delayed")
    _create(b, topic)
    producer = _producer(b)
    err, internal_offset = _produce(producer, topic, b"later", key=b"k",
                                    headers=[("kbroker-deliver-after-ms", b"60000"), ("trace", b"t1")])
    assert err is None
    assert internal_offset == 0  # acknowledged from __kbroker_delayed
    err, _ = _produce(producer, topic, b"now")
    assert err is None
    assert _end(b, topic) == 1  # only the undelayed record
    b.advance(59_999)
    assert _end(b, topic) == 1
    b.advance(1)
    assert _end(b, topic) == 2
    first, second = _consume_all(b, topic, 2)
    assert first.value() == b"now"
    assert (second.key(), second.value()) == (b"k", b"later")
    headers = dict(second.headers())
    assert headers["trace"] == b"t1"
    assert "kbroker-deliver-after-ms" not in headers
    assert not any(k.startswith("__kbroker") for k in headers)
    assert int(headers["kbroker-delayed-create-time"]) > 0


def test_delayed_delivery_works_again_after_a_reset(clocked):
    """The reset deletes __kbroker_delayed with every other topic (its pending records with it) and
    restarts the service: the internal topic made again is scheduled as on a fresh broker."""
    b = clocked
    topic = name("delayed")
    _create(b, topic)
    producer = _producer(b)
    assert _produce(producer, topic, b"dropped", headers=[("kbroker-deliver-after-ms", b"1000")])[0] is None
    b.reset()
    _create(b, topic)
    err, internal_offset = _produce(producer, topic, b"later", headers=[("kbroker-deliver-after-ms", b"1000")])
    assert (err, internal_offset) == (None, 0)  # a new internal topic
    assert _end(b, topic) == 0
    b.advance(1000)
    assert _end(b, topic) == 1
    [record] = _consume_all(b, topic, 1)
    assert record.value() == b"later"


def test_records_due_together_keep_produce_order_and_absolute_times_work(clocked):
    b = clocked
    topic = name("order")
    _create(b, topic)
    producer = _producer(b)
    now = b.call(lambda: b.broker.clock.now_ms())
    at = str(now + 10_000).encode()
    for i in range(5):  # the same due time, given two ways
        header = ("kbroker-deliver-at", at) if i % 2 else ("kbroker-deliver-after-ms", b"10000")
        assert _produce(producer, topic, f"r{i}".encode(), headers=[header])[0] is None
    # an earlier due time produced last comes first
    assert _produce(producer, topic, b"early", headers=[("kbroker-deliver-after-ms", b"5000")])[0] is None
    b.advance(5_000)
    assert _end(b, topic) == 1
    b.advance(5_000)
    assert _end(b, topic) == 6
    values = [m.value() for m in _consume_all(b, topic, 6)]
    assert values == [b"early", b"r0", b"r1", b"r2", b"r3", b"r4"]


def _internal_end(b) -> int:
    return b.call(lambda: sum(p.log.log_end_offset for (t, _i), p in b.broker.partitions.items()
                              if t == DELAYED_TOPIC))


def _wire_produce(b, topic: str, records: list, compression: int = 0):
    """One batch through the raw codec (Produce v9); returns the partition response."""
    from wire import Wire

    from kbroker_protocol.messages import REQUESTS
    from kbroker_protocol.records import build_batch

    Req = REQUESTS[0]
    batch = build_batch(records, compression=compression)
    data = Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=0, records=batch)])
    wire = Wire(b.bootstrap_servers)
    try:
        resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    finally:
        wire.close()
    return resp.responses[0].partition_responses[0]


@pytest.mark.parametrize("value, message", [
    (b"soon", "must be a non-negative decimal integer of milliseconds, got 'soon'"),
    (b"-5", "must be a non-negative decimal integer of milliseconds, got '-5'"),
    (b"", "must be a non-negative decimal integer"),
    (b"999999999999", "above kbroker.delayed.max.delay.ms=604800000"),
])
def test_bad_delay_header_is_invalid_record_and_stores_nothing(clocked, value, message):
    """The whole batch is refused (v8+: the bad record's index and message), nothing is stored."""
    from kbroker_protocol.errors import ErrorCode
    from kbroker_protocol.records import Record

    b = clocked
    topic = name("bad")
    _create(b, topic)
    now = b.call(lambda: b.broker.clock.now_ms())
    part = _wire_produce(b, topic, [
        Record(value=b"fine", timestamp=now, headers=(("kbroker-deliver-after-ms", b"5"),)),
        Record(value=b"bad", timestamp=now, headers=(("kbroker-deliver-after-ms", value),)),
    ])
    assert part.error_code == ErrorCode.INVALID_RECORD
    assert message in part.error_message
    assert [(e.batch_index, message in e.batch_index_error_message) for e in part.record_errors] == [(1, True)]
    assert _end(b, topic) == 0
    assert _internal_end(b) == 0
    b.advance(60_000)
    assert _end(b, topic) == 0


def test_bad_header_reaches_a_real_client_as_invalid_record(clocked):
    from confluent_kafka import KafkaError

    b = clocked
    topic = name("badc")
    _create(b, topic)
    err, _ = _produce(_producer(b), topic, b"x", headers=[("kbroker-deliver-at", b"tomorrow")])
    assert err is not None and err.code() == KafkaError.INVALID_RECORD
    assert _end(b, topic) == 0 and _internal_end(b) == 0


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_compressed_batches_are_diverted_too(clocked, codec):
    """The header inside a compressed batch is found (the batch is decompressed to look)."""
    from kbroker_protocol.errors import ErrorCode
    from kbroker_protocol.records import Record

    b = clocked
    topic = name("codec")
    _create(b, topic)
    now = b.call(lambda: b.broker.clock.now_ms())
    part = _wire_produce(b, topic, [
        Record(key=b"a", value=b"plain", timestamp=now),
        Record(key=b"b", value=b"delayed", timestamp=now, headers=(("kbroker-deliver-after-ms", b"2000"),)),
    ], compression=codec)
    assert part.error_code == ErrorCode.NONE
    assert _end(b, topic) == 0  # the whole batch is held: its other records are due at once
    b.advance(1)
    assert _end(b, topic) == 1
    b.advance(2000)
    assert [m.value() for m in _consume_all(b, topic, 2)] == [b"plain", b"delayed"]


def test_transactional_batches_with_the_header_are_refused(clocked):
    from confluent_kafka import KafkaException

    b = clocked
    topic = name("txn")
    _create(b, topic)
    txn = _producer(b, **{"transactional.id": name("t")})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, b"y", headers=[("kbroker-deliver-after-ms", b"1000")])
    with pytest.raises(KafkaException):
        txn.commit_transaction(30)
    b.advance(10_000)
    assert _data_batches(b, topic) == []  # at most an abort marker: no record reached the topic
    assert _internal_end(b) == 0


def _data_batches(b, topic: str) -> list:
    p = b.call(lambda: b.broker.partition(topic, 0))
    return b.call(lambda: [h.base_offset for h, _data in p.log.iter_batches() if not h.is_control])


def test_kafka_python_producer_with_the_header(clocked):
    from kafka import KafkaProducer

    b = clocked
    topic = name("kp")
    _create(b, topic)
    producer = KafkaProducer(bootstrap_servers=b.bootstrap_servers, linger_ms=0)  # idempotent by default
    try:
        md = producer.send(topic, b"kp", partition=0, headers=[("kbroker-deliver-after-ms", b"3000")]).get(30)
        assert md.offset >= 0
    finally:
        producer.close()
    assert _end(b, topic) == 0
    b.advance(3_000)
    assert [m.value() for m in _consume_all(b, topic, 1)] == [b"kp"]


def test_delay_survives_a_restart_and_delivered_records_are_not_delivered_again(tmp_path):
    data = str(tmp_path / "data")
    topic = name("restart")
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        _create(b, topic)
        producer = _producer(b)
        assert _produce(producer, topic, b"first", headers=[("kbroker-deliver-after-ms", b"1000")])[0] is None
        assert _produce(producer, topic, b"second", headers=[("kbroker-deliver-after-ms", b"3600000")])[0] is None
        b.advance(1_000)
        assert _end(b, topic) == 1
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        assert _end(b, topic) == 1  # "first" is not delivered again
        b.advance(3_599_000)
        b.advance(10_000)  # the restart's clock starts at the wall time again: a margin
        assert _end(b, topic) == 2
        assert [m.value() for m in _consume_all(b, topic, 2)] == [b"first", b"second"]


def test_idempotent_producer_sequences_continue_across_delayed_batches(clocked):
    """An idempotent producer's delayed batch takes its sequence numbers on the target partition:
    a retry of it is answered with the first answer (nothing stored twice), and the producer's
    next, undelayed batch continues the sequence."""
    from wire import Wire

    from kbroker_protocol.errors import ErrorCode
    from kbroker_protocol.messages import REQUESTS
    from kbroker_protocol.records import Record, build_batch

    b = clocked
    topic = name("idemw")
    _create(b, topic)
    Req = REQUESTS[0]
    now = b.call(lambda: b.broker.clock.now_ms())
    wire = Wire(b.bootstrap_servers)
    pid = wire.call(22, 4, transactional_id=None, transaction_timeout_ms=60000,
                    producer_id=-1, producer_epoch=-1).producer_id

    def send(seq: int, headers=()):
        batch = build_batch([Record(value=b"s%d" % seq, timestamp=now, headers=headers)],
                            producer_id=pid, producer_epoch=0, base_sequence=seq)
        resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[Req.TopicProduceData(
            name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
        return resp.responses[0].partition_responses[0]

    try:
        assert send(0).error_code == ErrorCode.NONE
        delayed = send(1, (("kbroker-deliver-after-ms", b"1000"),))
        assert delayed.error_code == ErrorCode.NONE
        retry = send(1, (("kbroker-deliver-after-ms", b"1000"),))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, delayed.base_offset)
        assert _internal_end(b) == 1
        assert send(2).error_code == ErrorCode.NONE  # in sequence after the delayed batch
        assert send(4).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    finally:
        wire.close()
    b.advance(1000)
    assert [m.value() for m in _consume_all(b, topic, 3)] == [b"s0", b"s2", b"s1"]


def test_delay_survives_a_kill_of_the_broker_process(tmp_path):
    """``python -m kbroker`` on a manual clock, killed (SIGKILL) after delivering one delayed
    record and holding another: the restarted broker neither delivers the first again nor loses
    the second."""
    import json
    import re
    import signal
    import time
    import urllib.request

    from kbroker_protocol.messages import REQUESTS
    from kbroker_protocol.records import Record, build_batch
    from tests.integration.cli_helpers import BrokerProcess, base_args, call, end_offset

    data = tmp_path / "data"
    args = [*base_args(data), "--override", "kbroker.clock=manual", "--override",
            "kbroker.control.listeners=127.0.0.1:0"]

    def start():
        proc = BrokerProcess(args, tmp_path)
        _node, host, port = proc.wait_ready().groups()
        url = wait_until(lambda: re.search(r"kbroker control endpoint: (\S+)", proc.stdout.decode())
                         or _read_more(proc), message="the control endpoint line")
        return proc, host, int(port), url.group(1)

    def advance(url: str, ms: int) -> None:
        req = urllib.request.Request(url + "/clock/advance", data=json.dumps({"ms": ms}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200

    topic = name("killed")
    proc, host, port, url = start()
    try:
        call(host, port, 3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=topic)],
             allow_auto_topic_creation=True, include_topic_authorized_operations=False)
        P = REQUESTS[0]
        now = int(time.time() * 1000)
        for value, delay in ((b"first", b"1000"), (b"second", b"3600000")):
            batch = build_batch([Record(value=value, timestamp=now, headers=(("kbroker-deliver-after-ms", delay),))])
            resp = call(host, port, 0, 9, transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[
                P.TopicProduceData(name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(
                    index=0, records=batch)])])
            assert resp.responses[0].partition_responses[0].error_code == 0
        assert end_offset(host, port, topic) == 0
        advance(url, 1000)
        assert end_offset(host, port, topic) == 1
    finally:
        assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
    proc, host, port, url = start()
    try:
        assert end_offset(host, port, topic) == 1
        advance(url, 3_600_000 + 60_000)  # (the restarted clock starts at the wall time again)
        assert end_offset(host, port, topic) == 2
    finally:
        assert proc.stop() == 0


def _read_more(proc) -> None:
    import os
    import select

    if select.select([proc.proc.stdout], [], [], 0.2)[0]:
        proc.stdout += os.read(proc.proc.stdout.fileno(), 4096)
    return None


def test_marker_bytes_in_a_value_take_the_normal_path(clocked):
    """A batch that merely contains the header name's bytes (in a value) is appended as usual."""
    b = clocked
    topic = name("plain")
    _create(b, topic)
    err, offset = _produce(_producer(b), topic, b"see kbroker-deliver-after-ms=5")
    assert (err, offset) == (None, 0)
    assert _end(b, topic) == 1
    assert _internal_end(b) == 0


def test_disabled_delayed_delivery_leaves_the_header_alone(kbroker_factory):
    b = kbroker_factory({"kbroker.delayed.enable": "false"}, clock="manual", control=True)
    topic = name("off")
    _create(b, topic)
    err, _ = _produce(_producer(b), topic, b"x", headers=[("kbroker-deliver-after-ms", b"60000")])
    assert err is None
    assert _end(b, topic) == 1
    assert dict(_consume_all(b, topic, 1)[0].headers())["kbroker-deliver-after-ms"] == b"60000"


def test_a_big_batch_validated_in_the_worker_pool_is_diverted(clocked):
    """Over the inline budget (kbroker.replication.validation.INLINE_RECORDS) the records are
    checked in a worker process, which reports the delay header it saw."""
    from kbroker.replication.validation import INLINE_RECORDS
    from kbroker_protocol.errors import ErrorCode
    from kbroker_protocol.records import Record

    b = clocked
    pool = b.broker.replica_manager.validation_pool
    b.call(pool.warm)  # a pool still starting checks a batch this size inline (COLD_INLINE_RECORDS)
    wait_until(lambda: pool.ready, timeout=60, message="the validation worker started")
    topic = name("big")
    _create(b, topic)
    now = b.call(lambda: b.broker.clock.now_ms())
    count = INLINE_RECORDS + 500
    records = [Record(value=b"v%d" % i, timestamp=now) for i in range(count - 1)]
    records.append(Record(value=b"last", timestamp=now, headers=(("kbroker-deliver-after-ms", b"7000"),)))
    part = _wire_produce(b, topic, records)
    assert part.error_code == ErrorCode.NONE
    assert _end(b, topic) == 0
    assert _internal_end(b) == count
    b.advance(1)
    assert _end(b, topic) == count - 1
    b.advance(7000)
    assert _end(b, topic) == count


def test_real_clock_delivers_when_due(kbroker_factory):
    """Without the manual clock the scheduler's timer is the event loop's (the record's absence
    before its due time is shown on the manual clock above; here only that it comes)."""
    b = kbroker_factory()
    topic = name("real")
    _create(b, topic)
    err, offset = _produce(_producer(b), topic, b"soon", headers=[("kbroker-deliver-after-ms", b"500")])
    assert (err, offset) == (None, 0)
    # stored first; on a loaded machine the plan and progress records may already follow it
    assert _internal_end(b) >= 1
    wait_until(lambda: _end(b, topic) == 1, message="the delayed record delivered")
    assert [m.value() for m in _consume_all(b, topic, 1)] == [b"soon"]
    assert b.call(lambda: b.broker.delayed.delivered) == 1
