"""The metrics endpoint (kbroker.http.listeners): scraped around a real produce/consume run."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.errors import StartupError
from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS
from tests.integration.metrics_http import get, scrape, value
from tests.integration.waiting import wait_until
from tests.integration.wire import Wire
from tests.integration.wire import create_topic as wire_create_topic

N = 50
VALUE = b"v" * 100


@pytest.fixture(scope="module")
def broker():
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0"}) as b:
        yield b


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)


def consume(consumer: Consumer, count: int) -> list:
    got: list = []

    def poll() -> bool:
        msg = consumer.poll(0.2)
        if msg is not None:
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg)
        return len(got) >= count

    wait_until(poll, message=f"{count} records consumed")
    return got


def test_counters_move_by_the_right_amounts(broker, topic_name):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic_name)
    before = scrape(broker)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "none"})
    for i in range(N):
        producer.produce(topic_name, value=VALUE, key=str(i).encode())
    assert producer.flush(30) == 0
    after = scrape(broker)

    t = {"topic": topic_name}
    p = {"topic": topic_name, "partition": "0"}
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", **t) == N
    assert value(before, "kafka_server_brokertopicmetrics_messagesin_total", **t) == 0
    size = value(after, "kafka_log_log_size", **p)
    assert size > N * len(VALUE)
    # Every appended batch is in the (new) log as it came: bytes in equals the log's size.
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", **t) == size
    assert value(after, "kafka_log_log_logendoffset", **p) == N
    topic_produces = value(after, "kafka_server_brokertopicmetrics_totalproducerequests_total", **t)
    assert topic_produces >= 1
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total", **t) == 0
    produces = (value(after, "kafka_network_requestmetrics_requests_total", request="Produce")
                - value(before, "kafka_network_requestmetrics_requests_total", request="Produce"))
    assert produces >= topic_produces
    assert value(after, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == \
        value(after, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert value(after, "kafka_network_requestmetrics_totaltimems_bucket", request="Produce", le="+Inf") == \
        value(after, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert value(after, "kafka_server_socketservermetrics_connection_count", listener="PLAINTEXT") >= 1

    group = f"g-{topic_name}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        first = consume(consumer, 20)
        consumer.commit(offsets=[TopicPartition(topic_name, 0, first[-1].offset() + 1)], asynchronous=False)
        lagging = scrape(broker)
        g = {"consumergroup": group, **p}
        assert value(lagging, "kafka_consumergroup_lag", **g) == N - 20
        assert value(lagging, "kafka_consumergroup_current_offset", **g) == 20
        rest = consume(consumer, N - 20)
        consumer.commit(offsets=[TopicPartition(topic_name, 0, rest[-1].offset() + 1)], asynchronous=False)
        done = scrape(broker)
        assert value(done, "kafka_consumergroup_lag", **g) == 0
        assert value(done, "kafka_consumergroup_current_offset", **g) == N
    finally:
        consumer.close()
    # The records went out once each: bytes out equals what is in the log.
    assert value(done, "kafka_server_brokertopicmetrics_bytesout_total", **t) == size
    assert value(done, "kafka_server_brokertopicmetrics_totalfetchrequests_total", **t) >= 1
    assert (value(done, "kafka_network_requestmetrics_requests_total", request="Fetch")
            > value(before, "kafka_network_requestmetrics_requests_total", request="Fetch"))
    assert value(done, "kafka_network_requestmetrics_requests_total", request="OffsetCommit") >= 2


def test_broker_state_gauges(broker):
    samples = scrape(broker)
    assert value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value(samples, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(samples, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    assert value(samples, "kafka_server_broker_metadata_metrics_last_applied_record_offset") >= 0
    assert value(samples, "kbroker_metadata_lag_records") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    wait_until(lambda: value(scrape(broker), "kbroker_eventloop_lag_seconds_count") > 0,
               message="an event loop lag measurement")


def test_index_page_and_read_only_routes(broker):
    url = broker.broker.metrics.http.url
    status, content_type, text = get(url + "/")
    assert status == 200 and 'href="/metrics"' in text and content_type.startswith("text/html")
    assert get(url + "/nope")[0] == 404
    req = urllib.request.Request(url + "/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST /metrics was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405


@pytest.mark.parametrize("bad", ["nowhere", "https://127.0.0.1:0", "127.0.0.1:99999"])
def test_a_bad_listener_value_is_refused_at_start_naming_the_key(bad):
    with pytest.raises(StartupError, match=r"kbroker\.http\.listeners"):
        BrokerThread({"kbroker.http.listeners": bad}).start()


def test_no_metrics_endpoint_unless_configured():
    with BrokerThread() as b:
        assert b.broker.metrics.http is None
        assert b.broker.request_metrics is None


def test_the_dev_start_serves_metrics_on_loopback_unless_the_kafka_port_moves():
    from kbroker.__main__ import build_config, parse_args

    assert build_config(parse_args([]))["kbroker.http.listeners"] == ["http://127.0.0.1:9644"]
    moved = parse_args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
    assert build_config(moved)["kbroker.http.listeners"] == []
    off = parse_args(["--override", "kbroker.http.listeners="])
    assert build_config(off)["kbroker.http.listeners"] == []
    chosen = parse_args(["--override", "listeners=PLAINTEXT://127.0.0.1:0",
                         "--override", "kbroker.http.listeners=http://127.0.0.1:0"])
    assert build_config(chosen)["kbroker.http.listeners"] == ["http://127.0.0.1:0"]


def test_log_flushes_are_timed(broker, topic_name):
    bootstrap = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"flush.messages": "1"})])[topic_name].result(30)
    before = scrape(broker)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(3):
        producer.produce(topic_name, value=b"x%d" % i)
        assert producer.flush(30) == 0  # one batch, one append, one fsync each
    after = scrape(broker)
    name = "kafka_log_logflushstats_logflushrateandtimems"
    assert value(after, name + "_count") - value(before, name + "_count") >= 3
    assert value(after, name + "_sum") > value(before, name + "_sum")
    assert value(after, name + "_bucket", le="+Inf") == value(after, name + "_count")


PARTS = ("requestqueuetimems", "localtimems", "remotetimems", "responsequeuetimems", "responsesendtimems")


@pytest.fixture
def quiet_broker():
    """A broker of its own: no other test's client sends it a request between two scrapes."""
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0"}) as b:
        yield b


def test_request_time_is_split_as_kafka_splits_it_and_a_long_poll_waits_remotely(quiet_broker, topic_name):
    """Every answered request is counted in every part; the parts add up to the total; a Fetch
    that long-polls an empty partition spends its wait as remote time, not local."""
    broker = quiet_broker
    wire = Wire(broker.bootstrap_servers)
    try:
        wire_create_topic(wire, topic_name)
        before = scrape(broker)
        Req = REQUESTS[1]
        part = Req.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                             last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=65536)
        wait_ms = 300
        resp = wire.call(1, 12, replica_id=-1, max_wait_ms=wait_ms, min_bytes=1, max_bytes=65536, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[Req.FetchTopic(topic=topic_name, partitions=[part])],
                         forgotten_topics_data=[], rack_id="")
        assert resp.error_code == 0 and resp.responses[0].partitions[0].records in (None, b"")
        after = scrape(broker)
    finally:
        wire.close()

    def delta(name: str) -> float:
        return value(after, name, request="Fetch") - value(before, name, request="Fetch")

    assert delta("kafka_network_requestmetrics_totaltimems_count") == 1
    for p in PARTS:
        assert delta(f"kafka_network_requestmetrics_{p}_count") == 1, p
    remote = delta("kafka_network_requestmetrics_remotetimems_sum")
    local = delta("kafka_network_requestmetrics_localtimems_sum")
    # The broker holds a Fetch with min_bytes unmet until max_wait_ms: that wait is remote time.
    assert remote >= wait_ms * 0.9
    assert local < remote
    total = delta("kafka_network_requestmetrics_totaltimems_sum")
    assert total >= remote

    # Over every request so far, the parts add up to the total (each request's are exact).
    for api in ("Fetch", "Produce", "Metadata", "CreateTopics"):
        parts = sum(value(after, f"kafka_network_requestmetrics_{p}_sum", request=api) for p in PARTS)
        total = value(after, "kafka_network_requestmetrics_totaltimems_sum", request=api)
        assert parts == pytest.approx(total, rel=1e-6, abs=1e-6), api
        for p in PARTS:
            assert value(after, f"kafka_network_requestmetrics_{p}_count", request=api) == \
                value(after, "kafka_network_requestmetrics_requests_total", request=api), (api, p)


def test_a_request_answered_in_its_handlers_call_spends_its_handling_locally(quiet_broker):
    """An ApiVersions request is answered in its handler's call (no task): as Kafka counts a
    response sent before KafkaApis.handle returns, all of its handling is local time and its
    remote time 0 (in the first bucket); its parts still add up to its total."""
    broker = quiet_broker
    wire = Wire(broker.bootstrap_servers)
    n = 20
    try:
        before = scrape(broker)
        for _ in range(n):
            wire.send(REQUESTS[18](), 0)
        for _ in range(n):
            assert wire.receive().error_code == 0
        after = scrape(broker)
    finally:
        wire.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, request="ApiVersions", **labels) - value(before, name, request="ApiVersions",
                                                                          **labels)

    assert delta("kafka_network_requestmetrics_requests_total") == n
    assert delta("kafka_network_requestmetrics_remotetimems_sum") == 0.0
    assert delta("kafka_network_requestmetrics_remotetimems_bucket", le="0.5") == n
    assert delta("kafka_network_requestmetrics_localtimems_sum") > 0.0
    total = delta("kafka_network_requestmetrics_totaltimems_sum")
    assert sum(delta(f"kafka_network_requestmetrics_{p}_sum") for p in PARTS) == pytest.approx(total, rel=1e-6)


def test_every_pipelined_request_is_counted_in_every_part(quiet_broker, topic_name):
    """Requests pipelined, several answered per write (RequestStats.requests_sent counts a write's
    requests in one call): each part's count moves by exactly the requests answered, and their
    buckets add up to it; the topic's request counters too."""
    from kbroker_protocol.records import Record, build_batch

    broker = quiet_broker
    wire = Wire(broker.bootstrap_servers)
    n = 300
    try:
        wire_create_topic(wire, topic_name)
        before = scrape(broker)
        P = REQUESTS[0]
        batch = build_batch([Record(key=None, value=VALUE, timestamp=1_700_000_000_000 + i) for i in range(10)])
        produce = P(transactional_id=None, acks=1, timeout_ms=10000, topic_data=[P.TopicProduceData(
            name=topic_name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
        F = REQUESTS[1]
        fetch = F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=65536, isolation_level=0, session_id=0,
                  session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[F.FetchTopic.FetchPartition(
                      partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                      log_start_offset=-1, partition_max_bytes=65536)])], forgotten_topics_data=[], rack_id="")
        for request, version in ((produce, 9), (fetch, 12)):
            for start in range(0, n, 50):  # 50 in flight at a time
                count = min(50, n - start)
                for _ in range(count):
                    wire.send(request, version)
                for _ in range(count):
                    resp = wire.receive()
                    part = (resp.responses[0].partitions[0] if version == 12
                            else resp.responses[0].partition_responses[0])
                    assert part.error_code == 0
        after = scrape(broker)
    finally:
        wire.close()
    for api in ("Produce", "Fetch"):
        def delta(name: str, api: str = api, **labels: str) -> float:
            return value(after, name, request=api, **labels) - value(before, name, request=api, **labels)

        assert delta("kafka_network_requestmetrics_requests_total") == n, api
        for p in ("totaltimems", *PARTS):
            assert delta(f"kafka_network_requestmetrics_{p}_count") == n, (api, p)
            assert delta(f"kafka_network_requestmetrics_{p}_bucket", le="+Inf") == n, (api, p)
            assert delta(f"kafka_network_requestmetrics_{p}_sum") >= 0, (api, p)
    assert value(after, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic_name) == n
    # Per-topic counters (plain ints on the partition, added to by each append): exactly the batches'
    # bytes and records appended, none lost or counted twice among the pipelined requests.
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic_name) == n * len(batch)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name) == n * 10
    assert value(after, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=topic_name) == n
    assert value(after, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=topic_name) == n
