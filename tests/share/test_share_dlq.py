"""Dead-letter queues of share groups (KIP-1191, Kafka 4.4 with share.version 2): REJECTed records
and records at the delivery count limit are written to the group's DLQ topic with Kafka's
headers before they are archived."""

from __future__ import annotations

import uuid

import pytest
from share_wire import ACCEPT, REJECT, RELEASE, E, ShareClient, acquired, part, topic_id
from waiting import wait_until
from wire import create_topic, produce

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import iter_records


@pytest.fixture(scope="module")
def broker():
    with BrokerThread({"errors.deadletterqueue.auto.create.topics.enable": "true"}, clock="manual") as b:
        yield b


def set_group(wire, group: str, **configs: str) -> None:
    Req = REQUESTS[44]
    res = Req.AlterConfigsResource(resource_type=32, resource_name=group, configs=[
        Req.AlterConfigsResource.AlterableConfig(name=k, config_operation=0, value=v) for k, v in configs.items()])
    r = wire.call(44, 1, resources=[res], validate_only=False).responses[0]
    assert r.error_code == E.NONE, r.error_message


def dead_letters(broker, name: str) -> list:
    p = broker.broker.partition(name, 0)
    if p is None:
        return []

    def read():
        out, pos = [], 0
        data = p.log.read(0, 1 << 20, max_offset=p.high_watermark).read() if p.high_watermark else b""
        while pos < len(data):
            h = parse_header(data, pos)
            out.extend(iter_records(data[pos:pos + h.size]))
            pos += h.size
        return out
    return broker.call(read)


def _setup(wire, **group_configs: str):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    dlq = f"dlq.{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    set_group(wire, group, **{"share.auto.offset.reset": "earliest", "errors.deadletterqueue.topic.name": dlq,
                              **group_configs})
    c = ShareClient(wire, group)
    c.join([topic])
    return group, topic, tid, dlq, c


def test_rejected_records_become_dead_letters(broker, wire):
    group, topic, tid, dlq, c = _setup(wire)
    produce(wire, topic, 0, 3)  # values v0 v1 v2
    assert acquired(c.fetch(tid)) == [(0, 2, 1)]
    assert part(c.ack(tid, [(0, 2, [ACCEPT, REJECT, ACCEPT])])).error_code == E.NONE
    # The DLQ topic is asked of the controller (a CreateTopics through the controller client): the
    # dead letter is written once it answers.
    (letter,) = wait_until(lambda: dead_letters(broker, dlq), 10, message="the dead letter written")
    assert dict(letter.headers) == {
        "__dlq.errors.topic": topic.encode(), "__dlq.errors.partition": b"0", "__dlq.errors.offset": b"1",
        "__dlq.errors.group": group.encode(), "__dlq.errors.delivery.count": b"1",
        "__dlq.errors.message": b"Offset rejected by client."}
    assert (letter.key, letter.value) == (None, None)  # errors.deadletterqueue.copy.record.enable=false
    # The auto-created DLQ topic is marked as one.
    assert broker.broker.image.topic(dlq).configs["errors.deadletterqueue.group.enable"] == "true"


def test_delivery_limit_dead_letters_copy_the_record(broker, wire):
    group, topic, tid, dlq, c = _setup(wire, **{"errors.deadletterqueue.copy.record.enable": "true",
                                                "share.delivery.count.limit": "2"})
    produce(wire, topic, 0, 1)
    assert acquired(c.fetch(tid)) == [(0, 0, 1)]
    assert part(c.ack(tid, [(0, 0, [RELEASE])])).error_code == E.NONE
    assert acquired(c.fetch(tid)) == [(0, 0, 2)]
    assert dead_letters(broker, dlq) == []
    broker.advance(30_000)  # the lock expires at the limit: archived, with a dead letter
    (letter,) = wait_until(lambda: dead_letters(broker, dlq), 10, message="the dead letter written")
    assert letter.value == b"v0"
    assert dict(letter.headers)["__dlq.errors.delivery.count"] == b"2"
    assert dict(letter.headers)["__dlq.errors.message"] == b"Offset delivery count exceeded the threshold."


def test_topic_not_enabled_or_misnamed_gets_no_dead_letters(broker, wire):
    group, topic, tid, dlq, c = _setup(wire)
    create_topic(wire, dlq)  # exists without errors.deadletterqueue.group.enable=true
    produce(wire, topic, 0, 1)
    c.fetch(tid)
    assert part(c.ack(tid, [(0, 0, [REJECT])])).error_code == E.NONE  # archived all the same
    assert dead_letters(broker, dlq) == []
    sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(group, tid, 0)])
    assert sp.start_offset == 1
    # Without the dlq. prefix (errors.deadletterqueue.topic.name.prefix) no topic is created either.
    group2, topic2, tid2, _dlq, c2 = _setup(wire)
    set_group(wire, group2, **{"errors.deadletterqueue.topic.name": "mydlq"})
    produce(wire, topic2, 0, 1)
    c2.fetch(tid2)
    c2.ack(tid2, [(0, 0, [REJECT])])
    assert broker.broker.image.topic("mydlq") is None


def test_share_version_1_has_no_dead_letters(broker, wire):
    Key = REQUESTS[57].FeatureUpdateKey

    def level(n: int, kind: int) -> None:
        r = wire.call(57, 1, timeout_ms=60000, validate_only=False,
                      feature_updates=[Key(feature="share.version", max_version_level=n, upgrade_type=kind)])
        assert r.error_code == E.NONE and r.results[0].error_code == E.NONE

    group, topic, tid, dlq, c = _setup(wire)
    level(1, 2)
    try:
        produce(wire, topic, 0, 1)
        c.fetch(tid)
        assert part(c.ack(tid, [(0, 0, [REJECT])])).error_code == E.NONE
        assert broker.broker.image.topic(dlq) is None
    finally:
        level(2, 1)
