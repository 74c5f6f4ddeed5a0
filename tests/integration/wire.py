"""A blocking Kafka connection speaking the generated codec, for tests at the wire (and reading whole
frames off a raw socket)."""

from __future__ import annotations

import itertools
import socket
import struct
from typing import Any

from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch
from tests.integration.waiting import wait_until

E = ErrorCode


def read_exact(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock``; ConnectionError if the broker closes it first."""
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed by broker")
        out += chunk
    return bytes(out)


def read_frame(sock: socket.socket) -> bytes:
    """One size-prefixed frame's bytes (the size left out)."""
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    return read_exact(sock, size)


class Wire:
    """A blocking Kafka connection speaking the generated codec.

    ``call(api_key, version, **fields)`` builds the request from its fields;
    ``call(request, version)`` sends a request object. ``send``/``receive`` pipeline requests:
    responses are matched to the requests in order, by correlation id.
    """

    _ids = itertools.count(1)

    def __init__(self, bootstrap: str, timeout: float = 30, client_id: str = "wire-test") -> None:
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.client_id = client_id
        self.sent: list[tuple[int, int, int]] = []

    def send(self, request, version: int) -> int:
        cid = next(self._ids)
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version, correlation_id=cid,
                               client_id=self.client_id)
        payload = encode_request(header, request)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        self.sent.append((cid, request.API_KEY, version))
        return cid

    def receive(self):
        cid, key, version = self.sent.pop(0)
        (size,) = struct.unpack(">i", self._read_exact(4))
        header, body = decode_response(self._read_exact(size), key, version)
        assert header.correlation_id == cid
        return body

    def call(self, key_or_request, version: int, **fields):
        request = REQUESTS[key_or_request](**fields) if isinstance(key_or_request, int) else key_or_request
        self.send(request, version)
        return self.receive()

    def _read_exact(self, n: int) -> bytes:
        return read_exact(self.sock, n)

    def close(self) -> None:
        self.sock.close()


def create_topic(wire: Wire, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    Req = REQUESTS[19]
    topic = Req.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[],
                               configs=[Req.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                        for k, v in (configs or {}).items()])
    resp = wire.call(19, 7, topics=[topic], timeout_ms=10000, validate_only=False)
    assert resp.topics[0].error_code == E.NONE, resp.topics[0].error_message


def produce(wire: Wire, name: str, partition: int, count: int, leader_epoch: int = 0, pad: bytes = b"") -> int:
    """One batch of ``count`` records (each value followed by ``pad``: big batches fill segments)."""
    Req = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"v%d" % i + pad, timestamp=1_700_000_000_000 + i)
                         for i in range(count)])
    data = Req.TopicProduceData(name=name, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=partition, records=batch)])
    resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == E.NONE
    return part.base_offset


def find_coordinator(wire: Wire, key_type: int, keys: list[str], version: int = 4, timeout: float = 30.0) -> Any:
    """FindCoordinator for ``keys`` (below v4 the first only), asked again while the first key answers
    COORDINATOR_NOT_AVAILABLE, as a client retries: Kafka answers so at once while the coordinator's
    internal topic is being created. Returns the first other response."""
    FC = REQUESTS[10]
    request = FC(key_type=key_type, coordinator_keys=keys) if version >= 4 else FC(key=keys[0], key_type=key_type)

    def attempt() -> Any:
        response = wire.call(request, version)
        code = response.coordinators[0].error_code if version >= 4 else response.error_code
        return None if code == E.COORDINATOR_NOT_AVAILABLE else response

    return wait_until(attempt, timeout, message=f"FindCoordinator for {keys[0]!r} answered")


def plain_login(bootstrap: str, user: str, password: str | None = None) -> Wire:
    """A connection authenticated with SASL/PLAIN (SaslHandshake v1, SaslAuthenticate v2) as ``user``,
    whose password is ``<user>-secret`` unless given."""
    wire = Wire(bootstrap)
    wire.call(17, 1, mechanism="PLAIN")
    secret = f"{user}-secret" if password is None else password
    assert wire.call(36, 2, auth_bytes=f"\0{user}\0{secret}".encode()).error_code == E.NONE
    return wire
