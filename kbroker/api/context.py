"""What an API handler reaches: the request's context, and the broker seen through it.

The server (``kbroker.server.connection``) builds a :class:`RequestContext` for every request.
The context is generic in the services its handler uses: a handler is typed on
``RequestContext[S]``, ``S`` a small Protocol of the services it declares (in its own module, or a
shared one of :mod:`kbroker.api.services`), so ``ctx.broker`` offers that handler those services
and nothing else (mypy rejects the use of one it did not declare). The composition root checks
that the broker (``kbroker.broker.Broker``) provides each handler's services
(:mod:`kbroker.wiring.handler_services`); this layer never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from kbroker.controller.operations.host import ServiceNotRunning as ServiceNotRunning
from kbroker.controller.operations.host import local_controller as local_controller
from kbroker.controller.operations.host import require as require
from kbroker.metadata.client import Requester
from kbroker.metadata.client import (
    response_as as response_as,  # (for the handlers: a forwarded answer typed)
)
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.config import Endpoint
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.partition import Partition
    from kbroker.replication.replica_manager import ReplicaManager
    from kbroker_protocol.messages import RequestHeader

S_co = TypeVar("S_co", covariant=True)  # the services a handler's context offers


class ClientConnection(Protocol):
    """The client connection a request came in on, as the handlers use it."""

    peer: str
    endpoint: Endpoint
    principal: str  # "User:ANONYMOUS" until authenticated
    client_software: tuple[str, str] | None
    quota_exempt: bool  # a follower's connection: no client quota

    def close(self) -> None: ...


class HandlerContext(Protocol[S_co]):
    """What every handler may read of its context: a :class:`RequestContext` on a broker listener,
    a ``kbroker.api.controller_listener.ControllerRequestContext`` on the controller listener;
    ``broker`` offers the services ``S_co``."""

    @property
    def broker(self) -> S_co: ...
    @property
    def header(self) -> RequestHeader: ...
    @property
    def api_version(self) -> int: ...


class RequestContext(Generic[S_co]):
    """What a handler knows about the request beyond its body; ``broker`` offers the services
    ``S_co`` (the server builds it with the whole broker, a handler is typed on what it uses)."""

    __slots__ = ("broker", "connection", "header", "api_version")
    internal = False  # a client's request (the controller's operations' contexts may be the broker's own)

    def __init__(self, broker: S_co, connection: ClientConnection, header: RequestHeader) -> None:
        self.broker = broker
        self.connection = connection
        self.header = header
        self.api_version: int = header.request_api_version

    @property
    def client_id(self) -> str | None:
        client_id: str | None = self.header.client_id
        return client_id

    @property
    def peer(self) -> str:
        return self.connection.peer


def requester(ctx: RequestContext[object]) -> Requester:
    """Who sent ``ctx``'s request, as a forwarded request (Envelope) names it."""
    host = ctx.peer.rpartition(":")[0] if ":" in ctx.peer else ctx.peer
    principal = ctx.connection.principal or "User:ANONYMOUS"
    kind, _, name = principal.partition(":")
    return Requester(client_id=ctx.header.client_id, client_host=host, principal_type=kind, principal_name=name)


class PartitionLookup(Protocol):
    """What :func:`partition_or_error` reads of the broker: its replicas and its image."""

    replica_manager: ReplicaManager
    image: MetadataImage


def partition_or_error(broker: PartitionLookup, topic: str, index: int, *, leader: bool = False
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
