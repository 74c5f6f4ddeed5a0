"""The client side of a broker's own connections: the follower's fetches (inter-broker listener),
the broker-to-controller channel and the raft voters' connections (controller listener), as
Kafka's ``ChannelBuilders.clientChannelBuilder`` sets them up.

- The listener and its security protocol: ``inter.broker.listener.name`` (or, instead,
  ``security.inter.broker.protocol``: the listener named as the protocol) and the first of
  ``controller.listener.names``; the protocol from ``listener.security.protocol.map``.
- TLS (SSL, SASL_SSL): the listener's ``ssl.*`` keys (``listener.name.<l>.`` first), as Kafka's
  client-mode SslFactory reads them: the trust store verifies the server, the key store (when set)
  is this node's client certificate (an ``ssl.client.auth=required`` listener asks for it) and
  ``ssl.endpoint.identification.algorithm=https`` (the default) checks the server's host name.
- SASL (SASL_PLAINTEXT, SASL_SSL): the mechanism ``sasl.mechanism.inter.broker.protocol`` /
  ``sasl.mechanism.controller.protocol`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the credentials
  the ``username``/``password`` options of ``listener.name.<l>.<mechanism>.sasl.jaas.config``
  (Kafka's JaasContext of type SERVER: the broker's login serves both its server and its client
  side). The exchange is SaslHandshake v1 then SaslAuthenticate (kbroker.security.sasl_client).
- Re-authentication (KIP-368): when the server's last SaslAuthenticate response gives a session
  lifetime (its ``connections.max.reauth.ms``, or a credential's expiry), the connection
  re-authenticates in band before its next request once 85-95 % of that lifetime has passed (the
  fraction drawn at random per session, as Kafka's SaslClientAuthenticator.ReauthInfo does, so
  that a node's connections do not all re-authenticate at once): the users of these connections
  call :func:`reauthenticate_if_due` before each request, with no request in flight.

:func:`open_connection` opens a TCP connection, TLS on it and authenticates; a refused
authentication raises :class:`AuthenticationError` with the server's message, which the callers
log as Kafka's NetworkClient does ("failed authentication due to: ...") and retry after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kbroker.config import BrokerConfig, ConfigError
from kbroker.config.socket_options import USE_DEFAULT_BUFFER_SIZE, connect_socket
from kbroker.security.jaas import JaasError, server_entry
from kbroker.security.sasl_client import AuthenticationError, Roundtrip, authenticate_with, stream_roundtrip
from kbroker.security.tls import _load_keystore, _load_truststore, _set_ciphers, _set_protocols, _Settings

log = logging.getLogger(__name__)

__all__ = ["AuthenticationError", "ClientSecurity", "controller_client_security", "inter_broker_client_security",
           "open_connection", "reauthenticate_if_due"]

CLIENT_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """How this node connects to a listener of another node."""

    listener: str
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    check_hostname: bool = True
    mechanism: str | None = None
    username: str = ""
    password: str = ""

    async def open_connection(self, host: str, port: int, *, client_id: str, node: int | None = None,
                              max_frame: int = 100 * 1024 * 1024, sock: socket.socket | None = None
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """:func:`open_connection` with this security (lower layers call it without importing this module)."""
        return await open_connection(host, port, self, client_id=client_id, node=node, max_frame=max_frame,
                                     sock=sock)

    async def reauthenticate_if_due(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """:func:`reauthenticate_if_due` (lower layers call it without importing this module)."""
        await reauthenticate_if_due(reader, writer)

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


PLAINTEXT = ClientSecurity("PLAINTEXT")


def inter_broker_listener(config: BrokerConfig) -> tuple[str, str]:
    """(listener name, security protocol) of the inter-broker listener (Kafka's
    ``interBrokerListenerName`` / ``interBrokerSecurityProtocol``)."""
    name = config.inter_broker_listener  # checked by BrokerConfig (not both keys)
    return name, config.protocol_map.get(name, name)


def controller_listener(config: BrokerConfig) -> tuple[str, str]:
    """(listener name, security protocol) of the first of ``controller.listener.names``
    (Kafka's ``controllerListenerNames.head``, its protocol from the map, else the name)."""
    names = [n.strip().upper() for n in (config["controller.listener.names"] or []) if n.strip()]
    name = names[0] if names else "CONTROLLER"
    return name, config.protocol_map.get(name, name)


def inter_broker_client_security(config: BrokerConfig) -> ClientSecurity:
    listener, protocol = inter_broker_listener(config)
    key = "sasl.mechanism.inter.broker.protocol"
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL") and \
            config[key] not in (config.listener_value(listener, "sasl.enabled.mechanisms") or []):
        # Kafka's KafkaConfig.validateValues
        raise ConfigError(key, config[key], "", "sasl.mechanism.inter.broker.protocol must be included in "
                          "sasl.enabled.mechanisms when SASL is used for inter-broker communication")
    return client_security(config, listener, protocol, "sasl.mechanism.inter.broker.protocol")


def controller_client_security(config: BrokerConfig) -> ClientSecurity:
    listener, protocol = controller_listener(config)
    return client_security(config, listener, protocol, "sasl.mechanism.controller.protocol")


def client_security(config: BrokerConfig, listener: str, protocol: str, mechanism_key: str) -> ClientSecurity:
    """The client settings of ``listener``; raises :class:`ConfigError` naming the key."""
    if protocol == "PLAINTEXT":
        return ClientSecurity(listener)
    if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError("listener.security.protocol.map", protocol, "",
                          f"No security protocol defined for listener {listener}")
    context = None
    check_hostname = True
    if protocol in ("SSL", "SASL_SSL"):
        context = build_client_context(config, listener)
        algorithm = config.listener_value(listener, "ssl.endpoint.identification.algorithm")
        check_hostname = bool(algorithm) and algorithm.lower() == "https"
        context.check_hostname = check_hostname
    if protocol == "SSL":
        return ClientSecurity(listener, protocol, context, check_hostname)
    mechanism = _mechanism(config, mechanism_key)
    username, password = _credentials(config, listener, mechanism)
    return ClientSecurity(listener, protocol, context, check_hostname, mechanism, username, password)


def build_client_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The client-side SSLContext for ``listener``: its trust store, and its key store as the
    client certificate when one is set."""
    get = _Settings(config, listener)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _set_protocols(ctx, get)
    _set_ciphers(ctx, get)
    if any(get(k) is not None for k in ("ssl.keystore.location", "ssl.keystore.key",
                                        "ssl.keystore.certificate.chain")):
        _load_keystore(ctx, get)
    _load_truststore(ctx, get)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _mechanism(config: BrokerConfig, key: str) -> str:
    mechanism = (config[key] or "").strip()
    if mechanism not in CLIENT_MECHANISMS:
        raise ConfigError(key, mechanism, "", (
            f"SASL mechanism {mechanism} in {key} is not supported by kbroker's inter-node client; supported: "
            f"{', '.join(CLIENT_MECHANISMS)}"
            + (" (GSSAPI is Kafka's default: set " + key + ")" if mechanism == "GSSAPI" else "")))
    return mechanism


def _credentials(config: BrokerConfig, listener: str, mechanism: str) -> tuple[str, str]:
    """username and password of the listener's JAAS login for ``mechanism``."""
    key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    jaas = config.listener_jaas(listener, mechanism)
    if jaas is None:
        raise ConfigError(key, None, "", (
            f"The {mechanism} client of listener {listener} has no JAAS configuration: set {key} to "
            f'{_LOGIN_MODULES[mechanism]} required username="<name>" password="<password>";'))
    try:
        entry = server_entry(jaas)
    except JaasError as exc:
        raise ConfigError(key, "[hidden]", str(exc), f"Invalid {key}: {exc}") from None
    if entry.login_module != _LOGIN_MODULES[mechanism]:
        raise ConfigError(key, "[hidden]", "", (
            f"{key} names login module {entry.login_module}; {mechanism} needs {_LOGIN_MODULES[mechanism]}"))
    username, password = entry.options.get("username"), entry.options.get("password")
    if not username or password is None:
        raise ConfigError(key, "[hidden]", "", (
            f"{key} has no username and password options: the inter-node {mechanism} client of listener "
            f"{listener} logs in with them"))
    return username, password


_auth_logged: dict[tuple[str, int, str], float] = {}
AUTH_LOG_INTERVAL_S = 30.0


def _log_auth_failure(host: str, port: int, node: int | None, message: str) -> None:
    """Kafka's NetworkClient line, at ERROR the first time (and every 30 s while it lasts), else
    DEBUG: the callers retry every backoff."""
    now = time.monotonic()
    key = (host, port, message)
    last = _auth_logged.get(key)
    level = logging.ERROR if last is None or now - last >= AUTH_LOG_INTERVAL_S else logging.DEBUG
    if level == logging.ERROR:
        _auth_logged[key] = now
    what = f"node {node} ({host}:{port})" if node is not None else f"{host}:{port}"
    log.log(level, "Connection to %s failed authentication due to: %s", what, message)


async def open_connection(host: str, port: int, security: ClientSecurity, *, client_id: str,
                          node: int | None = None, max_frame: int = 100 * 1024 * 1024,
                          sock: socket.socket | None = None
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port`` set up as ``security`` says (TLS handshake, SASL
    authentication); the caller bounds the time (``asyncio.timeout``). ``sock``: a socket already
    connected there (its options set before it connected: kbroker.config.socket_options), else one
    is opened. Raises OSError; AuthenticationError (a ConnectionError) when the TLS handshake or SASL
    authentication fails, after logging it as Kafka's NetworkClient does."""
    where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    if security.ssl_context is None:
        reader, writer = await asyncio.open_connection(**where)
    else:
        try:
            # (SNI names ``host`` whether or not the certificate is checked against it, as before)
            reader, writer = await asyncio.open_connection(
                **where, ssl=security.ssl_context, server_hostname=host)
        except ssl.SSLError as exc:
            message = f"SSL handshake failed: {exc}"
            _log_auth_failure(host, port, node, message)
            failure = AuthenticationError(message)
            failure.logged = True
            raise failure from None
    if security.sasl:
        session = _Session(security, client_id, max_frame, host, port, node)
        await session.authenticate(reader, writer)
        _sessions[writer] = session
    for key in [k for k in _auth_logged if k[:2] == (host, port)]:
        del _auth_logged[key]  # authenticated: a later failure is logged at ERROR again
    return reader, writer


# Kafka's ReauthInfo: re-authenticate after 85 % of the session lifetime plus up to 10 % of jitter.
REAUTH_WINDOW_FACTOR, REAUTH_JITTER = 0.85, 0.10


class _Session:
    """The SASL session of one outbound connection: when it must re-authenticate."""

    def __init__(self, security: ClientSecurity, client_id: str, max_frame: int, host: str, port: int,
                 node: int | None) -> None:
        self.security = security
        self.client_id = client_id
        self.max_frame = max_frame
        self.host = host
        self.port = port
        self.node = node
        self.reauthenticate_at: float | None = None  # time.monotonic(); None: the session does not expire
        self.reauthentications = 0

    async def authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The SASL exchange; on failure the connection is aborted and the error logged, then raised."""
        await self.authenticate_with(writer, stream_roundtrip(reader, writer, self.client_id, self.max_frame))

    async def authenticate_with(self, writer: asyncio.StreamWriter, call: Roundtrip) -> None:
        security = self.security
        try:
            lifetime_ms = await authenticate_with(call, security.mechanism or "", security.username,
                                                  security.password)
        except AuthenticationError as exc:
            writer.transport.abort()
            _log_auth_failure(self.host, self.port, self.node, str(exc))
            exc.logged = True
            raise
        except BaseException:
            writer.transport.abort()
            raise
        if lifetime_ms > 0:
            fraction = REAUTH_WINDOW_FACTOR + random.random() * REAUTH_JITTER
            self.reauthenticate_at = time.monotonic() + lifetime_ms * fraction / 1000
        else:
            self.reauthenticate_at = None


_sessions: weakref.WeakKeyDictionary[asyncio.StreamWriter, _Session] = weakref.WeakKeyDictionary()


def reauthentications(writer: asyncio.StreamWriter) -> int:
    """How many times the connection of ``writer`` re-authenticated (0 for one without SASL)."""
    session = _sessions.get(writer)
    return session.reauthentications if session is not None else 0


async def reauthenticate_if_due(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Re-authenticate the connection when its SASL session is due (KIP-368), in band: SaslHandshake
    and SaslAuthenticate on the same connection, as Kafka's client does before sending a request
    once the re-authentication time has passed. Call it with no request in flight. A no-op for
    connections without SASL or whose session does not expire. Raises as :func:`open_connection`
    (the connection is aborted then)."""
    if not reauthentication_due(writer):
        return
    session = _sessions[writer]
    await session.authenticate(reader, writer)
    _reauthenticated(session)


def reauthentication_due(writer: asyncio.StreamWriter) -> bool:
    """Whether the connection of ``writer`` must re-authenticate before its next request."""
    session = _sessions.get(writer)
    return session is not None and session.reauthenticate_at is not None and \
        time.monotonic() >= session.reauthenticate_at


async def reauthenticate_with(writer: asyncio.StreamWriter, call: Roundtrip) -> None:
    """Re-authenticate the connection of ``writer`` over ``call``, for a user whose own task reads
    the connection's responses (the raft driver's pipelined connections): ``call`` sends a request
    and returns the response body that task hands back. Raises as :func:`reauthenticate_if_due`."""
    session = _sessions.get(writer)
    if session is None:
        return
    await session.authenticate_with(writer, call)
    _reauthenticated(session)


def _reauthenticated(session: _Session) -> None:
    session.reauthentications += 1
    log.debug("re-authenticated the connection to %s:%d (%d times)", session.host, session.port,
              session.reauthentications)


class Connector:
    """``open(host, port)`` for the users that take a connection factory (the raft driver, the
    controller channel); its :meth:`reauthenticate_if_due` re-authenticates a connection it opened
    (the users find it on the factory, without importing this module)."""

    def __init__(self, security: ClientSecurity, client_id: str, receive_buffer: int = USE_DEFAULT_BUFFER_SIZE) -> None:
        self.security = security
        self.client_id = client_id
        self.receive_buffer = receive_buffer  # SO_RCVBUF set before connecting (-1: the OS's)

    async def __call__(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # (always through connect_socket: SO_KEEPALIVE and TCP_NODELAY as Kafka's Selector sets
        # them, the receive buffer only when it is not -1)
        sock = await connect_socket(host, port, receive_buffer=self.receive_buffer)
        try:
            return await open_connection(host, port, self.security, client_id=self.client_id, sock=sock)
        except BaseException:
            sock.close()
            raise

    async def reauthenticate_if_due(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reauthenticate_if_due(reader, writer)

    def reauthentication_due(self, writer: asyncio.StreamWriter) -> bool:
        return reauthentication_due(writer)

    async def reauthenticate_with(self, writer: asyncio.StreamWriter, call: Roundtrip) -> None:
        await reauthenticate_with(writer, call)


def connector(security: ClientSecurity, client_id: str, receive_buffer: int = USE_DEFAULT_BUFFER_SIZE
              ) -> Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """A :class:`Connector` of ``security``."""
    return Connector(security, client_id, receive_buffer)
