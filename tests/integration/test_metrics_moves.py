"""Issue 21's metrics that tests/integration/test_metrics.py does not move: each scraped from
/metrics around requests at the wire, asserting the amount it moved by (quota throttle time per
quota type and user/client id, failed fetches and produces, partition gauges and under-min-ISR,
log start offset and segments, metadata offsets, connections per listener, GC and process CPU)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch
from tests.integration.metrics_http import scrape, value
from tests.integration.waiting import wait_until
from tests.integration.wire import Wire, create_topic, produce

E = ErrorCode
P = REQUESTS[0]
F = REQUESTS[1]
AReq = REQUESTS[49]
DR = REQUESTS[21]


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    """A broker of its own: no other test's requests between two scrapes."""
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0"}) as b:
        yield b


def set_quota(wire: Wire, entity: dict[str, str], key: str, amount: float) -> None:
    resp = wire.call(49, 1, validate_only=False, entries=[AReq.EntryData(
        entity=[AReq.EntryData.EntityData(entity_type=k, entity_name=v) for k, v in entity.items()],
        ops=[AReq.EntryData.OpData(key=key, value=amount, remove=False)])])
    assert resp.entries[0].error_code == E.NONE, resp.entries[0].error_message


def produce_request(topic: str, value_size: int, acks: int = 1, key: bytes | None = None) -> object:
    batch = build_batch([Record(key=key, value=b"x" * value_size, timestamp=1_700_000_000_000)])
    return P(transactional_id=None, acks=acks, timeout_ms=10000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])


def fetch(wire: Wire, topic: str, offset: int) -> int:
    """One Fetch of partition 0 from ``offset``; its partition's error code."""
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=offset,
                                       last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=65536)
    resp = wire.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=65536, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[part])],
                     forgotten_topics_data=[], rack_id="")
    return resp.responses[0].partitions[0].error_code


def test_quota_throttle_time_is_what_the_throttled_responses_carried(broker, topic_name):
    """Per quota type and its user/client-id tags: the throttled responses and the sum of their
    throttle_time_ms, exactly."""
    bootstrap = broker.bootstrap_servers
    quotas = broker.broker.client_quotas
    admin = Wire(bootstrap)
    try:
        create_topic(admin, topic_name)
        set_quota(admin, {"client-id": "metered"}, "producer_byte_rate", 100.0)
        set_quota(admin, {"user": "ANONYMOUS", "client-id": "busy"}, "request_percentage", 0.0001)
        set_quota(admin, {"client-id": "reader"}, "consumer_byte_rate", 100.0)
    finally:
        admin.close()
    wait_until(lambda: quotas.produce.quota("ANONYMOUS", "metered") == 100.0
               and quotas.request.quota("ANONYMOUS", "busy") is not None
               and quotas.fetch.quota("ANONYMOUS", "reader") == 100.0, message="the quotas applied")
    before = scrape(broker)

    produced = []
    for _ in range(2):  # a throttled connection is muted: a new one for each request
        wire = Wire(bootstrap, client_id="metered")
        try:
            resp = wire.call(produce_request(topic_name, 5000), 9)
            assert resp.responses[0].partition_responses[0].error_code == E.NONE
            produced.append(resp.throttle_time_ms)
        finally:
            wire.close()
    wire = Wire(bootstrap, client_id="busy")
    try:
        metadata = wire.call(3, 12, topics=None, allow_auto_topic_creation=False,
                             include_topic_authorized_operations=False)
        requested = metadata.throttle_time_ms
    finally:
        wire.close()
    wire = Wire(bootstrap, client_id="reader")
    try:  # ~10 kB of records against 100 B/s: a throttled Fetch (answered empty, as Kafka's)
        part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                           log_start_offset=-1, partition_max_bytes=65536)
        fetched = wire.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=65536, isolation_level=0,
                            session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[part])],
                            forgotten_topics_data=[], rack_id="").throttle_time_ms
    finally:
        wire.close()
    after = scrape(broker)

    assert all(t > 0 for t in produced) and requested > 0 and fetched > 0, (produced, requested, fetched)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    produce_tags = {"resource": "Produce", "user": "", "clientId": "metered"}
    assert delta("kbroker_quota_throttle_time_ms_total", **produce_tags) == sum(produced)
    assert delta("kbroker_quota_throttled_responses_total", **produce_tags) == 2
    request_tags = {"resource": "Request", "user": "ANONYMOUS", "clientId": "busy"}
    assert delta("kbroker_quota_throttle_time_ms_total", **request_tags) == requested
    assert delta("kbroker_quota_throttled_responses_total", **request_tags) == 1
    fetch_tags = {"resource": "Fetch", "user": "", "clientId": "reader"}
    assert delta("kbroker_quota_throttle_time_ms_total", **fetch_tags) == fetched
    assert delta("kbroker_quota_throttled_responses_total", **fetch_tags) == 1
    throttled = {k for k, v in after.items() if k[0] == "kbroker_quota_throttled_responses_total" and v}
    assert len(throttled) == 3, throttled  # nobody else was throttled

    # Kafka's throttle-time, named as the JMX exporter's Kafka rules name it: the mean throttle of
    # the sensor's responses throttled in the last 30-60 s; no sensor (no sample) before the clients came
    def gauge(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
              **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert gauge(before, "kafka_server_quota_throttle_time", **produce_tags) is None
    assert gauge(after, "kafka_server_quota_throttle_time", **produce_tags) == sum(produced) / 2
    assert gauge(before, "kafka_server_quota_throttle_time", **request_tags) is None
    assert gauge(after, "kafka_server_quota_throttle_time", **request_tags) == requested
    assert gauge(after, "kafka_server_quota_throttle_time", **fetch_tags) == fetched
    rate = gauge(after, "kafka_server_quota_byte_rate", **produce_tags)
    assert rate is not None and rate > 0  # the two Produce requests' bytes, per second of the quota window
    request_time = gauge(after, "kafka_server_quota_request_time", **request_tags)
    assert request_time is not None and request_time > 0


def test_failed_fetches_and_produces_are_counted_per_topic(broker, topic_name):
    """A Fetch past the log end (OFFSET_OUT_OF_RANGE) and a keyless record to a compacted topic
    (INVALID_RECORD) each count one request and one failure of the topic."""
    wire = Wire(broker.bootstrap_servers)
    try:
        create_topic(wire, topic_name, configs={"cleanup.policy": "compact"})
        refused = wire.call(produce_request(topic_name, 10), 9)
        assert refused.responses[0].partition_responses[0].error_code == E.INVALID_RECORD
        resp = wire.call(produce_request(topic_name, 10, key=b"k"), 9)
        assert resp.responses[0].partition_responses[0].error_code == E.NONE
        assert fetch(wire, topic_name, 1) == E.NONE
        assert fetch(wire, topic_name, 100) == E.OFFSET_OUT_OF_RANGE
        assert fetch(wire, topic_name, 200) == E.OFFSET_OUT_OF_RANGE
        after = scrape(broker)
    finally:
        wire.close()
    t = {"topic": topic_name}
    assert value(after, "kafka_server_brokertopicmetrics_totalproducerequests_total", **t) == 2
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total", **t) == 1
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", **t) == 1
    assert value(after, "kafka_server_brokertopicmetrics_totalfetchrequests_total", **t) == 3
    assert value(after, "kafka_server_brokertopicmetrics_failedfetchrequests_total", **t) == 2


def test_partition_gauges_count_the_new_partitions_and_min_isr_is_capped_at_the_replicas(broker, topic_name):
    """Kafka's UnderMinIsrPartitionCount compares the ISR with min(min.insync.replicas, replicas)
    (Partition.effectiveMinIsr): a one-replica partition of a min.insync.replicas=2 topic is not
    under min ISR, and takes acks=all produces."""
    wire = Wire(broker.bootstrap_servers)
    try:
        before = scrape(broker)
        create_topic(wire, topic_name, partitions=2, configs={"min.insync.replicas": "2"})
        created = scrape(broker)
        resp = wire.call(produce_request(topic_name, 10, acks=-1), 9)
        assert resp.responses[0].partition_responses[0].error_code == E.NONE
    finally:
        wire.close()

    def delta(name: str) -> float:
        return value(created, name) - value(before, name)

    assert delta("kafka_server_replicamanager_partitioncount") == 2
    assert delta("kafka_server_replicamanager_leadercount") == 2
    assert delta("kafka_controller_kafkacontroller_globalpartitioncount") == 2
    assert delta("kafka_controller_kafkacontroller_globaltopiccount") == 1
    assert value(created, "kafka_server_replicamanager_underminisrpartitioncount") == 0
    assert value(created, "kafka_server_replicamanager_underreplicatedpartitions") == 0


def test_log_start_offset_and_segment_count_move(broker, topic_name):
    wire = Wire(broker.bootstrap_servers)
    try:
        create_topic(wire, topic_name, configs={"segment.bytes": str(1024 * 1024)})
        p = {"topic": topic_name, "partition": "0"}
        produce(wire, topic_name, 0, 10)
        first = scrape(broker)
        assert value(first, "kafka_log_log_numlogsegments", **p) == 1
        produce(wire, topic_name, 0, 1, pad=b"p" * 700_000)
        produce(wire, topic_name, 0, 1, pad=b"p" * 700_000)  # over segment.bytes: a new segment
        produce(wire, topic_name, 0, 1)
        resp = wire.call(21, 2, topics=[DR.DeleteRecordsTopic(name=topic_name, partitions=[
            DR.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=7)])], timeout_ms=5000)
        assert resp.topics[0].partitions[0].error_code == E.NONE
        after = scrape(broker)
    finally:
        wire.close()
    assert value(first, "kafka_log_log_logstartoffset", **p) == 0
    assert value(after, "kafka_log_log_logstartoffset", **p) == 7
    assert value(after, "kafka_log_log_logendoffset", **p) == 13
    assert value(after, "kafka_log_log_numlogsegments", **p) == 2


def test_metadata_offsets_advance_and_the_image_catches_up(broker, topic_name):
    before = scrape(broker)
    wire = Wire(broker.bootstrap_servers)
    try:
        create_topic(wire, topic_name, partitions=3)
    finally:
        wire.close()
    committed = "kafka_controller_kafkacontroller_lastcommittedrecordoffset"
    applied = "kafka_server_broker_metadata_metrics_last_applied_record_offset"

    def caught_up() -> dict | None:
        samples = scrape(broker)
        return samples if value(samples, applied) == value(samples, committed) else None

    after = wait_until(caught_up, message="the image applied every committed record")
    # A TopicRecord and three PartitionRecords at least (the controller may also write no-ops).
    assert value(after, committed) - value(before, committed) >= 4
    assert value(after, applied) - value(before, applied) >= 4
    assert value(after, "kbroker_metadata_lag_records") == 0
    assert value(after, "kafka_controller_kafkacontroller_globalpartitioncount") - \
        value(before, "kafka_controller_kafkacontroller_globalpartitioncount") == 3


def test_connections_per_listener_count_each_open_connection(broker):
    name = "kafka_server_socketservermetrics_connection_count"
    base = value(scrape(broker), name, listener="PLAINTEXT")
    wires = [Wire(broker.bootstrap_servers) for _ in range(3)]
    try:
        for w in wires:  # answered: the broker has the connection
            w.call(18, 3, client_software_name="t", client_software_version="1")
        assert value(scrape(broker), name, listener="PLAINTEXT") == base + 3
    finally:
        for w in wires:
            w.close()
    wait_until(lambda: value(scrape(broker), name, listener="PLAINTEXT") == base,
               message="the closed connections no longer counted")


def test_gc_and_process_cpu_move_with_work(broker, topic_name):
    before = scrape(broker)
    wire = Wire(broker.bootstrap_servers)
    try:
        create_topic(wire, topic_name)
        for _ in range(50):
            produce(wire, topic_name, 0, 100)
    finally:
        wire.close()
    gc.collect()  # the broker runs in this process: a full collection is one of its collections
    after = scrape(broker)
    gc2 = {"generation": "2"}
    assert value(after, "python_gc_collections_total", **gc2) > value(before, "python_gc_collections_total", **gc2)
    assert value(after, "process_cpu_seconds_total") > value(before, "process_cpu_seconds_total")
    assert value(after, "process_resident_memory_bytes") > 0
