"""Test controls' faults: fault rules in the dispatcher and pause, seen by real clients and from the wire,
and the whole-broker faults (disk full, moved leadership, moved group coordinator)."""

from __future__ import annotations

import threading

import pytest
from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.control.faults import RuleError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
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


# -- faults seen by real clients ---------------------------------------------------------------


def test_kafka_python_producer_sees_the_injected_error_once(broker):
    from kafka import KafkaProducer
    from kafka.errors import NotLeaderForPartitionError

    name = topic()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, retries=0, client_id="once-client")
    try:
        producer.send(name, b"warm-up").get(timeout=30)  # topic created, metadata known
        rule = broker.add_fault(api="Produce", error="NOT_LEADER_OR_FOLLOWER", count=1, topic=name)
        with pytest.raises(NotLeaderForPartitionError):
            producer.send(name, b"first").get(timeout=30)
        producer.send(name, b"second").get(timeout=30)  # the rule is spent
    finally:
        producer.close()
    described = broker.fault(rule)
    assert described["fired"] == 1 and described["exhausted"]
    fired = broker.fired(rule)
    assert [(f["api"], f["error"], f["client_id"]) for f in fired] == [
        ("Produce", "NOT_LEADER_OR_FOLLOWER", "once-client")]


def test_confluent_producer_retries_through_the_injected_error(broker):
    from confluent_kafka import Consumer, Producer

    name = topic()
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "client.id": "confluent-retry",
                         "enable.idempotence": False})
    producer.produce(name, b"warm-up")
    assert producer.flush(30) == 0
    rule = broker.add_fault(api="Produce", error="NOT_LEADER_OR_FOLLOWER", count=1, topic=name)
    delivered = []
    producer.produce(name, b"retried", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(30) == 0
    assert delivered == [None]  # librdkafka retried after the injected error and succeeded
    assert [f["client_id"] for f in broker.fired(rule)] == ["confluent-retry"]
    assert broker.fault(rule)["fired"] == 1
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"g-{name}",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([name])
        values: list[bytes] = []

        def poll() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
            return len(values) >= 2

        wait_until(poll, message="both records")
        assert values == [b"warm-up", b"retried"]  # the failed attempt wrote nothing
    finally:
        consumer.close()


def test_error_rule_filters_by_partition_and_answers_every_partition_of_the_request(broker):
    wire = Wire(broker.bootstrap_servers)
    try:
        name = topic()
        create_topic(wire, name, partitions=2)
        rule = broker.add_fault(api="Produce", error="KAFKA_STORAGE_ERROR", topic=name, partition=1)
        assert produce(wire, name, 0, 1) == 0  # partition 0: not matched
        Req = REQUESTS[0]
        from kbroker_protocol.records import Record, build_batch

        batch = build_batch([Record(key=None, value=b"x", timestamp=1_700_000_000_000)])
        data = Req.TopicProduceData(name=name, partition_data=[
            Req.TopicProduceData.PartitionProduceData(index=1, records=batch)])
        resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
        part = resp.responses[0].partition_responses[0]
        assert (part.index, part.error_code, part.base_offset) == (1, E.KAFKA_STORAGE_ERROR, -1)
        assert broker.fault(rule)["fired"] == 1
        assert produce(wire, name, 0, 1) == 1
    finally:
        wire.close()


def test_every_nth_request_fires(broker):
    wire = Wire(broker.bootstrap_servers)
    try:
        name = topic()
        create_topic(wire, name)
        rule = broker.add_fault(api="Metadata", error="UNKNOWN_TOPIC_OR_PARTITION", every=3, topic=name)
        codes = [metadata(wire, name).topics[0].error_code for _ in range(7)]
        assert codes == [0, 0, E.UNKNOWN_TOPIC_OR_PARTITION, 0, 0, E.UNKNOWN_TOPIC_OR_PARTITION, 0]
        assert broker.fault(rule)["matched"] == 7
    finally:
        wire.close()


def test_delay_drop_close_and_throttle_actions(broker):
    wire = Wire(broker.bootstrap_servers, timeout=10)
    try:
        name = topic()
        create_topic(wire, name)
        # throttle: the response carries the throttle time
        rule = broker.add_fault(api="Metadata", action="throttle", throttle_ms=1234, count=1)
        assert metadata(wire, name).throttle_time_ms == 1234
        assert metadata(wire, name).throttle_time_ms == 0
        broker.remove_fault(rule)
        # drop: the request runs, no response comes; the next request's response still does
        broker.add_fault(api="ApiVersions", action="drop", count=1)
        dropped = wire.send(REQUESTS[18](client_software_name="w", client_software_version="1"), 3)
        wire.sent.clear()
        after = metadata(wire, name)
        assert after.topics[0].error_code == 0 and dropped != 0
        # delay: answered after the delay, still in order with a request sent behind it
        broker.add_fault(api="ApiVersions", action="delay", delay_ms=300, count=1)
        wire.send(REQUESTS[18](client_software_name="w", client_software_version="1"), 3)
        wire.send(REQUESTS[3](topics=[REQUESTS[3].MetadataRequestTopic(name=name)],
                              allow_auto_topic_creation=False), 12)
        assert wire.receive().error_code == 0
        assert wire.receive().topics[0].name == name
        assert [f["action"] for f in broker.fired()][-2:] == ["drop", "delay"]
        # close: the connection is closed instead of answering
        broker.add_fault(api="Metadata", action="close", client_id="wire-test", count=1)
        with pytest.raises((ConnectionError, OSError)):
            metadata(wire, name)
    finally:
        wire.close()


def test_pause_queues_requests_until_resume(broker):
    wire = Wire(broker.bootstrap_servers)
    try:
        name = topic()
        create_topic(wire, name)
        broker.pause()
        answered = threading.Event()

        def call() -> None:
            metadata(wire, name)
            answered.set()

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        wait_until(lambda: broker.call(lambda: broker.broker.control.paused_requests) == 1,
                   message="the request to wait")
        assert not answered.is_set()
        broker.resume()
        assert answered.wait(30)
        thread.join()
    finally:
        wire.close()


def test_faults_given_at_start(kbroker_factory):
    b = kbroker_factory(faults=[{"api": "Metadata", "error": "UNKNOWN_TOPIC_OR_PARTITION", "topic": "x"}])
    wire = Wire(b.bootstrap_servers)
    try:
        assert metadata(wire, "x").topics[0].error_code == E.UNKNOWN_TOPIC_OR_PARTITION
        assert b.faults()[0]["fired"] == 1
    finally:
        wire.close()
    with pytest.raises(RuleError) as info:
        kbroker_factory(faults=[{"api": "Metadata", "error": "NO_SUCH_ERROR"}])
    assert info.value.field == "[0].error"


# -- whole-broker faults -------------------------------------------------------------------------


def _produce_v11(wire: Wire, name: str, value: bytes = b"x"):
    from kbroker_protocol.records import Record, build_batch

    Req = REQUESTS[0]
    batch = build_batch([Record(key=None, value=value, timestamp=1_700_000_000_000)])
    data = Req.TopicProduceData(name=name, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=0, records=batch)])
    resp = wire.call(0, 11, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    return resp, resp.responses[0].partition_responses[0]


def test_disk_full_fails_appends_with_storage_error_until_freed(broker):
    wire = Wire(broker.bootstrap_servers)
    try:
        name = topic()
        create_topic(wire, name)
        assert produce(wire, name, 0, 2) == 0
        assert http(broker, "POST", "/disk", {"full": True}) == (200, {"disk_full": True})
        _resp, part = _produce_v11(wire, name)
        assert (part.error_code, part.base_offset) == (E.KAFKA_STORAGE_ERROR, -1)
        other = topic()
        create_topic(wire, other)  # a partition created while the disk is full fails too
        assert _produce_v11(wire, other)[1].error_code == E.KAFKA_STORAGE_ERROR
        L = REQUESTS[2]
        offsets = wire.call(2, 7, replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name=name, partitions=[
            L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
        assert offsets.topics[0].partitions[0].offset == 2  # reads go on; nothing was appended
        assert http(broker, "POST", "/disk", {"full": "yes"})[1]["field"] == "full"
        broker.set_disk_full(False)
        assert _produce_v11(wire, name)[1].base_offset == 2
    finally:
        wire.close()


def test_moved_leadership_answers_not_leader_with_the_new_epoch_and_clients_follow(broker):
    from confluent_kafka import Producer

    wire = Wire(broker.bootstrap_servers)
    try:
        name = topic()
        create_topic(wire, name)
        status, moved = http(broker, "POST", "/leadership", {"topic": name, "partition": 0})
        assert status == 200 and moved["leader_epoch"] == 1
        resp, part = _produce_v11(wire, name)
        assert part.error_code == E.NOT_LEADER_OR_FOLLOWER
        assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (1, 1)
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        assert [(n.node_id, n.port) for n in resp.node_endpoints] == [(1, int(port))]
        assert _produce_v11(wire, name)[1].error_code == E.NONE  # once
        assert metadata(wire, name).topics[0].partitions[0].leader_epoch == 1
        assert http(broker, "POST", "/leadership", {"topic": "nope", "partition": 0})[0] == 404
    finally:
        wire.close()
    broker.move_leadership(name, 0)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    delivered = []
    producer.produce(name, b"after the move", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(30) == 0 and delivered == [None]
    assert [f["error"] for f in broker.fired()][-1] == "NOT_LEADER_OR_FOLLOWER"


def test_moved_group_coordinator_answers_not_coordinator_once_and_clients_rediscover(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    wire = Wire(broker.bootstrap_servers)
    try:
        member, generation = _join_and_sync(wire, "moving-group", session_ms=30000)
        status, out = http(broker, "POST", "/coordinator", {"group": "moving-group"})
        assert status == 200 and out["coordinator"] == 1
        assert _heartbeat(wire, "moving-group", member, generation) == E.NOT_COORDINATOR
        found = wire.call(10, 4, key_type=0, coordinator_keys=["moving-group"]).coordinators[0]
        assert (found.error_code, found.node_id) == (E.NONE, 1)  # the new location
        assert _heartbeat(wire, "moving-group", member, generation) == E.NONE
        assert http(broker, "POST", "/coordinator", {})[1]["field"] == "group"
    finally:
        wire.close()
    name = topic()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send(name, b"x").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id="moving-client",
                             enable_auto_commit=False, client_id="mover")
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(1, "", -1)})
        rule = broker.move_coordinator(group="moving-client")["rule"]
        consumer.commit({tp: OffsetAndMetadata(1, "", -1)})  # NOT_COORDINATOR, rediscovered, committed
        assert [(f["api"], f["error"], f["client_id"]) for f in broker.fired(rule)] == [
            ("OffsetCommit", "NOT_COORDINATOR", "mover")]
        assert consumer.committed(tp) == 1
    finally:
        consumer.close()
