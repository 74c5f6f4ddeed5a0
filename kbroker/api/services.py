"""The services several API handlers share, as small Protocols.

A handler is typed on ``RequestContext[S]`` (:mod:`kbroker.api.context`), ``S`` the services it
uses: a Protocol of its own module when it is the only one using that set, one of these when several
handlers use the same (the group APIs: the group coordinator and the authorizer). The broker
(``kbroker.broker.Broker``) provides them all; ``kbroker.wiring.handler_services`` checks it
against every handler's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import PartitionLookup

# the controller-listener APIs of the cluster's control: the operations they run take the same
from kbroker.controller.operations.host import ClusterControlling as ClusterControlling
from kbroker.coordinator.hosts import BrokerView

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.metadata.client import ControllerClient
    from kbroker.metadata.image import MetadataImage
    from kbroker.security.acls import Authorizer


class NoServices(Protocol):
    """A handler that uses no service of the broker (it answers from its request and connection)."""


class Authorizing(Protocol):
    """The ACL authorizer (``kbroker.security.acls.authorized`` reads it through the context)."""

    authorizer: Authorizer


class ImageReading(Protocol):
    """This node's metadata image."""

    image: MetadataImage


class Forwarding(Protocol):
    """Where metadata changes go: this node's controller, or the active controller of a cluster
    (the admin APIs forward their request there, which authorizes it)."""

    controller_client: ControllerClient



class GroupServices(Authorizing, Protocol):
    """The group APIs (classic, consumer, share and streams groups): the group coordinator."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...


class TxnServices(Authorizing, Protocol):
    """The transaction APIs: the transaction coordinator."""

    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...


class GroupTopicServices(GroupServices, Protocol):
    """The group APIs that name topics (OffsetCommit, OffsetFetch, ConsumerGroupDescribe): the
    group coordinator and the image the topics are resolved in."""

    image: MetadataImage


class GroupConfigServices(GroupServices, BrokerView, Protocol):
    """The group APIs that read which group protocols are on (ConsumerGroupHeartbeat, the streams
    group APIs): the group coordinator, the configuration and the image's features."""


class ShareGroupServices(BrokerView, Protocol):
    """The share group APIs of the group coordinator (ShareGroupHeartbeat, ShareGroupDescribe), on
    only when the configuration and the image's features say so."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...


class ReplicaServices(PartitionLookup, Authorizing, Protocol):
    """The APIs answered by this broker's replicas (ListOffsets, DeleteRecords)."""
