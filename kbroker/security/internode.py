"""Security of a node's connections to the other nodes (issue 17), set up once at start-up.

:class:`InterNodeSecurity` holds what the three inter-node users need (kbroker.security.client):

- the replica fetcher connects to a leader's inter-broker listener (``inter_broker``);
- the broker-to-controller channels (registration, heartbeats, forwarding, AlterPartition) and
  the raft voters connect to controller listeners (``controller``);
- the raft driver serves the controller listener itself: its TLS context and SASL settings
  (``controller_server``, kbroker.security.inbound) are installed on it by :meth:`secure_raft`;
  its connections' SASL sessions re-authenticate and expire (KIP-368) as on a client listener.

Bad settings raise ConfigError at start-up, as Kafka refuses them, naming the key.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.config import BrokerConfig
from kbroker.security.client import (
    PLAINTEXT,
    ClientSecurity,
    connector,
    controller_client_security,
    inter_broker_client_security,
)
from kbroker.security.inbound import (
    InboundSession,
    controller_listener_security,
    inbound_session,
    tls_principal,
)
from kbroker.security.listeners import ListenerSecurity
from kbroker.security.scram import ScramCredentials

if TYPE_CHECKING:
    from kbroker.raft.io import RaftDriver

Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass(frozen=True, slots=True)
class InterNodeSecurity:
    inter_broker: ClientSecurity = PLAINTEXT
    controller: ClientSecurity = PLAINTEXT
    controller_server: ListenerSecurity | None = None

    @classmethod
    def from_config(cls, config: BrokerConfig) -> InterNodeSecurity:
        """Raises ConfigError."""
        if not config.kraft_mode:  # the single-node start: no other node to talk to
            return cls()
        inter_broker = inter_broker_client_security(config) if "broker" in config.process_roles else PLAINTEXT
        controller = controller_client_security(config)
        server = controller_listener_security(config) if "controller" in config.process_roles else None
        return cls(inter_broker, controller, server)

    def controller_opener(self, client_id: str) -> Opener | None:
        """The connection factory of a broker-to-controller channel (None: plain TCP)."""
        return None if self.controller.protocol == "PLAINTEXT" else connector(self.controller, client_id)

    def secure_raft(self, raft: RaftDriver, credentials: ScramCredentials) -> None:
        """The raft driver's outbound connections on the controller listener's security, its
        server with the listener's TLS and SASL (before ``raft.listen()``)."""
        if self.controller.protocol != "PLAINTEXT":
            raft.open_connection = connector(self.controller, f"raft-client-{raft.node_id}",
                                             raft.socket_receive_buffer)
        server = self.controller_server
        if server is None:
            return
        raft.server_ssl = server.ssl_context
        if server.sasl:
            # the session: the connection's principal, and its later frames first (re-authentication, expiry)
            async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                   on_api_versions: Callable[[bytes], None]) -> InboundSession | None:
                return await inbound_session(reader, writer, server, credentials, on_api_versions)
            raft.authenticate = authenticate
        elif server.principal_mapper is not None:
            raft.tls_principal = functools.partial(tls_principal, mapper=server.principal_mapper)
