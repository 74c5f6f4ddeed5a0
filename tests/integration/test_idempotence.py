"""Idempotent producers: retried batches are answered with their original offsets and never appended
twice, also across a broker restart; sequence and epoch errors at the protocol level."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.produce import ProduceRequest, ProduceResponse
from tests.integration.transactions_helpers import (
    DroppingProxy,
    RawClient,
    create_topic,
    data_batch,
    ensure_find_coordinator,
    free_port,
    init_producer_id,
    list_offset,
    new_name,
    produce,
)


@pytest.fixture(scope="module")
def idem_broker():
    ensure_find_coordinator()
    with BrokerThread() as b:
        yield b


@pytest.fixture
def raw(idem_broker):
    client = RawClient(idem_broker.bootstrap_servers)
    yield client
    client.close()


def _request(topic: str, records: bytes) -> ProduceRequest:
    return ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[
        ProduceRequest.TopicProduceData(name=topic, partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=records)])])


def test_the_same_produce_request_twice_appends_once(idem_broker, raw):
    topic = new_name("dup")
    create_topic(idem_broker.bootstrap_servers, topic)
    init = init_producer_id(raw)
    assert init.error_code == 0 and init.producer_epoch == 0
    pid = init.producer_id
    request = _request(topic, data_batch(pid, 0, 0, [b"a", b"b", b"c"]))
    # The client never saw the first answer and sends the very same request again (pipelined).
    raw.send(request, 9)
    raw.send(request, 9)
    first = raw.receive(ProduceResponse, 9).responses[0].partition_responses[0]
    second = raw.receive(ProduceResponse, 9).responses[0].partition_responses[0]
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (second.error_code, second.base_offset) == (0, 0)
    assert list_offset(raw, topic) == 3
    nxt = produce(raw, topic, 0, data_batch(pid, 0, 3, [b"d"]))
    assert (nxt.error_code, nxt.base_offset) == (0, 3)
    # An older batch still among the last five is a duplicate too.
    again = produce(raw, topic, 0, data_batch(pid, 0, 0, [b"a", b"b", b"c"]))
    assert (again.error_code, again.base_offset) == (0, 0)
    assert list_offset(raw, topic) == 4


def test_sequence_and_epoch_errors(idem_broker, raw):
    topic = new_name("seq")
    create_topic(idem_broker.bootstrap_servers, topic)
    init = init_producer_id(raw)
    pid = init.producer_id
    assert produce(raw, topic, 0, data_batch(pid, 0, 0, [b"a"])).error_code == 0
    assert produce(raw, topic, 0, data_batch(pid, 0, 5, [b"gap"])).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(raw, topic, 0, data_batch(pid, 0, 1, [b"b"])).error_code == 0
    # An idempotent producer bumps its epoch itself (KIP-360); the new epoch restarts at sequence 0.
    assert produce(raw, topic, 0, data_batch(pid, 1, 3, [b"x"])).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(raw, topic, 0, data_batch(pid, 1, 0, [b"c"])).error_code == 0
    assert produce(raw, topic, 0, data_batch(pid, 0, 2, [b"old"])).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert list_offset(raw, topic) == 3


def test_init_producer_id_without_transactional_id_never_reissues_an_id(idem_broker, raw):
    # As in Kafka: a named producer id and epoch are ignored, so no client can take over (and
    # fence) another producer's id by asking for its next epoch.
    pid = init_producer_id(raw).producer_id
    for version in (3, 4, 5):
        other = init_producer_id(raw, producer_id=pid, producer_epoch=0, version=version)
        assert other.error_code == 0
        assert other.producer_id not in (pid, -1)
        assert other.producer_epoch == 0


@pytest.mark.parametrize("snapshot", [True, False], ids=["from-snapshot", "full-scan"])
def test_duplicates_are_still_detected_after_a_restart(tmp_path, snapshot):
    ensure_find_coordinator()
    port = free_port()
    config = {"listeners": f"PLAINTEXT://127.0.0.1:{port}"}
    broker = BrokerThread(config=config, data_dir=str(tmp_path)).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        create_topic(broker.bootstrap_servers, "t")
        pid = init_producer_id(raw).producer_id
        batches = [data_batch(pid, 0, seq * 2, [b"%d" % seq, b"x"]) for seq in range(7)]
        offsets = [produce(raw, "t", 0, b).base_offset for b in batches]
        assert offsets == list(range(0, 14, 2))
        raw.close()
    finally:
        broker.stop()
    snapshots = list(tmp_path.glob("t-0/*.producer-snapshot"))
    assert len(snapshots) == 1  # written at shutdown
    if not snapshot:
        snapshots[0].unlink()  # as after a crash before any snapshot: rebuilt by scanning the log

    broker = BrokerThread(config=config, data_dir=str(tmp_path)).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        # The producer state was rebuilt from the log: the last five batches are recognised ...
        for seq in range(2, 7):
            resp = produce(raw, "t", 0, batches[seq])
            assert (resp.error_code, resp.base_offset) == (0, seq * 2)
        assert list_offset(raw, "t") == 14
        # ... the sequence continues where it stopped, and gaps are still refused.
        assert produce(raw, "t", 0, data_batch(pid, 0, 20, [b"gap"])).error_code == \
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(raw, "t", 0, data_batch(pid, 0, 14, [b"next"])).base_offset == 14
        raw.close()
    finally:
        broker.stop()


def test_duplicates_are_still_detected_after_a_kill_from_the_snapshot_taken_at_the_roll(tmp_path):
    """``python -m kbroker`` killed (SIGKILL: no snapshot at shutdown) after its log rolled: the
    snapshot the roll took (Kafka's UnifiedLog.roll) is on disk, and the restarted broker rebuilds
    the producer state from it and the batches after it."""
    import signal

    from waiting import wait_until

    from tests.integration.cli_helpers import BrokerProcess, base_args

    data = tmp_path / "data"
    args = [*base_args(data), "--override", "log.segment.bytes=1048576"]  # (the smallest segment allowed)

    def start() -> tuple[BrokerProcess, str]:
        proc = BrokerProcess(args, tmp_path)
        _node, host, port = proc.wait_ready().groups()
        return proc, f"{host}:{port}"

    proc, bootstrap = start()
    try:
        create_topic(bootstrap, "t")
        raw = RawClient(bootstrap)
        pid = init_producer_id(raw).producer_id
        # three batches of 300 kB fill the first segment: the fourth rolls the log at offset 3
        batches = [data_batch(pid, 0, seq, [b"%d" % seq * (300_000 if seq < 4 else 1)]) for seq in range(7)]
        assert [produce(raw, "t", 0, b).base_offset for b in batches] == list(range(7))
        directory = next(data.glob("t-0"))
        rolled = directory / f"{3:020d}.producer-snapshot"
        wait_until(rolled.exists, message="the snapshot of the roll written by the roll worker")
        raw.close()
    finally:
        assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
    assert sorted(p.name for p in directory.glob("*.producer-snapshot")) == [rolled.name]  # none at a kill

    proc, bootstrap = start()
    try:
        raw = RawClient(bootstrap)
        # the last five batches are recognised (one before the snapshot), the sequence continues
        for seq in range(2, 7):
            resp = produce(raw, "t", 0, batches[seq])
            assert (resp.error_code, resp.base_offset) == (0, seq)
        assert produce(raw, "t", 0, data_batch(pid, 0, 9, [b"gap"])).error_code == \
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(raw, "t", 0, data_batch(pid, 0, 7, [b"next"])).base_offset == 7
        raw.close()
    finally:
        assert proc.stop() == 0


def test_kafka_python_retries_after_a_lost_response_create_no_duplicates():
    ensure_find_coordinator()
    broker_port, proxy_port = free_port(), free_port()
    config = {"listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
              "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"}
    with BrokerThread(config=config) as broker:
        proxy = DroppingProxy(broker_port, proxy_port, drops=2)
        try:
            bootstrap = f"127.0.0.1:{proxy_port}"
            topic = new_name("retry")
            create_topic(bootstrap, topic)
            producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", retries=10,
                                     max_in_flight_requests_per_connection=1, linger_ms=0,
                                     retry_backoff_ms=20, reconnect_backoff_ms=20)
            futures = [producer.send(topic, b"%d" % i) for i in range(20)]
            producer.flush()
            offsets = [f.get(timeout=30).offset for f in futures]
            producer.close()
            assert proxy.dropped == 2
            assert offsets == list(range(20))
            raw = RawClient(broker.bootstrap_servers)
            assert list_offset(raw, topic) == 20
            raw.close()
            consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                     enable_auto_commit=False)
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            values = []
            deadline = time.monotonic() + 30
            while consumer.position(tp) < 20:
                assert time.monotonic() < deadline
                values.extend(m.value for ms in consumer.poll(timeout_ms=200).values() for m in ms)
            consumer.close()
            assert values == [b"%d" % i for i in range(20)]
        finally:
            proxy.close()
