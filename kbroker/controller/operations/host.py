"""What the controller's operations reach of the node they run in, and whom they authorize.

An operation (the controller's side of a forwarded admin API, :mod:`kbroker.controller.operations`)
runs on the node that hosts the active controller: :class:`OperationHost` is that node as the
operations use it (its ``QuorumController``, configuration, image and the security stores the
records update), so this package never imports the API layer that forwards to it. The broker
(``kbroker.broker.Broker``) provides it; the API layer's ``BrokerServices`` extends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from kbroker.replication.topics import TopicHost

if TYPE_CHECKING:
    from kbroker.controller.quorum import QuorumController
    from kbroker.metadata.client import Requester
    from kbroker.raft.io import RaftDriver
    from kbroker.security.acls import Authorizer
    from kbroker.security.quotas import ClientQuotas
    from kbroker.security.scram import ScramCredentials
    from kbroker.security.tokens import DelegationTokens

T = TypeVar("T")


class OperationHost(TopicHost, Protocol):
    """The node the controller's operations run in (topic creation's :class:`TopicHost` included):
    its controller (None on a node that is not a controller) and the topic names being created
    there (``topic_logs``)."""

    controller: QuorumController | None
    creating_topics: dict[str, str]
    cluster_id: str
    authorizer: Authorizer
    scram_credentials: ScramCredentials
    delegation_tokens: DelegationTokens
    client_quotas: ClientQuotas  # the controller mutation quota (kbroker/security/quotas.py)

    def advertised_endpoints(self) -> list[tuple[str, str, int]]: ...


class RaftOperationHost(OperationHost, Protocol):
    """A node with its Raft driver (None when it has no Raft quorum): the quorum's operations."""

    raft: RaftDriver | None

    @property
    def active_controller_id(self) -> int: ...  # the KRaft leader, as clients see the controller


class ServiceNotRunning(RuntimeError):
    """A handler or operation needs a service this node has not started (answered as any handler
    failure)."""


def require(service: T | None, name: str) -> T:
    """``service``, which the caller cannot answer without; raises :class:`ServiceNotRunning` when
    this node has none (the request is then answered as for any handler failure)."""
    if service is None:
        raise ServiceNotRunning(f"{name} is not running on this broker")
    return service


def local_controller(host: OperationHost) -> QuorumController:
    """This node's controller, where the admin operations run (:func:`require` of it)."""
    return require(host.controller, "the controller")


class OperationSubject:
    """The principal and address a controller operation authorizes: what ``authorized`` reads from a
    request context (``ctx.broker``, ``ctx.connection.principal``/``peer``), built from the
    forwarded request's requester (Kafka's ControllerApis authorizes the Envelope's principal)."""

    __slots__ = ("broker", "connection", "principal", "peer", "internal")

    def __init__(self, broker: OperationHost, requester: Requester | None) -> None:
        self.broker = broker
        self.connection = self
        # no requester: the broker's own work (auto-creation, internal topics), never refused
        self.internal = requester is None
        if requester is None:
            self.principal, self.peer = "User:ANONYMOUS", "127.0.0.1:0"
        else:
            self.principal = f"{requester.principal_type}:{requester.principal_name}"
            self.peer = f"{requester.client_host}:0"


def operation_subject(broker: OperationHost, requester: Requester | None) -> OperationSubject:
    """A context for ``authorized`` in a controller operation; allows everything when there is no
    requester (work the broker asks of the controller for itself)."""
    return OperationSubject(broker, requester)
