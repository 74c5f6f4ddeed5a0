"""Console logins when the broker has SASL users.

When one of the broker's client listeners is SASL_PLAINTEXT or SASL_SSL with PLAIN or SCRAM
enabled, every console endpoint but the login asks for a session (:func:`login_listener`: a
SASL_PLAINTEXT one first; over SASL_SSL the console's connections make a TLS handshake with the
client context the broker's inter-node client builds for that listener: its ``ssl.truststore.*``,
``ssl.keystore.*`` as client certificate, ``ssl.endpoint.identification.algorithm``). Logging in does not check the password here:
the console opens a Kafka connection to that listener and authenticates with the given mechanism,
user and password (:mod:`kbroker.security.sasl_client`), so the broker's own SASL server
(:mod:`kbroker.security.sasl`: the JAAS PLAIN users, the SCRAM credentials from the metadata log)
accepts or refuses them, with its failed-authentication delay. Every later request of the session
goes over such authenticated connections, so the broker's authorizer decides each one as that
user's principal, through the same path as any client's request.

A session is a random token (``secrets.token_urlsafe``, 256 bits) in a cookie that is
``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's page sends it). The
session keeps the password in memory, to open further connections (to other brokers of a
cluster, or after the broker closed an idle one); logout or ``IDLE_TIMEOUT`` drops it and closes
its connections. Nothing is written to disk.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from kbroker.console.client import KafkaClient, Tls
from kbroker.security.client import build_client_context

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.security.listeners import ListenerSecurity

COOKIE = "kbroker_console_session"
IDLE_TIMEOUT = 3600.0
MAX_SESSIONS = 256
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")  # what the console can log in with


class LoginListener(NamedTuple):
    """The SASL listener the console logs in through: its address as a client on this host
    reaches it, the mechanisms the console can use there, and TLS for a SASL_SSL one."""

    host: str
    port: int
    mechanisms: list[str]
    tls: Tls | None = None


class ConsoleBroker(Protocol):
    """What the console reads of the broker: its id, config, bound listeners (listener name ->
    address), their security settings and the advertised endpoints (``kbroker.broker.Broker``)."""

    config: BrokerConfig
    node_id: int

    @property
    def bound(self) -> Mapping[str, tuple[str, int]]: ...

    @property
    def listener_security(self) -> Mapping[str, ListenerSecurity]: ...

    def advertised_endpoints(self) -> list[tuple[str, str, int]]: ...


def login_listener(broker: ConsoleBroker) -> LoginListener | None:
    """The broker's first SASL_PLAINTEXT listener with a mechanism the console logs in with, else its
    first such SASL_SSL listener; None without one (no login). Raises ConfigError when a SASL_SSL
    listener's TLS settings do not make a client context."""
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        for endpoint in broker.config.client_listeners:
            if endpoint.security_protocol != protocol:
                continue
            security = broker.listener_security.get(endpoint.listener)
            bound = broker.bound.get(endpoint.listener)
            mechanisms = [m for m in MECHANISMS if security is not None and m in security.sasl_mechanisms]
            if bound is None or not mechanisms:
                continue
            host, port = local_address(*bound)
            if protocol == "SASL_PLAINTEXT":
                return LoginListener(host, port, mechanisms)
            context = build_client_context(broker.config, endpoint.listener)
            algorithm = broker.config.listener_value(endpoint.listener, "ssl.endpoint.identification.algorithm")
            context.check_hostname = bool(algorithm) and algorithm.lower() == "https"
            advertised = {name: h for name, h, _port in broker.advertised_endpoints()}
            tls = Tls(context, context.check_hostname, advertised.get(endpoint.listener))
            return LoginListener(host, port, mechanisms, tls)
    return None


def local_address(host: str, port: int) -> tuple[str, int]:
    """A bound address as a client on this host reaches it (a wildcard bind: loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1", port
    if host == "::":
        return "::1", port
    return host, port


@dataclass(slots=True)
class Session:
    token: str
    username: str
    mechanism: str
    client: KafkaClient
    last_used: float = field(default_factory=time.monotonic)

    @property
    def principal(self) -> str:
        return f"User:{self.username}"


class Sessions:
    def __init__(self) -> None:
        self._by_token: dict[str, Session] = {}

    def add(self, username: str, mechanism: str, client: KafkaClient) -> tuple[Session, list[Session]]:
        """A new session; also returns the sessions dropped to make room (their clients to close)."""
        dropped = self.expire()
        while len(self._by_token) >= MAX_SESSIONS:
            oldest = min(self._by_token.values(), key=lambda s: s.last_used)
            dropped.append(self._by_token.pop(oldest.token))
        session = Session(secrets.token_urlsafe(32), username, mechanism, client)
        self._by_token[session.token] = session
        return session, dropped

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_used > IDLE_TIMEOUT:
            return None  # closed by the next expire()
        session.last_used = now
        return session

    def remove(self, token: str | None) -> Session | None:
        return self._by_token.pop(token, None) if token else None

    def expire(self) -> list[Session]:
        now = time.monotonic()
        gone = [s for s in self._by_token.values() if now - s.last_used > IDLE_TIMEOUT]
        for s in gone:
            del self._by_token[s.token]
        return gone

    def all(self) -> list[Session]:
        return list(self._by_token.values())


def cookie_token(headers: dict[str, str]) -> str | None:
    """The session token from the request's Cookie header, if any."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def set_cookie(token: str) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
