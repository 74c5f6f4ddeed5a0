"""Hostile and unusual input at the socket. After each case the broker is still up and a client
that was connected before, and one that connects after, are served."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import time
import uuid

import pytest
from waiting import wait_until
from wire import read_frame

from kbroker.api.registry import HANDLERS
from kbroker.testing import BrokerThread
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import Record, build_batch, iter_records

_ids = itertools.count(1000)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def broker(request):
    """The broker on the standard loop and on uvloop (which ``python -m kbroker`` uses)."""
    if request.param == "asyncio":
        with BrokerThread() as b:
            yield b
        return
    import uvloop

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        b = BrokerThread().start()  # the broker thread creates its loop under this policy
    finally:
        asyncio.set_event_loop_policy(previous)
    try:
        assert type(b._loop).__module__.startswith("uvloop")
        yield b
    finally:
        b.stop()


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def frame(key: int, version: int, correlation_id: int | None = None, **fields) -> tuple[int, bytes]:
    cid = next(_ids) if correlation_id is None else correlation_id
    header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid, client_id="sock")
    payload = encode_request(header, REQUESTS[key](**fields))
    return cid, struct.pack(">i", len(payload)) + payload


def create_topic_on(sock: socket.socket, name: str) -> None:
    """CreateTopics v7 of ``name`` (one partition) on ``sock``; its answer is read, not looked at."""
    Req = REQUESTS[19]
    _cid, data = frame(19, 7, topics=[Req.CreatableTopic(name=name, num_partitions=1, replication_factor=1,
                                                          assignments=[], configs=[])],
                       timeout_ms=5000, validate_only=False)
    sock.sendall(data)
    read_frame(sock)


def auto_create_on(sock: socket.socket, name: str) -> None:
    """A Metadata v12 request for ``name`` on ``sock`` that creates it (auto-creation); its answer
    is read, not looked at."""
    _cid, md = frame(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)],
                     allow_auto_topic_creation=True, include_topic_authorized_operations=False)
    sock.sendall(md)
    read_frame(sock)


def metadata_frame(correlation_id: int | None = None) -> tuple[int, bytes]:
    return frame(3, 12, correlation_id, topics=[], allow_auto_topic_creation=False,
                 include_topic_authorized_operations=False)


def metadata_ok(sock: socket.socket) -> bool:
    cid, data = metadata_frame()
    sock.sendall(data)
    header, body = decode_response(read_frame(sock), 3, 12)
    return header.correlation_id == cid and len(body.brokers) == 1


def assert_closed_by_broker(sock: socket.socket) -> None:
    """The broker closes the connection (the socket timeout bounds the wait)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            raise AssertionError(f"unexpected bytes from broker: {data[:40]!r}")
    except ConnectionResetError:
        return


@pytest.fixture
def bystander(bootstrap):
    """A client connected before the abuse; it must still be served afterwards, as must a new one."""
    sock = connect(bootstrap)
    assert metadata_ok(sock)
    yield sock
    assert metadata_ok(sock)
    fresh = connect(bootstrap)
    assert metadata_ok(fresh)
    fresh.close()
    sock.close()


@pytest.mark.parametrize("payload", [
    pytest.param(struct.pack(">i", 12) + os.urandom(12), id="random-frame"),
    pytest.param(struct.pack(">i", 10) + b"\x00\x03\x00\x0c\x00\x00\x00\x01\xff\xff", id="truncated-header"),
    pytest.param(struct.pack(">i", 3) + b"\x00\x03\x00", id="frame-shorter-than-header"),
    pytest.param(struct.pack(">i", 0), id="empty-frame"),
    pytest.param(struct.pack(">i", -5) + b"hello", id="negative-length"),
    pytest.param(struct.pack(">i", -(2**31)), id="most-negative-length"),
    pytest.param(struct.pack(">i", 2**31 - 1), id="huge-length"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: kafka\r\n\r\n", id="http"),
])
def test_garbage_closes_only_that_connection(bootstrap, bystander, payload):
    sock = connect(bootstrap)
    sock.sendall(payload)
    assert_closed_by_broker(sock)
    sock.close()


def test_truncated_body_of_known_request(bootstrap, bystander):
    _cid, data = metadata_frame()
    body_len = len(data) - 4
    # A frame that says it is shorter than the Metadata body it holds: the body does not decode.
    cut = struct.pack(">i", body_len - 3) + data[4 : 4 + body_len - 3]
    sock = connect(bootstrap)
    sock.sendall(cut)
    assert_closed_by_broker(sock)
    sock.close()


def test_length_over_socket_request_max_bytes():
    with BrokerThread(config={"socket.request.max.bytes": "1000"}) as b:
        sock = connect(b.bootstrap_servers)
        sock.sendall(struct.pack(">i", 1001))
        assert_closed_by_broker(sock)
        sock.close()
        sock = connect(b.bootstrap_servers)
        # At the limit is fine.
        _cid, data = metadata_frame()
        assert len(data) - 4 <= 1000
        assert metadata_ok(sock)
        sock.close()


def test_unknown_api_key(bootstrap, bystander):
    sock = connect(bootstrap)
    header = struct.pack(">hhih", 999, 0, 7, 4) + b"test"
    sock.sendall(struct.pack(">i", len(header) + 4) + header + b"\x00\x00\x00\x00")
    assert_closed_by_broker(sock)
    sock.close()


@pytest.mark.parametrize("key,version", [(3, 99), (0, 2), (1, 3), (19, 1)])
def test_unsupported_version_of_known_api(bootstrap, bystander, key, version):
    sock = connect(bootstrap)
    header = struct.pack(">hhih", key, version, 8, 4) + b"test"
    sock.sendall(struct.pack(">i", len(header) + 8) + header + b"\x00" * 8)
    assert_closed_by_broker(sock)
    sock.close()


@pytest.mark.parametrize("flexible_header,beyond", [(True, "codec"), (False, "codec"), (True, "served")])
def test_api_versions_at_unknown_version_gets_v0_error_body(bootstrap, bystander, flexible_header, beyond):
    # A version no codec knows, and one the codec decodes (a newer spec) that the broker does not serve.
    version = 127 if beyond == "codec" else HANDLERS[18].max_version + 1
    sock = connect(bootstrap)
    cid = 4242
    header = struct.pack(">hhih", 18, version, cid, 4) + b"test" + (b"\x00" if flexible_header else b"")
    body = b"\x07client\x041.00\x00"  # what a v3+ body would hold; ignored
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    resp_header, resp = decode_response(read_frame(sock), 18, 0)
    assert resp_header.correlation_id == cid
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [
        (18, 0, HANDLERS[18].max_version)
    ]
    # The client retries at a version we know, on the same connection.
    cid, data = frame(18, 3, client_software_name="sock", client_software_version="1.0")
    sock.sendall(data)
    resp_header, resp = decode_response(read_frame(sock), 18, 3)
    assert (resp_header.correlation_id, resp.error_code) == (cid, ErrorCode.NONE)
    assert {k.api_key for k in resp.api_keys} >= {0, 1, 3, 18, 21, 23, 35, 37, 43, 60, 75}
    sock.close()


def test_api_versions_with_an_invalid_client_software_name(bootstrap, bystander):
    sock = connect(bootstrap)
    cid, data = frame(18, 3, client_software_name="bad name!", client_software_version="1.0")
    sock.sendall(data)
    resp_header, resp = decode_response(read_frame(sock), 18, 3)
    # Kafka's ApiVersionsRequest.getErrorResponse: the error and no API list.
    assert (resp_header.correlation_id, resp.error_code, resp.api_keys) == (cid, ErrorCode.INVALID_REQUEST, [])
    assert metadata_ok(sock)  # the connection stays usable
    sock.close()


@pytest.mark.parametrize("version", [10, 11])
def test_metadata_by_topic_id_before_v12_is_an_invalid_request(bootstrap, bystander, version):
    # The v10-11 response cannot carry a null name: Kafka answers INVALID_REQUEST, the name as "".
    sock = connect(bootstrap)
    topic_id = uuid.uuid4()
    T = REQUESTS[3].MetadataRequestTopic
    cid, data = frame(3, version, topics=[T(name=None, topic_id=topic_id), T(name="named")],
                      allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    sock.sendall(data)
    header, body = decode_response(read_frame(sock), 3, version)
    assert header.correlation_id == cid
    assert [(t.error_code, t.name, t.topic_id, t.partitions) for t in body.topics] == [
        (ErrorCode.INVALID_REQUEST, "", topic_id, []), (ErrorCode.INVALID_REQUEST, "named", uuid.UUID(int=0), [])]
    assert metadata_ok(sock)
    sock.close()


def test_half_sent_frame_left_open(bootstrap, bystander):
    sock = connect(bootstrap)
    cid, data = metadata_frame()
    sock.sendall(data[:2])  # half a length prefix
    assert metadata_ok(bystander)
    sock.sendall(data[2:9])  # the prefix and part of the header
    other = connect(bootstrap)
    assert metadata_ok(other)
    other.close()
    sock.sendall(data[9:])  # the rest arrives at last: the request is served
    header, _body = decode_response(read_frame(sock), 3, 12)
    assert header.correlation_id == cid
    # And a half-sent frame abandoned by a client that goes away costs nothing.
    gone = connect(bootstrap)
    gone.sendall(data[:20])
    gone.close()
    sock.close()


def test_pipelined_requests_answered_in_order(broker, bootstrap, bystander, topic_name):
    sock = connect(bootstrap)
    # Create the topic so the Fetch in the middle has a partition to wait on.
    create_topic_on(sock, topic_name)
    F = REQUESTS[1]
    expected = []
    out = bytearray()
    for i in range(51):
        if i == 25:
            cid, data = frame(1, 11, replica_id=-1, max_wait_ms=400, min_bytes=1, max_bytes=1 << 20,
                              isolation_level=0, session_id=0, session_epoch=-1,
                              topics=[F.FetchTopic(topic=topic_name, partitions=[F.FetchTopic.FetchPartition(
                                  partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                                  partition_max_bytes=1 << 20)])],
                              forgotten_topics_data=[], rack_id="")
            expected.append((cid, 1, 11))
        else:
            cid, data = metadata_frame()
            expected.append((cid, 3, 12))
        out += data
    sock.sendall(out)  # all 51 at once
    got = []
    for _cid, key, version in expected:
        header, body = decode_response(read_frame(sock), key, version)
        got.append(header.correlation_id)
        if key == 1:
            part = body.responses[0].partitions[0]
            assert (part.error_code, part.high_watermark) == (ErrorCode.NONE, 0)
    assert got == [cid for cid, _k, _v in expected]
    sock.close()


@pytest.mark.parametrize("trailing", [b"", b"\x00" * 40], ids=["alone", "with-trailing-bytes"])
def test_produce_of_a_batch_shorter_than_a_batch_header(bootstrap, bystander, topic_name, trailing):
    # batchLength 30 passes the request-level check (>= 14, magic 2), but no magic-2 batch is
    # shorter than its 61-byte header: CORRUPT_MESSAGE, as Kafka's DefaultRecordBatch.ensureValid.
    sock = connect(bootstrap)
    auto_create_on(sock, topic_name)
    short = struct.pack(">qiib", 0, 30, -1, 2) + bytes(30 - 5)
    P = REQUESTS[0]
    cid, data = frame(0, 9, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[P.TopicProduceData(
        name=topic_name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=short + trailing)])])
    sock.sendall(data)
    header, body = decode_response(read_frame(sock), 0, 9)
    assert header.correlation_id == cid
    assert body.responses[0].partition_responses[0].error_code == ErrorCode.CORRUPT_MESSAGE
    assert metadata_ok(sock)
    sock.close()


def test_acks_zero_produce_sends_no_response(bootstrap, bystander, topic_name):
    sock = connect(bootstrap)
    P = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"fire and forget", timestamp=int(time.time() * 1000))])
    _cid, data = frame(0, 9, transactional_id=None, acks=0, timeout_ms=1000, topic_data=[P.TopicProduceData(
        name=topic_name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
    # Auto-creation by Metadata first, so the produce has a partition to land in.
    auto_create_on(sock, topic_name)
    sock.sendall(data)
    cid, md = metadata_frame()
    sock.sendall(md)
    # The next response on the wire is the Metadata one: the produce had none.
    header, _ = decode_response(read_frame(sock), 3, 12)
    assert header.correlation_id == cid
    L = REQUESTS[2]
    cid, lo = frame(2, 7, replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name=topic_name, partitions=[
        L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
    sock.sendall(lo)
    _h, body = decode_response(read_frame(sock), 2, 7)
    assert body.topics[0].partitions[0].offset == 1  # the record was appended
    sock.close()


def test_client_closing_mid_long_poll_releases_the_connection(broker, bootstrap, bystander, topic_name):
    sock = connect(bootstrap)
    auto_create_on(sock, topic_name)
    local = sock.getsockname()
    F = REQUESTS[1]
    _cid, data = frame(1, 11, replica_id=-1, max_wait_ms=1000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                       session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[
                           F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                                       log_start_offset=-1, partition_max_bytes=1 << 20)])],
                       forgotten_topics_data=[], rack_id="")
    sock.sendall(data)
    peer = f"{local[0]}:{local[1]}"

    def open_from_peer() -> bool:
        return broker.call(lambda: any(c.peer == peer for c in broker.broker.connections))

    wait_until(lambda: broker.call(lambda: bool(broker.broker.partition(topic_name, 0)._waiters)),
               timeout=20, message="the fetch to park")
    sock.close()
    # The broker lets the parked fetch run out, then lets the connection go (not at the idle timeout).
    wait_until(lambda: not open_from_peer(), timeout=30, message="the closed client's connection to go")


def test_idle_connections_are_closed():
    with BrokerThread(config={"connections.max.idle.ms": "300"}) as b:
        idle = connect(b.bootstrap_servers)
        assert metadata_ok(idle)
        idle.settimeout(30)
        assert_closed_by_broker(idle)  # nothing sent: the broker closes it
        idle.close()
        wait_until(lambda: b.call(lambda: len(b.broker.connections)) == 0, timeout=20,
                   message="the idle connection to be unregistered")
        again = connect(b.bootstrap_servers)
        assert metadata_ok(again)
        again.close()


def test_a_thousand_pipelined_requests_without_reading(bootstrap, bystander):
    """More requests in flight than the broker takes at once: it stops reading, then resumes."""
    sock = connect(bootstrap)
    expected = []
    out = bytearray()
    for _ in range(1000):
        cid, data = metadata_frame()
        expected.append(cid)
        out += data
    sock.sendall(out)
    assert metadata_ok(bystander)  # while this client has not read a byte
    got = [decode_response(read_frame(sock), 3, 12)[0].correlation_id for _ in expected]
    assert got == expected
    sock.close()


def test_slow_reader_of_large_fetches(broker, bootstrap, bystander, topic_name):
    """Responses far larger than the socket buffers, to a client that reads late: the others are
    served meanwhile, and every byte arrives intact and in order."""
    sock = connect(bootstrap)
    create_topic_on(sock, topic_name)
    P = REQUESTS[0]
    values = [os.urandom(512) + b"%06d" % i for i in range(4000)]
    for start in range(0, len(values), 500):
        batch = build_batch([Record(key=None, value=v, timestamp=int(time.time() * 1000))
                             for v in values[start:start + 500]])
        _cid, data = frame(0, 9, transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[P.TopicProduceData(
            name=topic_name, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
        sock.sendall(data)
        read_frame(sock)
    F = REQUESTS[1]
    expected = []
    out = bytearray()
    for _ in range(12):
        cid, data = frame(1, 11, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=64 << 20, isolation_level=0,
                          session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[
                              F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                                          log_start_offset=-1, partition_max_bytes=64 << 20)])],
                          forgotten_topics_data=[], rack_id="")
        expected.append(cid)
        out += data
    sock.sendall(out)
    # ~2 MB per response, 12 of them, nobody reading: the broker must not stall other clients.
    for _ in range(3):
        assert metadata_ok(bystander)
    for cid in expected:
        header, body = decode_response(read_frame(sock), 1, 11)
        assert header.correlation_id == cid
        records = bytes(body.responses[0].partitions[0].records)
        got = [bytes(r.value) for pos, _h in iter_batch_headers(records) for r in iter_records(records, pos)]
        assert got == values
    sock.close()
