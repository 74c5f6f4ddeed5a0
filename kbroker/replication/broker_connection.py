"""A connection from this broker to another, one request at a time: what the replica fetchers,
the transaction coordinator's markers, produce-side transaction verification, the share persister
and delayed delivery use to send a request to another broker of the cluster (over the
inter-broker listener's security when it has any: ``kbroker.security.client``)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from kbroker.config.connection_backoff import EXP_BASE, JITTER, ExponentialBackoff
from kbroker.config.socket_options import USE_DEFAULT_BUFFER_SIZE, connect_socket
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import RequestHeader

_LENGTH = struct.Struct(">i")


class FetcherConnectionError(Exception):
    pass


def setup_timeout_s(config: Any) -> float:
    """How long, in s, one attempt to connect to another broker may take (TCP, TLS, SASL) before it
    is abandoned: socket.connection.setup.timeout.ms with Kafka's 20% jitter, the first attempt's
    value of ClusterConnectionStates (a BrokerConnection's attempt starts afresh: it does not grow
    over failures, as the replica fetcher's does not, its client's state dropped with the
    connection)."""
    backoff = ExponentialBackoff(config["socket.connection.setup.timeout.ms"], EXP_BASE,
                                 config["socket.connection.setup.timeout.max.ms"], JITTER)
    return backoff.backoff(0) / 1000


class BrokerConnection:
    """One connection to another broker, one request at a time. Its socket gets ``receive_buffer``
    as SO_RCVBUF before it connects, unless -1 (Kafka's clients: the replica fetcher's is
    replica.socket.receive.buffer.bytes, the other broker-to-broker clients'
    socket.receive.buffer.bytes; the send buffer is the OS's)."""

    def __init__(self, host: str, port: int, client_id: str, max_frame: int, security: Any = None,
                 node: int | None = None, receive_buffer: int = USE_DEFAULT_BUFFER_SIZE) -> None:
        self.security = security  # kbroker.security.client.ClientSecurity of the inter-broker listener
        self.node = node
        self.host = host
        self.port = port
        self.client_id = client_id
        self.max_frame = max_frame
        self.receive_buffer = receive_buffer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0

    async def open(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            sock = await connect_socket(self.host, self.port, receive_buffer=self.receive_buffer)
            try:
                if self.security is None or self.security.protocol == "PLAINTEXT":
                    self._reader, self._writer = await asyncio.open_connection(sock=sock)
                else:
                    self._reader, self._writer = await self.security.open_connection(
                        self.host, self.port, client_id=self.client_id, node=self.node, max_frame=self.max_frame,
                        sock=sock)
            except BaseException:
                sock.close()
                raise

    async def request(self, body: Any, version: int, timeout: float) -> Any:
        assert self._reader is not None and self._writer is not None
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        cid = self._correlation
        header = RequestHeader(request_api_key=body.API_KEY, request_api_version=version, correlation_id=cid,
                               client_id=self.client_id)
        payload = encode_request(header, body)
        async with asyncio.timeout(timeout):
            if self.security is not None and self.security.sasl:
                # KIP-368: a SASL session about to expire re-authenticates first (no request is in flight)
                await self.security.reauthenticate_if_due(self._reader, self._writer)
            if self._writer.transport.is_closing():
                # the connection broke (a reset closes the transport at once): a disconnect, which the
                # caller handles by connecting again (uvloop raises RuntimeError on a write to it)
                raise ConnectionResetError(f"the connection to {self.host}:{self.port} is closed")
            self._writer.write(_LENGTH.pack(len(payload)) + payload)
            await self._writer.drain()
            (size,) = _LENGTH.unpack(await self._reader.readexactly(4))
            if size < 4 or size > self.max_frame:
                raise FetcherConnectionError(f"response of {size} bytes from {self.host}:{self.port}")
            frame = await self._reader.readexactly(size)
        resp_header, response = decode_response(frame, body.API_KEY, version)
        if resp_header.correlation_id != cid:
            raise FetcherConnectionError(f"correlation id {resp_header.correlation_id}, expected {cid}")
        return response

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None
