"""Test controls that rewind a broker: reset (topics, groups and faults deleted, connections kept),
snapshots to start brokers from, and the manual clock that expires sessions and transactions only
when advanced."""

from __future__ import annotations

import time

import pytest
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from tests.integration.control_helpers import (  # noqa: F401 (fixtures)
    _heartbeat,
    _join_and_sync,
    _no_faults_fixture,
    broker_fixture,
    http,
    metadata,
    topic,
)

E = ErrorCode


# -- reset and snapshot --------------------------------------------------------------------------


def _consume_all(bootstrap: str, name: str, group: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(name, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout

    def poll() -> bool:
        # One poll waits for the records up to the deadline, as an application's poll loop does,
        # rather than short polls: kafka-python 3.0.12 never applies a JoinGroup/SyncGroup round
        # whose poll() timed out once the leader's assignment cleared its need to rejoin, and then
        # sits without partitions, sending the coordinator nothing (compat/FINDINGS.md).
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        for records in consumer.poll(timeout_ms=remaining_ms).values():
            values.extend(r.value for r in records)
        return len(values) >= expected

    try:
        wait_until(poll, timeout, message=f"{expected} records of {name}")
        consumer.commit()
    finally:
        consumer.close()
    return values


def test_reset_deletes_topics_groups_and_faults_keeping_connections(kbroker_factory):
    from kafka import KafkaAdminClient, KafkaProducer

    b = kbroker_factory(control=True)
    producer = KafkaProducer(bootstrap_servers=b.bootstrap_servers)
    for i in range(3):
        producer.send(f"reset-{i}", b"old").get(timeout=30)
    assert _consume_all(b.bootstrap_servers, "reset-0", "g-reset", 1) == [b"old"]
    b.add_fault(api="ListGroups", action="drop")
    wire = Wire(b.bootstrap_servers)
    try:
        create_topic(wire, "reset-wire")
        result = b.reset()
        assert result["topics_deleted"] == 4 and result["groups_deleted"] == 1
        assert result["connections_dropped"] == 0
        assert b.faults() == []
        assert sorted(b.broker.image.topics) == []
        # the same connection goes on: the topic is gone
        assert metadata(wire, "reset-wire").topics[0].error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    finally:
        wire.close()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
    try:
        assert list(admin.list_groups()) == []
    finally:
        admin.close()
    producer.send("reset-0", b"new").get(timeout=30)  # the producer carries on (topic auto-created again)
    producer.close()
    # a fresh group and a fresh log: only the new record, from offset 0
    assert _consume_all(b.bootstrap_servers, "reset-0", "g-reset", 1) == [b"new"]
    assert b.broker.partitions[("reset-0", 0)].log.log_end_offset == 1


def test_reset_can_drop_connections_over_http(kbroker_factory):
    b = kbroker_factory(control=True)
    wire = Wire(b.bootstrap_servers)
    try:
        create_topic(wire, topic())
        status, out = http(b, "POST", "/reset", {"connections": "drop"})
        assert status == 200 and out["connections_dropped"] == 1 and out["topics_deleted"] == 1
        with pytest.raises((ConnectionError, OSError)):
            metadata(wire, "x")
    finally:
        wire.close()
    assert http(b, "POST", "/reset", {"connections": "sometimes"})[1]["field"] == "connections"


def test_reset_keeps_the_metrics_endpoint_serving_and_counting(kbroker_factory):
    from metrics_http import get, scrape, value

    b = kbroker_factory({"kbroker.http.listeners": "http://127.0.0.1:0"})
    url = b.broker.metrics.http.url
    b.reset()
    assert b.broker.metrics.http is not None and b.broker.metrics.http.url == url  # the same listener
    assert get(url + "/metrics")[0] == 200
    before = value(scrape(b), "kafka_network_requestmetrics_requests_total", request="Metadata")
    wire = Wire(b.bootstrap_servers)
    try:
        metadata(wire, topic())
    finally:
        wire.close()
    assert value(scrape(b), "kafka_network_requestmetrics_requests_total", request="Metadata") == before + 1


def test_restart_after_reset_keeps_the_recreated_topic(tmp_path):
    """Replaying the metadata log must not delete the directory of a topic deleted (by reset or
    DeleteTopics) and created again under the same name."""
    from kafka import KafkaProducer

    data_dir = str(tmp_path / "data")
    with BrokerThread(data_dir=data_dir) as b:
        producer = KafkaProducer(bootstrap_servers=b.bootstrap_servers)
        producer.send("again", b"before").get(timeout=30)
        b.reset()
        producer.send("again", b"after").get(timeout=30)
        producer.close()
    with BrokerThread(data_dir=data_dir) as b:
        assert b.broker.partitions[("again", 0)].log.log_end_offset == 1
        assert _consume_all(b.bootstrap_servers, "again", "g", 1) == [b"after"]


def test_snapshot_then_start_brokers_from_it(tmp_path):
    from kafka import KafkaProducer

    snap = str(tmp_path / "snap")
    with BrokerThread(control=True) as b:
        producer = KafkaProducer(bootstrap_servers=b.bootstrap_servers)
        for i in range(5):
            producer.send("prepared", b"r%d" % i).get(timeout=30)
        producer.close()
        assert _consume_all(b.bootstrap_servers, "prepared", "done-group", 5) == [b"r%d" % i for i in range(5)]
        status, out = http(b, "POST", "/snapshot", {"path": snap})
        assert status == 200 and "prepared" in out["topics"]
        status, out = http(b, "POST", "/snapshot", {"path": snap})  # not empty any more
        assert (status, out["field"]) == (400, "path")
    for _ in range(2):  # each test starts from the same prepared state
        with BrokerThread(snapshot=snap) as copy:
            assert _consume_all(copy.bootstrap_servers, "prepared", "new-group", 5) == [b"r%d" % i
                                                                                      for i in range(5)]
            group = copy.broker.group_coordinator.offsets.committed["done-group"]
            assert group[("prepared", 0)].offset == 5
    with pytest.raises(ValueError, match="not a kbroker snapshot"):
        BrokerThread(snapshot=str(tmp_path)).start()


def test_manual_clock_expires_a_session_only_when_advanced(kbroker_factory):
    b = kbroker_factory(clock="manual", control=True)
    wire = Wire(b.bootstrap_servers)
    try:
        member, generation = _join_and_sync(wire, "clocked", session_ms=45000)
        assert b.advance(44_999) >= 0
        assert _heartbeat(wire, "clocked", member, generation) == E.NONE  # the session starts again
        b.advance(44_999)
        group = b.call(lambda: b.broker.group_coordinator.groups["clocked"])
        assert list(group.members) == [member]  # real time passing does nothing
        status, out = http(b, "POST", "/clock/advance", {"ms": 2})
        assert status == 200 and isinstance(out["now_ms"], int)
        assert list(group.members) == []  # expired at once, without waiting 45 s
        assert _heartbeat(wire, "clocked", member, generation) == E.UNKNOWN_MEMBER_ID
    finally:
        wire.close()


def test_advance_needs_a_manual_clock(broker):
    with pytest.raises(RuntimeError, match="not manual"):
        broker.advance(1000)


def test_manual_clock_times_out_a_transaction_when_advanced(kbroker_factory):
    from confluent_kafka import KafkaException, Producer

    b = kbroker_factory(clock="manual")
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "transactional.id": "clocked-txn",
                         "transaction.timeout.ms": 60000})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("clocked-topic", b"in a transaction")
    assert producer.flush(30) == 0

    def state() -> str:
        return b.call(lambda: b.broker.txn_coordinator.txns["clocked-txn"].state.name)

    assert state() == "ONGOING"
    b.advance(70_000)  # past the timeout, to the coordinator's next check (every 10 s)
    assert state() in ("PREPARE_ABORT", "COMPLETE_ABORT")  # at once
    with pytest.raises(KafkaException):
        producer.commit_transaction(30)  # fenced: the coordinator aborted it
