"""Connection and request-buffer bounds against hostile clients (issue 13, hole 6).

Kafka's ``max.connections.per.ip`` (+ overrides), ``max.connections``, ``queued.max.request.bytes``,
``queued.max.requests`` and ``connections.max.idle.ms``, and kbroker's
``kbroker.request.receive.timeout.ms`` for a request trickled in byte by byte.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from waiting import wait_until
from wire import Wire, create_topic, read_frame

from kbroker.config import (
    BrokerConfig,
    ConfigError,
    parse_ip_overrides,  # noqa: E402
)
from kbroker.testing import BrokerThread
from kbroker_protocol.api import encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch

P = REQUESTS[0]


def _address(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def _metadata_ok(wire: Wire) -> bool:
    return bool(wire.call(3, 12, topics=[], allow_auto_topic_creation=False).brokers)


def _closed_by_broker(sock: socket.socket, timeout: float = 20.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _limits(broker: BrokerThread, *names: str):
    return broker.call(lambda: tuple(getattr(broker.broker.limits, n) for n in names))


def _wait_released(broker: BrokerThread, connections: int = 0) -> None:
    """Everything counted for closed connections is given back."""
    wait_until(lambda: _limits(broker, "total", "bytes_held", "requests") == (connections, 0, 0),
               message="connection, byte and request counts back to their resting values",
               details=lambda: _limits(broker, "total", "bytes_held", "requests", "per_ip"))


def _frame(request, version: int, correlation_id: int = 1) -> bytes:
    header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version,
                           correlation_id=correlation_id, client_id="hostile")
    payload = encode_request(header, request)
    return struct.pack(">i", len(payload)) + payload


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("props, key", [
    ({"max.connections.per.ip": "0"}, "max.connections.per.ip"),
    ({"max.connections.per.ip.overrides": "127.0.0.1:x"}, "max.connections.per.ip.overrides"),
    ({"max.connections.per.ip.overrides": "bad_host!:3"}, "max.connections.per.ip.overrides"),
    ({"max.connections.per.ip.overrides": "3"}, "max.connections.per.ip.overrides"),
    ({"max.connections": "-1"}, "max.connections"),
    ({"queued.max.request.bytes": "1000"}, "queued.max.request.bytes"),
    ({"queued.max.requests": "0"}, "queued.max.requests"),
])
def test_invalid_limits_are_refused_naming_the_key(props, key):
    with pytest.raises(ConfigError) as info:
        BrokerConfig(props, warn=False)
    assert info.value.key == key


def test_limit_settings_that_kafka_accepts():
    config = BrokerConfig({"max.connections.per.ip": "0", "max.connections.per.ip.overrides":
                           "127.0.0.1:5, ::1:7,localhost:2", "queued.max.request.bytes": "-1"}, warn=False)
    assert config["max.connections.per.ip.overrides"] == "127.0.0.1:5, ::1:7,localhost:2"
    # The last ':' splits host and count, so IPv6 addresses work (Kafka's Csv.parseCsvMap).
    assert parse_ip_overrides("127.0.0.1:5, ::1:7,localhost:2") == {"127.0.0.1": 5, "::1": 7, "localhost": 2}
    # Not set: the bound grows with socket.request.max.bytes rather than refusing to start.
    BrokerConfig({"socket.request.max.bytes": "500000000"}, warn=False)


# -- connection counts -------------------------------------------------------------------------


def test_connection_over_max_connections_per_ip_is_closed():
    with BrokerThread(config={"max.connections.per.ip": "2"}) as b:
        first, second = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers)
        assert _metadata_ok(first) and _metadata_ok(second)
        extra = socket.create_connection(_address(b.bootstrap_servers))
        assert _closed_by_broker(extra)
        extra.close()
        assert _metadata_ok(first) and _metadata_ok(second)  # the others are untouched
        first.close()
        wait_until(lambda: _limits(b, "total") == (1,), message="the closed connection to be released")
        third = Wire(b.bootstrap_servers)  # room for one again
        assert _metadata_ok(third)
        second.close()
        third.close()
        _wait_released(b)
        assert _limits(b, "per_ip") == ({},)


def test_max_connections_per_ip_overrides():
    with BrokerThread(config={"max.connections.per.ip": "0",
                              "max.connections.per.ip.overrides": "127.0.0.1:1,192.0.2.1:5"}) as b:
        allowed = Wire(b.bootstrap_servers)
        assert _metadata_ok(allowed)
        extra = socket.create_connection(_address(b.bootstrap_servers))
        assert _closed_by_broker(extra)
        extra.close()
        allowed.close()
        _wait_released(b)


def test_max_connections_holds_new_connections_until_one_closes():
    with BrokerThread(config={"max.connections": "2"}) as b:
        first, second = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers)
        assert _metadata_ok(first) and _metadata_ok(second)
        waiting = Wire(b.bootstrap_servers)  # connected in the listen backlog, not accepted
        waiting.send(REQUESTS[3](topics=[], allow_auto_topic_creation=False), 12)
        waiting.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.sock.recv(1)
        assert _limits(b, "total") == (2,)
        first.close()
        waiting.sock.settimeout(20)
        assert waiting.receive().brokers  # accepted and answered once a slot is free
        assert _metadata_ok(second)
        second.close()
        waiting.close()
        _wait_released(b)


# -- idle and trickling connections ------------------------------------------------------------


def test_trickled_request_is_closed_after_the_receive_timeout():
    """One byte every 20 ms keeps Kafka's idle timer (connections.max.idle.ms) from firing; the
    request must still arrive in full within kbroker.request.receive.timeout.ms."""
    with BrokerThread(config={"kbroker.request.receive.timeout.ms": "300",
                              "connections.max.idle.ms": "600000"}) as b:
        trickler = socket.create_connection(_address(b.bootstrap_servers))
        trickler.sendall(struct.pack(">i", 50_000_000))
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline:
            try:
                trickler.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.02)  # the trickle's pace, not synchronisation
        assert closed, "the broker kept a trickling connection open"
        trickler.close()
        _wait_released(b)
        bystander = Wire(b.bootstrap_servers)
        assert _metadata_ok(bystander)
        bystander.close()


def test_idle_connection_with_a_partial_request_is_closed():
    with BrokerThread(config={"connections.max.idle.ms": "300",
                              "kbroker.request.receive.timeout.ms": "0"}) as b:
        stuck = socket.create_connection(_address(b.bootstrap_servers))
        stuck.sendall(struct.pack(">i", 1000) + b"abc")
        assert _closed_by_broker(stuck)
        stuck.close()
        _wait_released(b)


# -- the request-byte budget -------------------------------------------------------------------


def _produce_frame(topic: str, value_size: int, correlation_id: int) -> bytes:
    batch = build_batch([Record(value=b"v" * value_size, timestamp=1_700_000_000_000)])
    request = P(transactional_id=None, acks=1, timeout_ms=10000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
    return _frame(request, 9, correlation_id)


def test_request_byte_budget_holds_large_requests_and_serves_others():
    """Six clients each start a ~900 KB produce request against a 1 MiB budget: the first two
    take their room, the other four are not read further; small requests from another client
    are still answered; when the first requests are answered the others go through; and every
    byte counted is given back when the clients leave."""
    budget = 1 << 20
    with BrokerThread(config={"socket.request.max.bytes": str(budget),
                              "queued.max.request.bytes": str(budget)}) as b:
        admin = Wire(b.bootstrap_servers)
        create_topic(admin, "budget", 1)
        frames = [_produce_frame("budget", 900_000, i + 1) for i in range(6)]
        first_part = 400_000
        clients = []
        for frame in frames:
            sock = socket.create_connection(_address(b.bootstrap_servers))
            sock.sendall(frame[:first_part])
            clients.append(sock)

        def state():
            def read():
                limits = b.broker.limits
                conns = [c for c in b.broker.connections if c.decoder.expected]
                return (limits.bytes_held, len(limits._waiting),
                        sum(c.decoder.buffered for c in conns), len(conns))
            return b.call(read)

        # Two frames got their size reserved (the budget is not used up before the second);
        # the other four wait, having read no more than their first chunk.
        wait_until(lambda: state()[:2] == (2 * len(frames[0]), 4), message="four clients waiting for room",
                   details=state)
        held, _waiting, buffered, partial = state()
        assert partial == 6
        assert buffered < 6 * first_part
        assert _metadata_ok(admin)  # small requests keep being served

        for sock, frame in zip(clients, frames, strict=True):
            sock.sendall(frame[first_part:])
        for sock in clients:
            sock.settimeout(30)
            assert read_frame(sock)  # every produce is answered in turn
        offsets = admin.call(2, 7, replica_id=-1, isolation_level=0, topics=[REQUESTS[2].ListOffsetsTopic(
            name="budget", partitions=[REQUESTS[2].ListOffsetsTopic.ListOffsetsPartition(
                partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
        assert offsets.topics[0].partitions[0].offset == 6
        for sock in clients:
            sock.close()
        admin.close()
        _wait_released(b)


def test_held_bytes_are_released_when_clients_leave_mid_request():
    with BrokerThread(config={"queued.max.request.bytes": "-1"}) as b:
        clients = []
        for _ in range(5):
            sock = socket.create_connection(_address(b.bootstrap_servers))
            sock.sendall(struct.pack(">i", 50_000_000) + b"\0" * 300_000)
            clients.append(sock)
        wait_until(lambda: _limits(b, "bytes_held") == (5 * 50_000_004,),
                   message="five partial requests counted", details=lambda: _limits(b, "bytes_held"))
        for sock in clients:
            sock.close()
        _wait_released(b)


# -- queued.max.requests -----------------------------------------------------------------------


def test_queued_max_requests_stops_pipelining_but_not_new_clients():
    with BrokerThread(config={"queued.max.requests": "1"}) as b:
        admin = Wire(b.bootstrap_servers)
        create_topic(admin, "queued", 1)
        F = REQUESTS[1]
        parked = Wire(b.bootstrap_servers)
        topic = F.FetchTopic(topic="queued", partitions=[F.FetchTopic.FetchPartition(
            partition=0, fetch_offset=0, partition_max_bytes=1_000_000)])
        parked.send(F(replica_id=-1, max_wait_ms=30_000, min_bytes=1, max_bytes=1_000_000, isolation_level=0,
                      session_id=0, session_epoch=-1, topics=[topic], forgotten_topics_data=[], rack_id=""), 12)
        wait_until(lambda: _limits(b, "requests") == (1,), message="the long poll parked")
        parked.send(REQUESTS[3](topics=[], allow_auto_topic_creation=False), 12)
        wait_until(lambda: b.call(lambda: sum(c._read_paused for c in b.broker.connections)) == 1,
                   message="the pipelining connection no longer read")
        assert _limits(b, "requests") == (1,)  # its Metadata request waits in the socket
        assert _metadata_ok(admin)  # a connection with nothing in flight is still served
        produce = P(transactional_id=None, acks=1, timeout_ms=10000, topic_data=[P.TopicProduceData(
            name="queued", partition_data=[P.TopicProduceData.PartitionProduceData(
                index=0, records=build_batch([Record(value=b"wake", timestamp=1_700_000_000_000)]))])])
        assert admin.call(produce, 9).responses[0].partition_responses[0].error_code == ErrorCode.NONE
        fetched = parked.receive()
        assert fetched.responses[0].partitions[0].high_watermark == 1
        assert parked.receive().brokers  # then its pipelined request is read and answered
        parked.close()
        admin.close()
        _wait_released(b)
