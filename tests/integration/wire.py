"""A blocking Kafka connection speaking the generated codec, for tests at the wire."""

from __future__ import annotations

import itertools
import socket
import struct

from protocol.api import decode_response, encode_request
from protocol.errors import ErrorCode
from protocol.messages import REQUESTS, RequestHeader
from protocol.records import Record, build_batch

E = ErrorCode


class Wire:
    """A blocking Kafka connection speaking the generated codec."""

    _ids = itertools.count(1)

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=20)

    def call(self, key: int, version: int, **fields):
        body = REQUESTS[key](**fields)
        cid = next(self._ids)
        header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid,
                               client_id="wire-test")
        payload = encode_request(header, body)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        frame = self._read_frame()
        resp_header, resp = decode_response(frame, key, version)
        assert resp_header.correlation_id == cid
        return resp

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by broker")
            out += chunk
        return bytes(out)

    def _read_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._read_exact(4))
        return self._read_exact(size)

    def close(self) -> None:
        self.sock.close()


def create_topic(wire: Wire, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    Req = REQUESTS[19]
    topic = Req.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[],
                               configs=[Req.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                        for k, v in (configs or {}).items()])
    resp = wire.call(19, 7, topics=[topic], timeout_ms=10000, validate_only=False)
    assert resp.topics[0].error_code == E.NONE, resp.topics[0].error_message


def produce(wire: Wire, name: str, partition: int, count: int, leader_epoch: int = 0) -> int:
    Req = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"v%d" % i, timestamp=1_700_000_000_000 + i) for i in range(count)])
    data = Req.TopicProduceData(name=name, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=partition, records=batch)])
    resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == E.NONE
    return part.base_offset


