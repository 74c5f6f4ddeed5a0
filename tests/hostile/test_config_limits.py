"""Config values that only make sense as attacks (issue 13, hole 7).

Kafka 4.4 validates topic configs with LogConfig's validators (CreateTopics, AlterConfigs and
IncrementalAlterConfigs answer INVALID_CONFIG with its ConfigException text) and dynamic broker
configs with KafkaConfig's (answered INVALID_REQUEST, KAFKA-13609); a bad value in
server.properties stops start-up naming the key. A rejected change changes nothing.

Where Kafka has no bound (max.message.bytes up to 2147483647, segment.index.bytes down to 4) kbroker
accepts what Kafka accepts; the request frame bound socket.request.max.bytes still caps a batch.
"""

from __future__ import annotations

import struct
import uuid

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.api import encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch
from tests.integration.cli_helpers import BrokerProcess, base_args

E = ErrorCode
TOPIC, BROKER = 2, 4
SET = 0
CT = REQUESTS[19]
AC = REQUESTS[33]
IAC = REQUESTS[44]

MIB_FLOOR = "Value must be at least 1048576"


@pytest.fixture
def wire(broker):
    w = Wire(broker.bootstrap_servers, timeout=10)
    yield w
    w.close()


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def create(wire: Wire, name: str, configs: dict[str, str | None], validate_only: bool = False):
    topic = CT.CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[
        CT.CreatableTopic.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])
    resp = wire.call(19, 7, topics=[topic], timeout_ms=10000, validate_only=validate_only)
    return resp.topics[0].error_code, resp.topics[0].error_message


def alter(wire: Wire, rtype: int, name: str, configs: dict[str, str]):
    R = AC.AlterConfigsResource
    resp = wire.call(33, 2, validate_only=False, resources=[R(
        resource_type=rtype, resource_name=name,
        configs=[R.AlterableConfig(name=k, value=v) for k, v in configs.items()])])
    return resp.responses[0].error_code, resp.responses[0].error_message


def incremental(wire: Wire, rtype: int, name: str, configs: dict[str, str]):
    R = IAC.AlterConfigsResource
    resp = wire.call(44, 1, validate_only=False, resources=[R(
        resource_type=rtype, resource_name=name,
        configs=[R.AlterableConfig(name=k, config_operation=SET, value=v) for k, v in configs.items()])])
    return resp.responses[0].error_code, resp.responses[0].error_message


def overrides(broker, name: str) -> dict[str, str]:
    return broker.call(lambda: dict(broker.broker.image.topic(name).configs))


def log_config(broker, name: str):
    return broker.call(lambda: broker.broker.partition(name, 0).log.config)


def dynamic(broker) -> dict[str, dict[str, str]]:
    return broker.call(lambda: {k: dict(v) for k, v in broker.broker.image.broker_configs.items()})


TOPIC_ATTACKS = [
    ("segment.bytes", "14", f"Invalid value 14 for configuration segment.bytes: {MIB_FLOOR}"),
    ("segment.bytes", "0", f"Invalid value 0 for configuration segment.bytes: {MIB_FLOOR}"),
    ("segment.bytes", "1048575", f"Invalid value 1048575 for configuration segment.bytes: {MIB_FLOOR}"),
    ("segment.index.bytes", "3", "Invalid value 3 for configuration segment.index.bytes: Value must be at least 4"),
    ("max.message.bytes", "-1", "Invalid value -1 for configuration max.message.bytes: Value must be at least 0"),
    ("max.message.bytes", "2147483648",
     "Invalid value 2147483648 for configuration max.message.bytes: Not a number of type INT"),
    ("min.cleanable.dirty.ratio", "7",
     "Invalid value 7 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ("compression.gzip.level", "0",
     "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
    ("cleanup.policy", "delete,delete", "Configuration 'cleanup.policy' values must not be duplicated."),
    # Kafka's test-only internal.segment.bytes has no validator at all: kbroker does not take it
    # from clients (its log tests build a LogConfig directly instead).
    ("internal.segment.bytes", "14", "Unknown topic config name: internal.segment.bytes"),
]


@pytest.mark.parametrize("key,value,message", TOPIC_ATTACKS)
def test_create_topics_refuses_with_kafkas_message_and_creates_nothing(broker, wire, key, value, message):
    name = _name()
    assert create(wire, name, {key: value}) == (E.INVALID_CONFIG, message)
    assert create(wire, name, {key: value}, validate_only=True) == (E.INVALID_CONFIG, message)
    assert broker.call(lambda: broker.broker.image.topic(name)) is None


@pytest.mark.parametrize("key,value,message", TOPIC_ATTACKS)
def test_alter_configs_refuse_and_change_nothing(broker, wire, key, value, message):
    name = _name()
    assert create(wire, name, {"segment.bytes": "1048576", "retention.ms": "60000"}) == (E.NONE, None)
    before = log_config(broker, name)
    assert alter(wire, TOPIC, name, {"retention.ms": "1000", key: value}) == (E.INVALID_CONFIG, message)
    assert incremental(wire, TOPIC, name, {"retention.ms": "1000", key: value}) == (E.INVALID_CONFIG, message)
    assert overrides(broker, name) == {"segment.bytes": "1048576", "retention.ms": "60000"}
    assert log_config(broker, name) == before


def test_null_and_conflicting_topic_values_are_refused(broker, wire):
    name = _name()
    assert create(wire, name, {"retention.ms": None}) == (
        E.INVALID_CONFIG, "Null value not supported for topic configs: retention.ms")
    assert create(wire, name, {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}) == (
        E.INVALID_CONFIG, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)")
    assert create(wire, name, {"max.compaction.lag.ms": "5"}) == (E.NONE, None)
    # The whole resulting set is checked: the new value against the one already set.
    assert incremental(wire, TOPIC, name, {"min.compaction.lag.ms": "10"}) == (
        E.INVALID_CONFIG, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)")
    assert overrides(broker, name) == {"max.compaction.lag.ms": "5"}


def test_kafkas_floor_and_limits_are_accepted(broker, wire):
    name = _name()
    configs = {"segment.bytes": "1048576", "segment.index.bytes": "4", "max.message.bytes": "2147483647"}
    assert create(wire, name, configs) == (E.NONE, None)
    config = log_config(broker, name)
    assert (config.segment_bytes, config.segment_index_bytes, config.max_message_bytes) == (1048576, 4, 2147483647)


BROKER_ATTACKS = [
    ("log.segment.bytes", "14", f"Invalid value 14 for configuration log.segment.bytes: {MIB_FLOOR}"),
    ("message.max.bytes", "-1", "Invalid value -1 for configuration message.max.bytes: Value must be at least 0"),
    ("message.max.bytes", "2147483648",
     "Invalid value 2147483648 for configuration message.max.bytes: Not a number of type INT"),
    ("log.index.size.max.bytes", "3",
     "Invalid value 3 for configuration log.index.size.max.bytes: Value must be at least 4"),
]


@pytest.mark.parametrize("resource", ["", "node"])
@pytest.mark.parametrize("key,value,message", BROKER_ATTACKS)
def test_dynamic_broker_values_are_refused_as_kafka_does(broker, wire, resource, key, value, message):
    name = str(broker.broker.node_id) if resource == "node" else ""
    before = dynamic(broker)
    before_value = broker.call(lambda: broker.broker.config[key])
    # Kafka answers a dynamic broker config that fails validation with INVALID_REQUEST (KAFKA-13609).
    assert alter(wire, BROKER, name, {key: value}) == (E.INVALID_REQUEST, message)
    assert incremental(wire, BROKER, name, {key: value}) == (E.INVALID_REQUEST, message)
    assert dynamic(broker) == before
    assert broker.call(lambda: broker.broker.config[key]) == before_value


def test_a_dynamic_log_segment_bytes_at_the_floor_reaches_new_logs(broker, wire):
    assert incremental(wire, BROKER, "", {"log.segment.bytes": "1048576"}) == (E.NONE, None)
    try:
        name = _name()
        assert create(wire, name, {}) == (E.NONE, None)
        assert log_config(broker, name).segment_bytes == 1048576
    finally:
        R = IAC.AlterConfigsResource
        wire.call(44, 1, validate_only=False, resources=[R(resource_type=BROKER, resource_name="", configs=[
            R.AlterableConfig(name="log.segment.bytes", config_operation=1, value=None)])])


def test_request_frame_bound_caps_a_batch_whatever_max_message_bytes_says(tmp_path):
    # max.message.bytes has no upper bound in Kafka; what bounds a batch is the request frame,
    # socket.request.max.bytes: a larger frame closes the connection before it is read.
    with BrokerThread({"socket.request.max.bytes": "1048576"}, data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers, timeout=10)
        name = _name()
        assert create(w, name, {"max.message.bytes": "2147483647"}) == (E.NONE, None)
        P = REQUESTS[0]
        batch = build_batch([Record(value=b"x" * (2 * 1024 * 1024), timestamp=1_700_000_000_000)])
        request = P(transactional_id=None, acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(
            name=name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
        header = RequestHeader(request_api_key=0, request_api_version=9, correlation_id=1, client_id="hostile")
        payload = encode_request(header, request)
        try:
            w.sock.sendall(struct.pack(">i", len(payload)) + payload)
        except OSError:
            pass  # closed while sending: refused all the same
        w.sock.settimeout(10)
        try:
            assert w.sock.recv(4) == b""
        except ConnectionResetError:
            pass
        w.close()
        assert b.call(lambda: b.broker.partition(name, 0).log.log_end_offset) == 0


@pytest.mark.parametrize("override,message", [
    ("log.segment.bytes=14", f"Invalid value 14 for configuration log.segment.bytes: {MIB_FLOOR}"),
    ("message.max.bytes=2147483648",
     "Invalid value 2147483648 for configuration message.max.bytes: Not a number of type INT"),
    ("log.index.size.max.bytes=3",
     "Invalid value 3 for configuration log.index.size.max.bytes: Value must be at least 4"),
])
def test_start_up_with_an_attack_value_stops_naming_the_key(tmp_path, override, message):
    proc = BrokerProcess([*base_args(tmp_path / "data"), "--override", override], tmp_path)
    code = proc.proc.wait(60)
    stdout = proc.proc.stdout.read()
    proc.stop()
    assert code != 0
    assert message in proc.stderr()
    assert b"kbroker ready" not in stdout
    assert not (tmp_path / "data" / "meta.properties").exists()
