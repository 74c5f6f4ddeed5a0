"""What an API handler reaches: the request's context, and the broker seen through it.

The server (``kbroker.server.connection``) builds a :class:`RequestContext` for every request.
``ctx.broker`` is typed by :class:`BrokerServices`, the part of the broker the handlers use, so
this layer never imports the composition root (``kbroker.broker.Broker`` provides it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypeVar

from kbroker.controller.operations.host import OperationHost, RaftOperationHost
from kbroker.controller.operations.host import ServiceNotRunning as ServiceNotRunning
from kbroker.controller.operations.host import local_controller as local_controller
from kbroker.controller.operations.host import require as require
from kbroker.metadata.client import ControllerClient, Requester
from kbroker.metadata.client import (
    response_as as response_as,  # (for the handlers: a forwarded answer typed)
)
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    import asyncio

    from kbroker.config import Endpoint
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.fetch_sessions import FetchSessionCache
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_ids import ProducerIdManager
    from kbroker.replication.replica_manager import ReplicaManager
    from kbroker.security.acls import Authorizer
    from kbroker.security.quotas import ClientQuotas
    from kbroker.security.replication_quotas import ReplicationQuotas
    from kbroker.security.scram import ScramCredentials
    from kbroker.security.tokens import DelegationTokens
    from kbroker_protocol.messages import RequestHeader

T = TypeVar("T")


class BrokerServices(OperationHost, Protocol):
    """The broker as the API handlers use it (what the controller's operations use of it,
    :class:`OperationHost`, included: the handlers of a node run them on its own controller)."""

    # Where metadata changes go: this node's controller, or the active controller of a cluster.
    controller_client: ControllerClient
    replica_manager: ReplicaManager
    producer_ids: ProducerIdManager
    fetch_sessions: FetchSessionCache
    group_coordinator: GroupCoordinator | None
    txn_coordinator: TransactionCoordinator | None
    share_coordinator: ShareCoordinator | None  # KIP-932 (assigned by kbroker.wiring.coordinators)
    authorizer: Authorizer
    scram_credentials: ScramCredentials
    delegation_tokens: DelegationTokens
    client_quotas: ClientQuotas
    replication_quotas: ReplicationQuotas

    create_partitions_lock: asyncio.Lock
    stopping: bool  # shutting down: long polls answer now, FindCoordinator says not available

    @property
    def clock(self) -> WaitClock | None: ...  # kbroker.clock=manual; None: real time

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def listener_endpoint(self, listener: str) -> tuple[str, int]: ...


class RaftNodeServices(BrokerServices, RaftOperationHost, Protocol):
    """A node that serves the controller listener: the broker seen with its Raft driver (None
    when the node has no Raft quorum)."""


class ClientConnection(Protocol):
    """The client connection a request came in on, as the handlers use it."""

    peer: str
    endpoint: Endpoint
    principal: str  # "User:ANONYMOUS" until authenticated
    client_software: tuple[str, str] | None
    quota_exempt: bool  # a follower's connection: no client quota

    def close(self) -> None: ...


class HandlerContext(Protocol):
    """What every handler may read of its context: a :class:`RequestContext` on a broker listener,
    a ``kbroker.api.controller_listener.ControllerRequestContext`` on the controller listener."""

    @property
    def broker(self) -> BrokerServices: ...
    @property
    def header(self) -> RequestHeader: ...
    @property
    def api_version(self) -> int: ...


class RequestContext:
    """What a handler knows about the request beyond its body."""

    __slots__ = ("broker", "connection", "header", "api_version", "received_at")
    internal = False  # a client's request (the controller's operations' contexts may be the broker's own)

    def __init__(self, broker: BrokerServices, connection: ClientConnection, header: RequestHeader) -> None:
        self.broker = broker
        self.connection = connection
        self.header = header
        self.api_version: int = header.request_api_version
        self.received_at = time.monotonic()

    @property
    def client_id(self) -> str | None:
        client_id: str | None = self.header.client_id
        return client_id

    @property
    def peer(self) -> str:
        return self.connection.peer


def requester(ctx: RequestContext) -> Requester:
    """Who sent ``ctx``'s request, as a forwarded request (Envelope) names it."""
    host = ctx.peer.rpartition(":")[0] if ":" in ctx.peer else ctx.peer
    principal = ctx.connection.principal or "User:ANONYMOUS"
    kind, _, name = principal.partition(":")
    return Requester(client_id=ctx.header.client_id, client_host=host, principal_type=kind, principal_name=name)


def partition_or_error(broker: BrokerServices, topic: str, index: int, *, leader: bool = False
                       ) -> tuple[Partition | None, ErrorCode]:
    """This broker's replica of ``topic``-``index`` (with ``leader``, only when it leads it), or the
    error a client gets instead, as Kafka's ``ReplicaManager.getPartitionOrError``:
    NOT_LEADER_OR_FOLLOWER for a partition of the metadata that this broker does not host (or does
    not lead), UNKNOWN_TOPIC_OR_PARTITION for one the metadata does not have; KAFKA_STORAGE_ERROR for
    a replica whose log is offline (its dir failed), whether it leads or not."""
    partition = broker.replica_manager.partition(topic, index)
    if partition is not None and (partition.is_leader or not leader):
        return partition, ErrorCode.NONE
    if partition is not None and getattr(partition.log, "offline", None) is not None:
        return None, ErrorCode.KAFKA_STORAGE_ERROR  # Kafka's HostedPartition.Offline, before the leader check
    if broker.image.partition(topic, index) is None:
        return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return None, ErrorCode.NOT_LEADER_OR_FOLLOWER
