"""Quotas enforced at the wire, against an in-process broker: Produce bytes, Fetch bytes (capped and
answered empty when over), request_percentage, controller mutations (THROTTLING_QUOTA_EXCEEDED
from CreateTopics v6+, a throttle time only before), the connection muted while throttled
(KIP-219), and a user quota applying to the SASL principal's name. Every assertion is on the
throttle value the broker computes (Kafka's formula with a fresh sensor: the rate over 10 whole
windows), never on elapsed time."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator

import pytest
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.api import encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch

AReq = REQUESTS[49]
P = REQUESTS[0]
F = REQUESTS[1]
CT = REQUESTS[19]


def set_quota(w: Wire, entity: dict, key: str, value: float | None) -> None:
    resp = w.call(49, 1, validate_only=False, entries=[AReq.EntryData(
        entity=[AReq.EntryData.EntityData(entity_type=k, entity_name=v) for k, v in entity.items()],
        ops=[AReq.EntryData.OpData(key=key, value=value or 0.0, remove=value is None)])])
    assert resp.entries[0].error_code == ErrorCode.NONE, resp.entries[0].error_message


class Client(Wire):
    """A Wire with its own client id."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        super().__init__(bootstrap)
        self.client_id = client_id
        self.last_size = 0

    def send(self, request, version: int) -> int:
        cid = next(self._ids)
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version, correlation_id=cid,
                               client_id=self.client_id)
        payload = encode_request(header, request)
        self.last_size = len(payload)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        self.sent.append((cid, request.API_KEY, version))
        return cid


def produce_request(topic: str, value_size: int, acks: int = 1) -> object:
    batch = build_batch([Record(value=b"x" * value_size, timestamp=1_700_000_000_000)])
    return P(transactional_id=None, acks=acks, timeout_ms=10000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])


def fetch_request(topic: str, max_bytes: int = 1 << 20) -> object:
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                       log_start_offset=-1, partition_max_bytes=max_bytes)
    return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=0, session_id=0,
             session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[part])], forgotten_topics_data=[],
             rack_id="")


def kafka_throttle(value: float, bound: float, window_ms: float = 10_000) -> int:
    """Kafka's throttle for a fresh sensor: the rate is value over (samples - 1) windows."""
    import math
    return math.floor((value / (window_ms / 1000) - bound) / bound * window_ms + 0.5)


def connection_of(b: BrokerThread, client: Wire):
    """The broker's side of ``client``'s connection (None until the broker has set it up)."""
    port = client.sock.getsockname()[1]
    for conn in list(b.broker.connections):
        if conn.peer.endswith(f":{port}"):
            return conn
    return None


@pytest.fixture()
def broker(tmp_path) -> Iterator[BrokerThread]:
    with BrokerThread({}, data_dir=str(tmp_path / "data")) as b:
        yield b


def test_produce_over_its_byte_rate_is_throttled_and_the_connection_muted(broker):
    admin = Wire(broker.bootstrap_servers)
    create_topic(admin, "p")
    set_quota(admin, {"client-id": "slow-producer"}, "producer_byte_rate", 1024)
    c = Client(broker.bootstrap_servers, "slow-producer")
    resp = c.call(produce_request("p", 20_000), 9)
    assert resp.responses[0].partition_responses[0].error_code == ErrorCode.NONE  # accepted, then throttled
    assert resp.throttle_time_ms == kafka_throttle(c.last_size, 1024)
    assert resp.throttle_time_ms > 0
    assert connection_of(broker, c).throttled  # not read until the throttle time has passed
    # another client id is not throttled, nor is its connection
    other = Client(broker.bootstrap_servers, "other")
    assert other.call(produce_request("p", 20_000), 9).throttle_time_ms == 0
    assert not connection_of(broker, other).throttled
    # the quota removed: no longer counted
    set_quota(admin, {"client-id": "slow-producer"}, "producer_byte_rate", None)
    assert not broker.broker.client_quotas.produce.enabled
    for w in (admin, c, other):
        w.close()


def test_acks_0_produce_mutes_the_connection_without_a_response(broker):
    admin = Wire(broker.bootstrap_servers)
    create_topic(admin, "p0")
    set_quota(admin, {"client-id": None}, "producer_byte_rate", 100)
    c = Client(broker.bootstrap_servers, "fire-and-forget")
    c.send(produce_request("p0", 5_000, acks=0), 9)
    c.sent.clear()  # no response comes
    wait_until(lambda: getattr(connection_of(broker, c), "throttled", False), message="the acks=0 producer connection throttled")
    sensor = broker.broker.client_quotas.produce.sensors[("", "fire-and-forget")]
    assert sensor.throttle_count == 1
    assert sensor.throttle_total_ms == kafka_throttle(c.last_size, 100)
    admin.close()
    c.close()


def test_fetch_is_capped_then_answered_empty_with_the_throttle(broker):
    admin = Wire(broker.bootstrap_servers)
    create_topic(admin, "f")
    for _ in range(4):
        admin.call(produce_request("f", 3_000), 9)
    set_quota(admin, {"user": None}, "consumer_byte_rate", 500)  # ANONYMOUS on PLAINTEXT: the default user
    c = Client(broker.bootstrap_servers, "consumer")
    # capped at what one quota window allows: 500 B/s * 10 windows = 5000 bytes: one batch of ~3 KB fits
    # (whole batches are returned), so the first fetch is answered, and throttled
    first = c.call(fetch_request("f"), 12)
    records = first.responses[0].partitions[0].records
    size = len(records) if records is not None else 0
    assert 3_000 < size < 5_000 + 3_100
    assert first.throttle_time_ms == 0 or first.throttle_time_ms == kafka_throttle(size, 500)
    # the next one goes over: answered empty (the bytes taken back), with the throttle time
    second = c.call(fetch_request("f"), 12)
    assert second.responses == []
    expected = broker.broker.client_quotas.fetch.sensors[("ANONYMOUS", "")].throttle_total_ms
    assert second.throttle_time_ms > 0
    assert second.throttle_time_ms + (first.throttle_time_ms if first.throttle_time_ms else 0) == expected
    assert connection_of(broker, c).throttled
    admin.close()
    c.close()


def test_request_percentage_throttles_any_request_at_most_one_window(broker):
    admin = Wire(broker.bootstrap_servers)
    set_quota(admin, {"client-id": "busy"}, "request_percentage", 0.0001)
    c = Client(broker.bootstrap_servers, "busy")
    resp = c.call(3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    # any handler time is far over 0.0001 % of a thread: Kafka caps the throttle at one window
    assert resp.throttle_time_ms == 1000
    assert connection_of(broker, c).throttled
    admin.close()
    c.close()


def test_controller_mutation_rate(broker):
    admin = Wire(broker.bootstrap_servers)
    set_quota(admin, {"client-id": "creator"}, "controller_mutation_rate", 1)  # burst: 11 windows * 1/s
    c = Client(broker.bootstrap_servers, "creator")

    def topic(name: str, partitions: int):
        return CT.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[], configs=[])

    resp = c.call(19, 7, topics=[topic("m1", 20), topic("m2", 1)], timeout_ms=10000, validate_only=False)
    codes = {t.name: (t.error_code, t.error_message) for t in resp.topics}
    # m1 takes the 11 tokens and goes 9 below; m2 is refused while the bucket is below zero
    assert codes["m1"] == (ErrorCode.NONE, None)
    assert codes["m2"] == (ErrorCode.THROTTLING_QUOTA_EXCEEDED, "The throttling quota has been exceeded.")
    # 9 tokens below zero at 1/s: 9000 ms when m2 was refused, less the time since (Kafka's throttleTime)
    assert 0 < resp.throttle_time_ms <= 9_000
    # DeleteTopics v5+ and CreatePartitions v3+ are refused too; CreateTopics v5 is permissive
    # that connection is muted now; the same client id on other connections shares the quota:
    # DeleteTopics v5+ and CreatePartitions v3+ are refused too; CreateTopics v5 is permissive
    assert connection_of(broker, c).throttled
    c = Client(broker.bootstrap_servers, "creator")
    dresp = c.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name="m1", topic_id=uuid.UUID(int=0))],
                   timeout_ms=10000)
    assert dresp.responses[0].error_code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    assert dresp.throttle_time_ms > 0
    c = Client(broker.bootstrap_servers, "creator")
    presp = c.call(37, 3, topics=[REQUESTS[37].CreatePartitionsTopic(name="m1", count=21, assignments=None)],
                   timeout_ms=10000, validate_only=False)
    assert presp.results[0].error_code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    # Kafka checks the quota before the manual assignments (broker 99 is not registered)
    c = Client(broker.bootstrap_servers, "creator")
    CPT = REQUESTS[37].CreatePartitionsTopic
    presp = c.call(37, 3, topics=[CPT(name="m1", count=21, assignments=[CPT.CreatePartitionsAssignment(broker_ids=[99])])],
                   timeout_ms=10000, validate_only=False)
    assert presp.results[0].error_code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    c = Client(broker.bootstrap_servers, "creator")
    old = c.call(19, 5, topics=[topic("m3", 2)], timeout_ms=10000, validate_only=False)
    assert old.topics[0].error_code == ErrorCode.NONE
    assert old.throttle_time_ms > 0  # below zero: reported, not refused
    # other clients are not limited
    free = Client(broker.bootstrap_servers, "someone-else")
    resp = free.call(19, 7, topics=[topic("m4", 30)], timeout_ms=10000, validate_only=False)
    assert (resp.topics[0].error_code, resp.throttle_time_ms) == (ErrorCode.NONE, 0)
    for w in (admin, c, free):
        w.close()


def test_connection_creation_rate_closes_connections_over_it(tmp_path):
    # two windows of 1 s: a rate of 1 connection a second admits one connection, then closes the next
    with BrokerThread({"quota.window.num": "2"}, data_dir=str(tmp_path / "data")) as b:
        admin = Wire(b.bootstrap_servers)
        set_quota(admin, {"ip": "127.0.0.1"}, "connection_creation_rate", 1)
        first = Wire(b.bootstrap_servers)
        assert first.call(18, 3, client_software_name="t", client_software_version="1").error_code == 0
        second = Wire(b.bootstrap_servers)
        second.send(REQUESTS[18](client_software_name="t", client_software_version="1"), 3)
        with pytest.raises((ConnectionError, OSError)):
            second.receive()  # closed once its throttle time has passed, never answered
        ip = b.broker.client_quotas.ip
        assert ip.limit("127.0.0.1") == 1 and ip.limit("10.1.2.3") is None
        for w in (admin, first, second):
            w.close()


def test_a_throttle_does_not_count_against_the_request_receive_timeout(tmp_path):
    """A request half received when the connection is muted waits for the throttle to end: that
    time is the broker's, so kbroker.request.receive.timeout.ms (and the idle timer) count from the
    throttle's end."""
    with BrokerThread({"kbroker.request.receive.timeout.ms": "200"}, data_dir=str(tmp_path / "data")) as b:
        admin = Wire(b.bootstrap_servers)
        create_topic(admin, "p")
        set_quota(admin, {"client-id": "big"}, "producer_byte_rate", 10)
        c = Client(b.bootstrap_servers, "big")
        header = RequestHeader(request_api_key=0, request_api_version=9, correlation_id=1, client_id="big")
        payload = encode_request(header, produce_request("p", 2_000))
        # the Produce and the first half of another frame, in one read
        c.sock.sendall(struct.pack(">i", len(payload)) + payload + struct.pack(">i", 20) + b"\0" * 10)
        c.sent.append((1, 0, 9))
        resp = c.receive()
        assert resp.throttle_time_ms > 10_000
        conn = connection_of(b, c)
        assert conn.throttled and conn.decoder.buffered == 14
        # the broker closes a connection once now - frame_started passes the timeout: not before the
        # throttle's end
        now = time.monotonic()
        assert conn.frame_started > now + 5 and conn.last_active > now + 5
        assert not conn.closed
        admin.close()
        c.close()


def test_the_authenticators_answers_are_not_counted(tmp_path):
    """Before authentication the authenticator answers (ApiVersions, SaslHandshake), as Kafka's
    SaslServerAuthenticator does before KafkaApis: no quota counts them, so a connection is never
    throttled for the principal it has not yet become."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            'password="admin-secret" user_admin="admin-secret";')
    config = {"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
              "sasl.enabled.mechanisms": "PLAIN", "sasl.jaas.config": jaas}
    with BrokerThread(config, data_dir=str(tmp_path / "data")) as b:
        admin = Wire(b.bootstrap_servers)
        set_quota(admin, {"user": None}, "request_percentage", 0.0001)  # every user, ANONYMOUS included
        plain = Client(b.bootstrap_servers, "same")
        assert plain.call(18, 3, client_software_name="t", client_software_version="1").throttle_time_ms == 1000
        host, port = b.broker.listener_endpoint("SASL_PLAINTEXT")
        sasl = Client(f"{host}:{port}", "same")
        resp = sasl.call(18, 3, client_software_name="t", client_software_version="1")
        assert (resp.error_code, resp.throttle_time_ms) == (ErrorCode.NONE, 0)
        assert sasl.call(17, 1, mechanism="PLAIN").error_code == ErrorCode.NONE
        assert not connection_of(b, sasl).throttled
        for w in (admin, plain, sasl):
            w.close()
