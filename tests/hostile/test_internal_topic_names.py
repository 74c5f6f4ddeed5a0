"""Reserved topic names, as Apache Kafka 4.4 treats them.

``__cluster_metadata`` is the controller's own log (``__cluster_metadata-0`` in the data
directory), never a topic: CreateTopics (and Metadata auto-creation) answer INVALID_REQUEST
"Creation of internal topic __cluster_metadata is prohibited." (Kafka's ControllerApis.createTopics),
and every other API answers for it as for a topic that does not exist. The internal topics
(``__consumer_offsets``, ``__transaction_state``, ``__share_group_state``: Kafka's
Topic.INTERNAL_TOPICS) refuse a client's Produce and DeleteRecords with INVALID_TOPIC_EXCEPTION
(ReplicaManager.appendRecordsToLocalLog / deleteRecordsOnLocalLog). None of these attempts may change
anything, and a restart afterwards still knows every topic and its records.
"""

from __future__ import annotations

import uuid

import pytest
from wire import Wire, create_topic, find_coordinator, produce

from kbroker.metadata import image
from kbroker.metadata import metadata_records as mr
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch

E = ErrorCode
METADATA = "__cluster_metadata"
INTERNAL = ("__consumer_offsets", "__transaction_state", "__share_group_state")
PROHIBITED = "Creation of internal topic __cluster_metadata is prohibited."
CT, P, DT, DR, AC, IAC, CP = (REQUESTS[k] for k in (19, 0, 20, 21, 33, 44, 37))
TOPIC_RESOURCE = 2


def create(wire: Wire, name: str, version: int = 7, validate_only: bool = False, configs=None):
    topic = CT.CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=[],
                              configs=[CT.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                       for k, v in (configs or {}).items()])
    (result,) = wire.call(19, version, topics=[topic], timeout_ms=5000, validate_only=validate_only).topics
    return result.error_code, result.error_message


def produce_to(wire: Wire, name: str, partition: int = 0, batches: int = 1) -> int:
    batch = build_batch([Record(key=None, value=b"x", timestamp=1_700_000_000_000)]) * batches
    data = P.TopicProduceData(name=name, partition_data=[P.TopicProduceData.PartitionProduceData(
        index=partition, records=batch)])
    resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[data])
    return resp.responses[0].partition_responses[0].error_code


def delete_topic(wire: Wire, name: str) -> int:
    return wire.call(20, 6, topics=[DT.DeleteTopicState(name=name)], timeout_ms=5000).responses[0].error_code


def delete_records(wire: Wire, name: str, offset: int = -1) -> tuple[int, int]:
    topic = DR.DeleteRecordsTopic(name=name, partitions=[DR.DeleteRecordsTopic.DeleteRecordsPartition(
        partition_index=0, offset=offset)])
    (p,) = wire.call(21, 2, topics=[topic], timeout_ms=5000).topics[0].partitions
    return p.error_code, p.low_watermark


def alter_configs(wire: Wire, name: str) -> int:
    resource = AC.AlterConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=name, configs=[
        AC.AlterConfigsResource.AlterableConfig(name="retention.ms", value="1")])
    return wire.call(33, 2, resources=[resource], validate_only=False).responses[0].error_code


def incremental_alter_configs(wire: Wire, name: str) -> int:
    resource = IAC.AlterConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=name, configs=[
        IAC.AlterConfigsResource.AlterableConfig(name="retention.ms", config_operation=0, value="1")])
    return wire.call(44, 1, resources=[resource], validate_only=False).responses[0].error_code


def create_partitions(wire: Wire, name: str) -> int:
    topic = CP.CreatePartitionsTopic(name=name, count=3, assignments=None)
    return wire.call(37, 3, topics=[topic], timeout_ms=5000, validate_only=False).results[0].error_code


def metadata(wire: Wire, names: list[str] | None = None, auto_create: bool = False) -> dict[str, tuple]:
    """{name: (error, is_internal, partition count)} from Metadata v12."""
    topics = None if names is None else [REQUESTS[3].MetadataRequestTopic(name=n) for n in names]
    resp = wire.call(3, 12, topics=topics, allow_auto_topic_creation=auto_create,
                     include_topic_authorized_operations=False)
    return {t.name: (t.error_code, t.is_internal, len(t.partitions)) for t in resp.topics}


def state(b: BrokerThread) -> tuple:
    """What an attempt must not change: the metadata log's last offset, every topic with its
    partitions and configs, and every partition's log start and end offsets."""
    def read():
        broker = b.broker
        topics = {}
        for name, t in broker.image.topics.items():
            logs = {}
            for index in t.partitions:
                partition = broker.partition(name, index)
                logs[index] = None if partition is None else (partition.log_start_offset,
                                                              partition.log.log_end_offset)
            topics[name] = (t.topic_id, dict(t.configs), logs)
        return broker.image.offset, topics
    return b.call(read)


def set_up(b: BrokerThread, wire: Wire) -> None:
    """An ordinary topic with records, and every internal topic: the coordinators' two as a client
    first needs them, ``__share_group_state`` by CreateTopics (Kafka allows creating it)."""
    create_topic(wire, "plain", 2)
    produce(wire, "plain", 0, 3)
    for key_type, key in ((0, "g"), (1, "t")):  # COORDINATOR_NOT_AVAILABLE while the topic is created
        assert find_coordinator(wire, key_type, [key]).coordinators[0].error_code == E.NONE
    assert create(wire, "__share_group_state") == (E.NONE, None)


def attempt_everything(wire: Wire) -> None:
    """Every API a client could use to create, write, trim, reconfigure, grow or delete a reserved
    name, each answered with Kafka's code."""
    for version in (2, 5, 7):
        assert create(wire, METADATA, version) == (E.INVALID_REQUEST, PROHIBITED)
    assert create(wire, METADATA, validate_only=True) == (E.INVALID_REQUEST, PROHIBITED)
    # The name is refused before its configs are looked at.
    assert create(wire, METADATA, configs={"no.such.config": "x"}) == (E.INVALID_REQUEST, PROHIBITED)
    assert metadata(wire, [METADATA], auto_create=True)[METADATA][2] == 0
    # For every other API the metadata log is not a topic.
    assert produce_to(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert delete_records(wire, METADATA) == (E.UNKNOWN_TOPIC_OR_PARTITION, -1)
    assert alter_configs(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert incremental_alter_configs(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert create_partitions(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert delete_topic(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    for name in INTERNAL:
        assert produce_to(wire, name) == E.INVALID_TOPIC_EXCEPTION
        assert delete_records(wire, name) == (E.INVALID_TOPIC_EXCEPTION, -1)
        assert delete_records(wire, name, 0) == (E.INVALID_TOPIC_EXCEPTION, -1)
        assert create(wire, name) == (E.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with BrokerThread(data_dir=str(tmp_path_factory.mktemp("data"))) as b:
        w = Wire(b.bootstrap_servers)
        set_up(b, w)
        w.close()
        yield b


@pytest.fixture
def wire(broker):
    w = Wire(broker.bootstrap_servers)
    yield w
    w.close()


def test_cluster_metadata_cannot_be_created(broker, wire):
    before = state(broker)
    for version in (2, 5, 7):
        assert create(wire, METADATA, version) == (E.INVALID_REQUEST, PROHIBITED)
    assert create(wire, METADATA, validate_only=True) == (E.INVALID_REQUEST, PROHIBITED)
    assert create(wire, METADATA, configs={"no.such.config": "x"}) == (E.INVALID_REQUEST, PROHIBITED)
    # Beside another topic only it is refused.
    topics = [CT.CreatableTopic(name=n, num_partitions=1, replication_factor=1, assignments=[], configs=[])
              for n in (METADATA, "beside-it")]
    results = wire.call(19, 7, topics=topics, timeout_ms=5000, validate_only=True).topics
    assert {(r.name, r.error_code, r.error_message) for r in results} == {
        (METADATA, E.INVALID_REQUEST, PROHIBITED), ("beside-it", E.NONE, None)}
    # Metadata's auto-creation goes the same way: nothing is created.
    (error, internal, partitions) = metadata(wire, [METADATA], auto_create=True)[METADATA]
    assert error != E.NONE and partitions == 0
    assert METADATA not in metadata(wire)
    assert state(broker) == before


def test_cluster_metadata_is_no_topic_for_any_other_api(broker, wire):
    before = state(broker)
    assert produce_to(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert delete_records(wire, METADATA) == (E.UNKNOWN_TOPIC_OR_PARTITION, -1)
    assert alter_configs(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert incremental_alter_configs(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert create_partitions(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert delete_topic(wire, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert state(broker) == before


@pytest.mark.parametrize("name", INTERNAL)
def test_clients_cannot_write_or_trim_an_internal_topic(broker, wire, name):
    before = state(broker)
    assert metadata(wire, [name])[name][:2] == (E.NONE, True)
    assert produce_to(wire, name) == E.INVALID_TOPIC_EXCEPTION
    # Kafka's KafkaApis answers a partition the metadata lacks, then a batch breaking the request's
    # rules (ProduceRequest.validateRecords), before the replica manager refuses the internal topic
    assert produce_to(wire, name, partition=10_000) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert produce_to(wire, name, batches=2) == E.INVALID_RECORD
    assert delete_records(wire, name) == (E.INVALID_TOPIC_EXCEPTION, -1)
    assert delete_records(wire, name, 0) == (E.INVALID_TOPIC_EXCEPTION, -1)
    assert state(broker) == before


def test_a_restart_after_every_attempt_knows_every_topic(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        set_up(b, w)
        before = state(b)
        attempt_everything(w)
        assert state(b) == before
        w.close()
    with BrokerThread(data_dir=data) as b:
        # (The metadata log has grown by the broker's registration; the topics are as they were.)
        assert state(b)[1] == before[1]
        w = Wire(b.bootstrap_servers)
        assert set(metadata(w)) == {"plain", *INTERNAL}
        assert produce(w, "plain", 0, 1) == 3  # the records before the restart are still there
        w.close()


def test_a_metadata_topic_left_in_the_metadata_log_is_ignored(tmp_path):
    """A metadata log written before the name was refused may hold a topic ``__cluster_metadata``
    with its partition: the image ignores it, so no API reaches the metadata log as a topic, and
    restarts keep working."""
    assert image.METADATA_TOPIC == METADATA  # the image knows the log's name
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        set_up(b, w)

        def sneak_in():
            node = b.broker.node_id
            topic_id = uuid.uuid4()
            b.broker.controller.commit([
                mr.TopicRecord(name=METADATA, topic_id=topic_id),
                mr.PartitionRecord(partition_id=0, topic_id=topic_id, replicas=[node], isr=[node], leader=node,
                                   leader_epoch=0, partition_epoch=0),
            ])
        b.call(sneak_in)
        assert METADATA not in metadata(w)
        attempt_everything(w)
        w.close()
    for _round in range(2):
        with BrokerThread(data_dir=data) as b:
            w = Wire(b.bootstrap_servers)
            assert set(metadata(w)) == {"plain", *INTERNAL}
            assert produce_to(w, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
            assert delete_topic(w, METADATA) == E.UNKNOWN_TOPIC_OR_PARTITION
            assert produce(w, "plain", 0, 1) == 3 + _round
            w.close()
