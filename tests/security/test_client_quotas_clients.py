"""Throttling observed by a real client (confluent-kafka/librdkafka, whose ``throttle_cb`` reports
the throttle_time_ms of every throttled response): the throttle times the producer is told add up
to exactly what the broker handed out; a consumer over its consumer_byte_rate is told to back off;
and a user quota applies to the SASL principal's name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

AReq = REQUESTS[49]
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def set_quota(bootstrap: str, entity: dict, key: str, value: float) -> None:
    w = Wire(bootstrap)
    resp = w.call(49, 1, validate_only=False, entries=[AReq.EntryData(
        entity=[AReq.EntryData.EntityData(entity_type=k, entity_name=v) for k, v in entity.items()],
        ops=[AReq.EntryData.OpData(key=key, value=value, remove=False)])])
    w.close()
    assert resp.entries[0].error_code == ErrorCode.NONE, resp.entries[0].error_message


@pytest.fixture()
def broker(tmp_path) -> Iterator[BrokerThread]:
    config = {"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
              "sasl.enabled.mechanisms": "PLAIN", "sasl.jaas.config": PLAIN_JAAS,
              # two 1 s windows (Kafka's minimum is 1 of 1 s): throttles of about a second keep this quick
              "quota.window.num": "2"}
    with BrokerThread(config, data_dir=str(tmp_path / "data")) as b:
        yield b


def produce_with_throttle_events(config: dict, topic: str, count: int, size: int) -> list[int]:
    events: list[int] = []
    producer = Producer({**config, "linger.ms": 5, "batch.size": 16384, "acks": 1,
                         "throttle_cb": lambda event: events.append(round(event.throttle_time * 1000))})
    for i in range(count):
        producer.produce(topic, value=bytes([i % 256]) * size)
        producer.poll(0)
    assert producer.flush(60) == 0
    producer.poll(0)
    return events


def test_producer_is_told_every_throttle_the_broker_applies(broker):
    bootstrap = broker.bootstrap_servers
    w = Wire(bootstrap)
    create_topic(w, "throttled")
    w.close()
    set_quota(bootstrap, {"client-id": "slow"}, "producer_byte_rate", 20000)
    events = produce_with_throttle_events({"bootstrap.servers": bootstrap, "client.id": "slow"}, "throttled", 40, 1000)
    sensor = broker.broker.client_quotas.produce.sensors[("", "slow")]
    assert sensor.throttle_count > 0
    # librdkafka reports each throttled Produce response: the same count and the same milliseconds
    assert len(events) == sensor.throttle_count
    assert sum(events) == sensor.throttle_total_ms


def test_consumer_over_its_byte_rate_is_throttled(broker):
    bootstrap = broker.bootstrap_servers
    w = Wire(bootstrap)
    create_topic(w, "reads")
    w.close()
    produce_with_throttle_events({"bootstrap.servers": bootstrap}, "reads", 60, 1000)
    set_quota(bootstrap, {"client-id": "slow-reader"}, "consumer_byte_rate", 20000)
    events: list[int] = []
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": "slow-reader", "group.id": "g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "throttle_cb": lambda event: events.append(round(event.throttle_time * 1000))})
    consumer.subscribe(["reads"])
    received = 0

    def read_all() -> bool:
        nonlocal received
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            received += 1
        return received == 60

    try:
        wait_until(read_all, timeout=90, message="all 60 records read")
    finally:
        consumer.close()
    sensor = broker.broker.client_quotas.fetch.sensors[("", "slow-reader")]
    assert sensor.throttle_count > 0 and events
    # every throttle the consumer was told of is one the broker applied (the last responses may
    # arrive after it stopped listening)
    assert 0 < sum(events) <= sensor.throttle_total_ms


def test_user_quota_applies_to_the_sasl_principal(broker):
    bootstrap = broker.bootstrap_servers
    w = Wire(bootstrap)
    create_topic(w, "by-user")
    w.close()
    set_quota(bootstrap, {"user": "alice"}, "producer_byte_rate", 20000)
    host, port = broker.broker.listener_endpoint("SASL_PLAINTEXT")
    sasl = {"bootstrap.servers": f"{host}:{port}", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "client.id": "any-client"}
    events = produce_with_throttle_events({**sasl, "sasl.username": "alice", "sasl.password": "alice-secret"},
                                          "by-user", 40, 1000)
    quotas = broker.broker.client_quotas.produce
    sensor = quotas.sensors[("alice", "")]  # a user quota: alice's usage, whatever her client id
    assert sensor.throttle_count > 0
    assert (len(events), sum(events)) == (sensor.throttle_count, sensor.throttle_total_ms)
    # admin (another principal) and the PLAINTEXT listener's ANONYMOUS are not limited
    assert produce_with_throttle_events({**sasl, "sasl.username": "admin", "sasl.password": "admin-secret"},
                                        "by-user", 40, 1000) == []
    assert produce_with_throttle_events({"bootstrap.servers": bootstrap}, "by-user", 40, 1000) == []
    assert set(quotas.sensors) == {("alice", ""), ("admin", ""), ("ANONYMOUS", "")}
