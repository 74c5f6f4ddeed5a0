"""The controller client: how a broker asks the active controller to change metadata.

Kafka's brokers never write metadata themselves: an admin request (CreateTopics, DeleteTopics,
CreatePartitions, AlterConfigs, IncrementalAlterConfigs, UpdateFeatures, ElectLeaders) is
forwarded to the active controller (``ForwardingManager``, wrapped in an Envelope), and producer-id
blocks are asked of it with AllocateProducerIds (``NodeToControllerChannelManager``). The handlers
of those APIs call a :class:`ControllerClient` and answer with what it returns, per item with
Kafka's error codes and messages:

- ``kbroker.controller.operations.local.LocalControllerClient`` runs the operation on this
  process's ``QuorumController`` (the single-node path, and the controller's side of a forwarded
  request: the Envelope handler decodes the inner request and runs it here);
- ``kbroker.metadata.remote.RemoteControllerClient`` sends it to the active controller of a
  cluster over a ``ControllerChannel``.

The operations themselves (Kafka's ``ControllerApis`` checks, then the controller's decision and
its records) are in :mod:`kbroker.controller.operations`, keyed by API key in its ``local`` module,
so the controller runs exactly the code a single node runs; each takes ``(host, request, version,
requester)`` and returns the response body. ``host`` is the node the controller runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, TypeVar

from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsResponse
from kbroker_protocol.messages.alter_configs import AlterConfigsResponse
from kbroker_protocol.messages.create_partitions import CreatePartitionsResponse
from kbroker_protocol.messages.create_topics import CreateTopicsResponse
from kbroker_protocol.messages.delete_topics import DeleteTopicsResponse
from kbroker_protocol.messages.elect_leaders import ElectLeadersResponse
from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsResponse
from kbroker_protocol.messages.update_features import UpdateFeaturesResponse

if TYPE_CHECKING:
    from kbroker_protocol.messages.alter_configs import AlterConfigsRequest
    from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
    from kbroker_protocol.messages.create_topics import CreateTopicsRequest
    from kbroker_protocol.messages.delete_topics import DeleteTopicsRequest
    from kbroker_protocol.messages.elect_leaders import ElectLeadersRequest
    from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
    from kbroker_protocol.messages.update_features import UpdateFeaturesRequest

CREATE_TOPICS, DELETE_TOPICS, ALTER_CONFIGS, CREATE_PARTITIONS = 19, 20, 33, 37
ELECT_LEADERS, INCREMENTAL_ALTER_CONFIGS, UPDATE_FEATURES = 43, 44, 57
ENVELOPE, ALLOCATE_PRODUCER_IDS = 58, 67
CREATE_ACLS, DELETE_ACLS, ALTER_USER_SCRAM_CREDENTIALS = 30, 31, 51
ALTER_PARTITION_REASSIGNMENTS, LIST_PARTITION_REASSIGNMENTS = 45, 46
ALTER_CLIENT_QUOTAS = 49
CREATE_DELEGATION_TOKEN, RENEW_DELEGATION_TOKEN, EXPIRE_DELEGATION_TOKEN = 38, 39, 40
# the metadata quorum's APIs a broker forwards (kbroker/api/quorum_forwarding.py)
DESCRIBE_QUORUM, UNREGISTER_BROKER, ADD_RAFT_VOTER, REMOVE_RAFT_VOTER, UNREGISTER_CONTROLLER = 55, 64, 80, 81, 94

# The admin APIs a broker forwards to the active controller in an Envelope (Kafka's KafkaApis
# ``maybeForwardToController`` callers among the APIs kbroker serves).
FORWARDED_APIS: frozenset[int] = frozenset({
    CREATE_TOPICS, DELETE_TOPICS, ALTER_CONFIGS, CREATE_PARTITIONS, ELECT_LEADERS,
    INCREMENTAL_ALTER_CONFIGS, UPDATE_FEATURES, CREATE_ACLS, DELETE_ACLS, ALTER_USER_SCRAM_CREDENTIALS,
    ALTER_PARTITION_REASSIGNMENTS, LIST_PARTITION_REASSIGNMENTS,
    ALTER_CLIENT_QUOTAS,
    CREATE_DELEGATION_TOKEN, RENEW_DELEGATION_TOKEN, EXPIRE_DELEGATION_TOKEN,
    DESCRIBE_QUORUM, UNREGISTER_BROKER, ADD_RAFT_VOTER, REMOVE_RAFT_VOTER, UNREGISTER_CONTROLLER,
})


class ControllerUnavailable(Exception):
    """No active controller answered before the request's deadline."""


@dataclass(frozen=True, slots=True)
class Requester:
    """Who sent a forwarded request: what Kafka's Envelope carries besides the request itself."""

    client_id: str | None = None
    client_host: str = "127.0.0.1"
    principal_type: str = "User"
    principal_name: str = "ANONYMOUS"


_M = TypeVar("_M")


class ControllerClient(Protocol):
    """The controller's operations as a broker reaches them (Kafka's controller RPCs)."""

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        """Run one of :data:`FORWARDED_APIS` on the active controller; returns its response body."""
        ...

    async def create_topics(self, request: CreateTopicsRequest, version: int,
                            requester: Requester | None = None) -> CreateTopicsResponse: ...

    async def delete_topics(self, request: DeleteTopicsRequest, version: int,
                            requester: Requester | None = None) -> DeleteTopicsResponse: ...

    async def create_partitions(self, request: CreatePartitionsRequest, version: int,
                                requester: Requester | None = None) -> CreatePartitionsResponse: ...

    async def alter_configs(self, request: AlterConfigsRequest, version: int,
                            requester: Requester | None = None) -> AlterConfigsResponse: ...

    async def incremental_alter_configs(self, request: IncrementalAlterConfigsRequest, version: int,
                                        requester: Requester | None = None) -> IncrementalAlterConfigsResponse: ...

    async def update_features(self, request: UpdateFeaturesRequest, version: int,
                              requester: Requester | None = None) -> UpdateFeaturesResponse: ...

    async def elect_leaders(self, request: ElectLeadersRequest, version: int,
                            requester: Requester | None = None) -> ElectLeadersResponse: ...

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> AllocateProducerIdsResponse:
        """A block of producer ids for ``broker_id`` (error STALE_BROKER_EPOCH and no block when the
        controller does not know that broker at that epoch)."""
        ...


class NodeController(Protocol):
    """This node's controller as the broker side asks whether it is the active one (the
    ``QuorumController`` of ``kbroker.controller.quorum``, which this layer does not import)."""

    def is_active(self) -> bool: ...


_C = TypeVar("_C", bound=NodeController)


def controller_active(controller: _C | None) -> TypeGuard[_C]:
    """Whether ``controller`` exists and is the active controller (``is_active()``: always for the
    single voter, while it leads for a Raft quorum's)."""
    return controller is not None and controller.is_active()


def response_as(response: object, response_type: type[_M]) -> _M:
    """``response`` (a forwarded request's answer, built per API key) typed as ``response_type``;
    raises TypeError when it is something else (answered as any handler failure)."""
    if not isinstance(response, response_type):
        raise TypeError(f"expected a {response_type.__qualname__}, got {type(response).__qualname__}")
    return response


class ForwardingOperations:
    """The typed operations of :class:`ControllerClient` written once over ``forward``."""

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        raise NotImplementedError

    async def create_topics(self, request: CreateTopicsRequest, version: int,
                            requester: Requester | None = None) -> CreateTopicsResponse:
        return response_as(await self.forward(CREATE_TOPICS, request, version, requester), CreateTopicsResponse)

    async def delete_topics(self, request: DeleteTopicsRequest, version: int,
                            requester: Requester | None = None) -> DeleteTopicsResponse:
        return response_as(await self.forward(DELETE_TOPICS, request, version, requester), DeleteTopicsResponse)

    async def create_partitions(self, request: CreatePartitionsRequest, version: int,
                                requester: Requester | None = None) -> CreatePartitionsResponse:
        return response_as(await self.forward(CREATE_PARTITIONS, request, version, requester), CreatePartitionsResponse)

    async def alter_configs(self, request: AlterConfigsRequest, version: int,
                            requester: Requester | None = None) -> AlterConfigsResponse:
        return response_as(await self.forward(ALTER_CONFIGS, request, version, requester), AlterConfigsResponse)

    async def incremental_alter_configs(self, request: IncrementalAlterConfigsRequest, version: int,
                                        requester: Requester | None = None) -> IncrementalAlterConfigsResponse:
        return response_as(await self.forward(INCREMENTAL_ALTER_CONFIGS, request, version, requester), IncrementalAlterConfigsResponse)

    async def update_features(self, request: UpdateFeaturesRequest, version: int,
                              requester: Requester | None = None) -> UpdateFeaturesResponse:
        return response_as(await self.forward(UPDATE_FEATURES, request, version, requester), UpdateFeaturesResponse)

    async def elect_leaders(self, request: ElectLeadersRequest, version: int,
                            requester: Requester | None = None) -> ElectLeadersResponse:
        return response_as(await self.forward(ELECT_LEADERS, request, version, requester), ElectLeadersResponse)
