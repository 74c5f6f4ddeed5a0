"""The controller's side of AlterPartitionReassignments (key 45) and ListPartitionReassignments
(key 46), as Kafka 4.4's ControllerApis and ``ReplicationControlManager`` (the decisions:
kbroker.controller.reassignment).

Each runs one at a time with the controller's other operations, authorized for the forwarded
principal (ALTER, or DESCRIBE for the list, on the cluster, else CLUSTER_AUTHORIZATION_FAILED for
the whole request). The brokers' handlers (and the controller listener's) are
kbroker/api/alter_partition_reassignments.py and kbroker/api/list_partition_reassignments.py; the
error responses of both requests are here, as the operations answer with them.

They use of the node only :class:`ReassignmentHost` (its controller, configuration and authorizer):
the handlers that run them on the controller listener are typed on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import ControllerHolder, operation_subject
from kbroker.controller.reassignment import alter_partition_reassignments, list_partition_reassignments
from kbroker.controller.replication_control import ReplicationSettings
from kbroker.metadata.client import Requester
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, DESCRIBE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)
from kbroker_protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.security.acls import Authorizer


class ReassignmentListing(ControllerHolder, Protocol):
    """The node as ListPartitionReassignments uses it: its controller (where it runs) and the
    authorizer the forwarded principal is checked with."""

    @property
    def authorizer(self) -> Authorizer: ...


class ReassignmentHost(ReassignmentListing, Protocol):
    """The node as AlterPartitionReassignments uses it: those, and its configuration (the cluster
    defaults when it runs no ClusterControl)."""

    @property
    def config(self) -> BrokerConfig: ...


def replication_settings(broker: ReassignmentHost) -> ReplicationSettings:
    """The controller's cluster defaults (its ClusterControl's when the node runs one)."""
    cc = None if broker.controller is None else broker.controller.cluster_control  # (cluster_runtime's)
    if cc is not None:
        return cc.settings
    return ReplicationSettings(
        min_insync_replicas=broker.config["min.insync.replicas"],
        unclean_leader_election_enable=broker.config["unclean.leader.election.enable"],
    )


async def alter_partition_reassignments_operation(broker: ReassignmentHost, request: AlterPartitionReassignmentsRequest, version: int,
                                                  requester: Requester | None = None) -> AlterPartitionReassignmentsResponse:
    """The controller's side (Kafka's ControllerApis.handleAlterPartitionReassignments)."""
    if not authorized(operation_subject(broker, requester), ALTER, CLUSTER, CLUSTER_NAME):
        return alter_partition_reassignments_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    controller = broker.controller
    assert controller is not None
    async with controller.exclusive():
        response, records = alter_partition_reassignments(controller.image, request, replication_settings(broker))
        if records:
            await controller.write(records)
    return response


async def list_partition_reassignments_operation(broker: ReassignmentListing, request: ListPartitionReassignmentsRequest, version: int,
                                                 requester: Requester | None = None) -> ListPartitionReassignmentsResponse:
    """The controller's side (Kafka's ControllerApis.handleListPartitionReassignments)."""
    if not authorized(operation_subject(broker, requester), DESCRIBE, CLUSTER, CLUSTER_NAME):
        return list_partition_reassignments_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    controller = broker.controller
    assert controller is not None
    async with controller.exclusive():
        return list_partition_reassignments(controller.image, request.topics)


# -- the error responses (Kafka's getErrorResponse of each request) --------------------------------


def alter_partition_reassignments_error(request: AlterPartitionReassignmentsRequest, version: int, code: int) -> AlterPartitionReassignmentsResponse:
    # AlterPartitionReassignmentsRequest.getErrorResponse: the code at the top and on every
    # partition (ApiError.fromThrowable: no message for an exception carrying the default one)
    R = AlterPartitionReassignmentsResponse
    T = R.ReassignableTopicResponse
    message = None
    return R(error_code=code, error_message=message, responses=[
        T(name=topic.name, partitions=[
            T.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=code, error_message=message)
            for p in topic.partitions])
        for topic in request.topics
    ])


def list_partition_reassignments_error(request: ListPartitionReassignmentsRequest, version: int, code: int) -> ListPartitionReassignmentsResponse:
    # ListPartitionReassignmentsRequest.getErrorResponse: each named partition echoed, no replicas
    R = ListPartitionReassignmentsResponse
    T = R.OngoingTopicReassignment
    return R(error_code=code, error_message=None, topics=[
        T(name=topic.name, partitions=[T.OngoingPartitionReassignment(partition_index=index)
                                       for index in topic.partition_indexes])
        for topic in request.topics or ()
    ])
