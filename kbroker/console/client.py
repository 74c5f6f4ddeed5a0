"""The console's Kafka client: real Kafka requests over the broker's own listener.

A small asyncio client on the generated codec (:mod:`kbroker_protocol.api`). It bootstraps from one
``host:port``, learns the cluster from Metadata, and sends partition requests (Produce, Fetch,
ListOffsets) to each partition's leader and group requests to the group's coordinator
(FindCoordinator), as any Kafka client does; so the console shows a cluster through any one of
its brokers. One connection per broker, one request in flight on it at a time (a lock): the
console's load is a person clicking.

With ``credentials`` (a logged-in console user, :mod:`kbroker.console.sessions`) every
connection authenticates with SASL first (PLAIN or SCRAM, :func:`kbroker.security.sasl_client.authenticate`,
the client side the brokers use between themselves), so the broker authorizes each request as that
user's principal, exactly as for any other client. With ``tls`` (a SASL_SSL listener) every
connection makes a TLS handshake first, trusting what the broker's own ``ssl.truststore.*`` settings
of that listener trust, as the broker's inter-node client does (:mod:`kbroker.security.client`).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import struct
from dataclasses import dataclass
from typing import Any

from kbroker.security.sasl_client import AuthenticationError, authenticate
from kbroker_protocol import messages
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader

CLIENT_ID = "kbroker-console"
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
COORDINATOR_WAIT = 10.0
RETRY_COORDINATOR = (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)


class KafkaError(Exception):
    """A Kafka error code in a response (``code`` is its name, e.g. ``TOPIC_ALREADY_EXISTS``)."""

    def __init__(self, code: int, message: str | None = None, what: str = "") -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"ERROR_{code}"
        self.code = name
        self.error_code = code
        text = f"{what}: {name}" if what else name
        if message:
            text += f" ({message})"
        super().__init__(text)


def check(code: int, message: str | None = None, what: str = "") -> None:
    if code != ErrorCode.NONE:
        raise KafkaError(code, message, what)


def leaderless(topic: str, partition: int, what: str) -> KafkaError:
    """The error for a partition Metadata gives no leader (-1: its replicas are offline): there is
    no broker to ask, as Kafka's Metadata says with LEADER_NOT_AVAILABLE."""
    return KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"partition {topic}-{partition} has no leader", what)


class BrokerUnreachable(Exception):
    pass


class AuthenticationFailed(Exception):
    """The broker refused the SASL credentials (its message: wrong password, unknown user...)."""


Credentials = tuple[str, str, str]  # SASL mechanism, username, password


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS towards the brokers: the client context, whether the server's certificate must name the
    host (``ssl.endpoint.identification.algorithm=https``) and the name checked for the bootstrap
    address (the listener's advertised host: the console reaches its own broker at the bound one)."""

    context: ssl.SSLContext
    check_hostname: bool
    bootstrap_hostname: str | None = None


class _Connection:
    _ids = itertools.count(1)

    def __init__(self, host: str, port: int, credentials: Credentials | None = None, tls: Tls | None = None,
                 server_hostname: str | None = None) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self.tls = tls
        self.server_hostname = server_hostname or host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()

    async def call(self, request: Any, version: int, timeout: float) -> Any:
        async with self.lock:
            try:
                # A connection the broker closed meanwhile (idle for connections.max.idle.ms) has
                # seen its EOF by now: open a new one rather than fail this request.
                if self.writer is None or self.writer.is_closing() or (self.reader is not None
                                                                        and self.reader.at_eof()):
                    reader, writer = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT)
                    self.reader, self.writer = reader, writer
                    if self.credentials is not None:
                        mechanism, username, password = self.credentials
                        await asyncio.wait_for(authenticate(reader, writer, mechanism, username, password,
                                                            client_id=CLIENT_ID), timeout)
                assert self.reader is not None and self.writer is not None
                cid = next(self._ids) & 0x7FFFFFFF
                header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version,
                                       correlation_id=cid, client_id=CLIENT_ID)
                payload = encode_request(header, request)
                if self.writer.is_closing():  # reset since it was opened (uvloop raises RuntimeError on a write)
                    raise ConnectionResetError("the connection is closed")
                self.writer.write(struct.pack(">i", len(payload)) + payload)
                await self.writer.drain()
                size_bytes = await asyncio.wait_for(self.reader.readexactly(4), timeout)
                (size,) = struct.unpack(">i", size_bytes)
                frame = await asyncio.wait_for(self.reader.readexactly(size), timeout)
            except AuthenticationError as exc:
                self.close()
                raise AuthenticationFailed(str(exc)) from None
            except ssl.SSLError as exc:  # a certificate the broker's trust store does not trust...
                self.close()
                raise BrokerUnreachable(f"broker {self.host}:{self.port}: SSL handshake failed: {exc}") from None
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self.close()
                raise BrokerUnreachable(f"broker {self.host}:{self.port}: {exc or type(exc).__name__}") from None
            resp_header, body = decode_response(frame, request.API_KEY, version)
            if resp_header.correlation_id != cid:
                self.close()
                raise BrokerUnreachable(f"broker {self.host}:{self.port}: correlation id mismatch")
            return body

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.tls is None:
            return await asyncio.open_connection(self.host, self.port)
        return await asyncio.open_connection(self.host, self.port, ssl=self.tls.context,
                                             server_hostname=self.server_hostname if self.tls.check_hostname else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class KafkaClient:
    """Requests to a cluster, routed to the broker that must answer them."""

    def __init__(self, host: str, port: int, local_node: int | None = None,
                 credentials: Credentials | None = None, tls: Tls | None = None) -> None:
        self.bootstrap = (host, port)
        self.credentials = credentials
        self.tls = tls
        # The broker the console runs in: always reached at the bootstrap address, whatever it
        # advertises (a name that resolves only elsewhere, in a container set-up).
        self.local_node = local_node
        self._conns: dict[tuple[str, int, str], _Connection] = {}
        self.brokers: dict[int, tuple[str, int]] = {}

    def _conn(self, address: tuple[str, int], lane: str) -> _Connection:
        conn = self._conns.get((*address, lane))
        if conn is None:
            name = self.tls.bootstrap_hostname if self.tls is not None and address == self.bootstrap else None
            conn = self._conns[(*address, lane)] = _Connection(*address, self.credentials, self.tls, name)
        return conn

    async def send(self, api_key: int, version: int, node: int | None = None,
                   timeout: float = REQUEST_TIMEOUT, lane: str = "main", **fields: Any) -> Any:
        """``fields`` as a request of ``api_key`` to broker ``node`` (the bootstrap when None).

        ``lane`` picks the connection: long polls (the live tail) go on their own, so they do
        not hold up the other pages' requests."""
        request = REQUESTS[api_key](**fields)
        address = self.bootstrap if node is None else self.brokers.get(node)
        if address is None:
            await self.metadata([])
            address = self.brokers.get(node)  # type: ignore[arg-type]  # (node is set: the bootstrap is never None)
            if address is None:
                raise BrokerUnreachable(f"broker {node} is not in the cluster metadata")
        return await self._conn(address, lane).call(request, version, timeout)

    async def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # -- metadata and routing -----------------------------------------------------------------

    async def metadata(self, topics: list[str] | None = None) -> Any:
        """Metadata v12 (None: every topic); remembers the brokers' addresses."""
        Req = messages.MetadataRequest
        wanted = None if topics is None else [Req.MetadataRequestTopic(name=t) for t in topics]
        resp = await self.send(3, 12, topics=wanted, allow_auto_topic_creation=False,
                               include_cluster_authorized_operations=False,
                               include_topic_authorized_operations=False)
        self.brokers = {b.node_id: (b.host, b.port) for b in resp.brokers}
        if self.local_node is not None:
            self.brokers[self.local_node] = self.bootstrap
        return resp

    async def leaders(self, topic: str) -> dict[int, int]:
        """partition -> leader id of ``topic`` (KafkaError if the topic is unknown)."""
        resp = await self.metadata([topic])
        t = resp.topics[0]
        check(t.error_code, None, f"topic {topic}")
        return {p.partition_index: p.leader_id for p in t.partitions}

    async def coordinator(self, key: str, key_type: int = 0) -> int:
        """The node id coordinating a group (key_type 0) or transactional id (1)."""
        if not self.brokers:
            await self.metadata([])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COORDINATOR_WAIT
        while True:
            resp = await self.send(10, 4, key_type=key_type, coordinator_keys=[key])
            c = resp.coordinators[0]
            # Retriable while the coordinator's topic is created or loaded: retry, as clients do.
            if c.error_code not in RETRY_COORDINATOR or loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)
        check(c.error_code, c.error_message, f"coordinator of {key}")
        node_id: int = c.node_id
        self.brokers.setdefault(node_id, self.bootstrap if node_id == self.local_node else (c.host, c.port))
        return node_id

    async def each_broker(self, api_key: int, version: int, **fields: Any) -> list[tuple[int, Any]]:
        """The same request to every broker (ListGroups, ListTransactions): (node, response)."""
        await self.metadata([])
        out = []
        for node in sorted(self.brokers):
            out.append((node, await self.send(api_key, version, node=node, **fields)))
        return out
