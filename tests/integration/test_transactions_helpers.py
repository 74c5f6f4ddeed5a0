"""Shared helpers of the transaction and idempotence tests (no tests here).

``ensure_find_coordinator`` gives the broker a FindCoordinator answering "this broker" for every
key when no FindCoordinator handler is installed (the group coordinator owns that API); with one
node that is the right answer for transactional ids.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

from kbroker.api import load_handlers
from kbroker.api.registry import HANDLERS, ApiHandler
from protocol.errors import ErrorCode
from protocol.messages.find_coordinator import FindCoordinatorResponse
from protocol.messages.request_header import RequestHeader
from protocol.messages.response_header import ResponseHeader


def _find_coordinator(ctx, request):
    host, port = ctx.broker.listener_endpoint(ctx.connection.endpoint.listener)
    node = ctx.broker.node_id
    if ctx.api_version < 4:
        return FindCoordinatorResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None,
                                       node_id=node, host=host, port=port)
    return FindCoordinatorResponse(throttle_time_ms=0, coordinators=[
        FindCoordinatorResponse.Coordinator(key=k, node_id=node, host=host, port=port, error_code=ErrorCode.NONE,
                                            error_message=None)
        for k in request.coordinator_keys
    ])


def ensure_find_coordinator() -> None:
    load_handlers()
    if 10 not in HANDLERS:
        HANDLERS[10] = ApiHandler(10, 0, 6, _find_coordinator, __name__)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class RawClient:
    """One blocking connection speaking the generated codec, for protocol-level tests."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def send(self, request, version: int) -> int:
        self.correlation += 1
        api_key = request.API_KEY
        flexible = request.FLEXIBLE_MIN_VERSION is not None and version >= request.FLEXIBLE_MIN_VERSION
        header = RequestHeader(request_api_key=api_key, request_api_version=version,
                               correlation_id=self.correlation, client_id="kbroker-tests")
        body = header.encode(2 if flexible else 1) + request.encode(version)
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        return self.correlation

    def receive(self, response_cls, version: int):
        size = struct.unpack(">i", self._read(4))[0]
        data = self._read(size)
        flexible = response_cls.FLEXIBLE_MIN_VERSION is not None and version >= response_cls.FLEXIBLE_MIN_VERSION
        header_version = 1 if flexible and response_cls.API_KEY != 18 else 0
        from protocol.primitives import Reader

        reader = Reader(data)
        ResponseHeader.read(reader, header_version)
        return response_cls.decode(memoryview(data)[reader.pos:], version)

    def call(self, request, response_cls, version: int):
        self.send(request, version)
        return self.receive(response_cls, version)

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.sock.close()
