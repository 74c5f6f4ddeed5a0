"""What the controller's operations reach of the node they run in, and whom they authorize.

An operation (the controller's side of a forwarded admin API, :mod:`kbroker.controller.operations`)
runs on the node that hosts the active controller; this package never imports the API layer that
forwards to it. Each operation is typed on a small Protocol of its own module, what it uses of the
node (``create_topics.CreateTopicsHost``, ``quorum.DescribeQuorumHost``, ``reassignments.ReassignmentHost``,
``delegation_tokens.TokenExpiryHost``...), built from the pieces here (:class:`ControllerHolder`,
:class:`Authorizing`, :class:`ClusterControlling`). There is no Protocol of the node as a whole:
what runs any forwarded operation (``local.LocalControllerClient``, and Envelope through it) holds
``local.AllOperationsHost``, the intersection of the operations' Protocols, on which
``local.OPERATIONS`` is typed, so mypy checks that it includes every operation's Protocol. The
broker (``kbroker.broker.Broker``) provides it (mypy checks it where the broker is given to one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.controller.quorum import QuorumController
    from kbroker.metadata.client import Requester
    from kbroker.security.acls import Authorizer

T = TypeVar("T")
B = TypeVar("B")  # the node as an operation uses it (``OperationSubject.broker``)


class ServiceNotRunning(RuntimeError):
    """A handler or operation needs a service this node has not started (answered as any handler
    failure)."""


def require(service: T | None, name: str) -> T:
    """``service``, which the caller cannot answer without; raises :class:`ServiceNotRunning` when
    this node has none (the request is then answered as for any handler failure)."""
    if service is None:
        raise ServiceNotRunning(f"{name} is not running on this broker")
    return service


class Authorizing(Protocol):
    """A node as ``authorized`` reads it (through :class:`OperationSubject`): its authorizer."""

    @property
    def authorizer(self) -> Authorizer: ...


class ControllerHolder(Protocol):
    """A node as :func:`local_controller` reads it: its controller (None: it runs none)."""

    @property
    def controller(self) -> QuorumController | None: ...


class ClusterControlling(ControllerHolder, Protocol):
    """The node the cluster's control operations run in (BrokerRegistration, BrokerHeartbeat,
    AlterPartition, AssignReplicasToDirs, UnregisterBroker: ``kbroker.controller.cluster_runtime``):
    its controller, and what the operations read of it (``cluster_runtime.ControllerNode``)."""

    @property
    def config(self) -> BrokerConfig: ...

    @property
    def cluster_id(self) -> str: ...


def local_controller(host: ControllerHolder) -> QuorumController:
    """This node's controller, where the admin operations run (:func:`require` of it)."""
    return require(host.controller, "the controller")


class OperationSubject(Generic[B]):
    """The principal and address a controller operation authorizes: what ``authorized`` reads from a
    request context (``ctx.broker``, ``ctx.connection.principal``/``peer``), built from the
    forwarded request's requester (Kafka's ControllerApis authorizes the Envelope's principal).
    ``B``: the node as the operation uses it (what it declares, e.g. ``create_acls.AclsHost``;
    the ``authorizer`` at least, for ``authorized``)."""

    __slots__ = ("broker", "connection", "principal", "peer", "internal")

    def __init__(self, broker: B, requester: Requester | None) -> None:
        self.broker = broker
        self.connection = self
        # no requester: the broker's own work (auto-creation, internal topics), never refused
        self.internal = requester is None
        if requester is None:
            self.principal, self.peer = "User:ANONYMOUS", "127.0.0.1:0"
        else:
            self.principal = f"{requester.principal_type}:{requester.principal_name}"
            self.peer = f"{requester.client_host}:0"


def operation_subject(broker: B, requester: Requester | None) -> OperationSubject[B]:
    """A context for ``authorized`` in a controller operation; allows everything when there is no
    requester (work the broker asks of the controller for itself)."""
    return OperationSubject(broker, requester)
