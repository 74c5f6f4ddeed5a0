"""The APIs a controller serves on its controller listener besides the Raft RPCs.

The Raft RPCs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot) are the
``RaftDriver``'s own; ``install`` adds Kafka's controller APIs to the same listener (one port per
listener, as Kafka's ControllerServer):

- DescribeQuorum (55), answered by the leader as Kafka's ``KafkaRaftClient.handleDescribeQuorumRequest``
  (kbroker/controller/operations/quorum.py);
- DescribeCluster (60) with EndpointType 2 (controllers): the voters and the active controller, as
  Kafka's controllers answer ``--bootstrap-controller`` clients;
- cluster-control's controller-listener handlers: BrokerRegistration (62), BrokerHeartbeat (63),
  AlterPartition (56), UnregisterBroker (64);
- controller-seam's Envelope (58) and AllocateProducerIds (67).

Each is authorized for the connection's principal as Kafka's ``ControllerApis`` does
(``kbroker.api.controller_listener.connection_authorized``): DescribeQuorum needs DESCRIBE on the
cluster, ListPartitionReassignments DESCRIBE, DescribeCluster, UnregisterBroker,
UnregisterController, AddRaftVoter, RemoveRaftVoter and AlterPartitionReassignments ALTER; the
Raft RPCs (:func:`raft_rpc_refusal`, the RaftDriver's ``raft_gate``, checked before the Raft client
sees them), BrokerRegistration, BrokerHeartbeat, AlterPartition, AssignReplicasToDirs,
UpdateRaftVoter, AllocateProducerIds, ControllerRegistration and Envelope CLUSTER_ACTION (for an
Envelope, the forwarding node's principal, before the Envelope is unwrapped). Refused: the
request's error response with CLUSTER_AUTHORIZATION_FAILED (Kafka's ``getErrorResponse`` of the
ClusterAuthorizationException). The brokers and controllers pass as super users (``super.users``,
as Kafka requires of a controller's principal: the Raft RPCs are authorized before any ACL of the
metadata log can be read) or with CLUSTER_ACTION granted. ApiVersions is served to anyone.

A request whose handling raises (one of these handlers, or the Raft core on a Raft RPC) is answered
with its API's error response (:mod:`kbroker.api.error_response`: UNKNOWN_SERVER_ERROR, or a
controller refusal's own code) and the connection stays open, as Kafka's ``ControllerApis``
(``requestHelper.handleError``) does.
"""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

from kbroker.api.controller_listener import connection_authorized, install_controller_handlers
from kbroker.api.controller_registration import RegistrationApis
from kbroker.api.error_response import builder_for, error_response, error_response_as
from kbroker.api.raft_voters import VoterChangesApis
from kbroker.controller.operations.host import Authorizing
from kbroker.controller.operations.local import AllOperationsHost
from kbroker.controller.operations.quorum import (
    DescribeQuorumHost,
    describe_quorum,
    describe_quorum_error,
    voter_endpoints,
)
from kbroker.security.acls import ALTER, CLUSTER_ACTION, DESCRIBE
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsResponse
from kbroker_protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kbroker_protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kbroker_protocol.messages.request_header import RequestHeader
from kbroker_protocol.primitives import Message


class ClusterDescribing(DescribeQuorumHost, Protocol):
    """DescribeCluster on the controller listener as it uses the node: the voters' endpoints (as
    DescribeQuorum reads them), the cluster id and the active controller's id."""

    @property
    def cluster_id(self) -> str: ...

    @property
    def active_controller_id(self) -> int: ...  # the KRaft leader, as clients see the controller


class ControllerListenerNode(ClusterDescribing, AllOperationsHost, VoterChangesApis, RegistrationApis, Protocol):
    """The node :func:`install` serves the controller listener of: the intersection of what the
    handlers it adds use (the Raft driver whose handler table it fills among them). Envelope runs
    any forwarded operation (``AllOperationsHost``, which also covers AllocateProducerIds); the
    voter changes add the configuration (``raft_voters.VoterChangesApis``); the handlers of the registry's controller listener
    are given the node untyped (``install_controller_handlers``), and
    ``kbroker.wiring.handler_services`` checks that the broker provides what each of them uses."""


log = logging.getLogger(__name__)
R = TypeVar("R", bound=Message)

DESCRIBE_QUORUM, DESCRIBE_CLUSTER = 55, 60
ENVELOPE, ALLOCATE_PRODUCER_IDS = 58, 67
CONTROLLER_ENDPOINT_TYPE = 2


def install(broker: ControllerListenerNode) -> None:
    raft = broker.raft
    assert raft is not None
    # a request whose handling fails is answered with its error response, the connection kept (Kafka's
    # ControllerApis.handle: requestHelper.handleError -> request.getErrorResponse(e))
    raft.error_responder = error_response
    # the Raft RPCs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot): CLUSTER_ACTION
    raft.raft_gate = lambda api_key, version, body: raft_rpc_refusal(broker, api_key, version, body)
    raft.handlers[DESCRIBE_QUORUM] = lambda header, body: describe_quorum_on_controller(broker, header, body)
    raft.handlers[DESCRIBE_CLUSTER] = lambda header, body: describe_cluster(broker, header, body)
    # cluster-control's BrokerRegistration (62), BrokerHeartbeat (63), AlterPartition (56),
    # UnregisterBroker (64)
    install_controller_handlers(broker, raft.handlers)
    # controller-seam's Envelope (58) and AllocateProducerIds (67): forwarded admin requests and
    # producer-id blocks, run on this node's controller when it is the active one
    from kbroker.api.envelope import allocate_producer_ids

    raft.handlers[ENVELOPE] = lambda header, body: envelope_on_controller(broker, header, body)
    raft.handlers[ALLOCATE_PRODUCER_IDS] = lambda header, body: allocate_producer_ids(broker, body) \
        if connection_authorized(broker, CLUSTER_ACTION) else _refused(AllocateProducerIdsResponse, header, body)
    # KIP-853 voter changes: AddRaftVoter (80), RemoveRaftVoter (81), UpdateRaftVoter (82)
    from kbroker.api.raft_voters import install as install_voter_changes

    install_voter_changes(broker)
    # ControllerRegistration (70) and UnregisterController (94); this controller's own registration
    # is started by the node (kbroker.broker.Broker._serve_controller_apis)
    from kbroker.api.controller_registration import install as install_registrations

    install_registrations(broker)


def raft_rpc_refusal(broker: Authorizing, api_key: int, version: int, body: Message) -> Message | None:
    """A Raft RPC (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch of the metadata log, FetchSnapshot)
    needs CLUSTER_ACTION on the cluster for the connection's principal, checked before the Raft
    client sees it (Kafka's ``handleVote`` and the others: ``authorizeClusterOperation(request,
    CLUSTER_ACTION)``, whose ClusterAuthorizationException ``handle`` answers with the request's
    ``getErrorResponse``): refused, the request's error response with CLUSTER_AUTHORIZATION_FAILED
    (the top-level code; a Fetch below v13 also names it in every partition); None when allowed."""
    if connection_authorized(broker, CLUSTER_ACTION):
        return None
    builder = builder_for(api_key)
    assert builder is not None  # (each Raft RPC has one: error_response.TOP_LEVEL_ONLY, kbroker.api.fetch)
    return builder(body, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))


async def _refused(response_type: type[R], header: RequestHeader, body: Message) -> R:
    """The request's error response with CLUSTER_AUTHORIZATION_FAILED (its ``getErrorResponse``)."""
    return error_response_as(response_type, body, header.request_api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))


async def describe_quorum_on_controller(broker: DescribeQuorumHost, header: RequestHeader, body: DescribeQuorumRequest
                                        ) -> DescribeQuorumResponse:
    """DescribeQuorum sent to the controller listener: DESCRIBE on the cluster for the connection's
    principal first (Kafka's ``handleDescribeQuorum``: ``authorizeClusterOperation(request,
    DESCRIBE)``; refused: the request's error response, CLUSTER_AUTHORIZATION_FAILED at the top)."""
    if not connection_authorized(broker, DESCRIBE):
        return describe_quorum_error(body, header.request_api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await describe_quorum(broker, body)


async def envelope_on_controller(broker: AllOperationsHost, header: RequestHeader, body: EnvelopeRequest) -> EnvelopeResponse:
    """An Envelope sent to the controller listener: the connection that sends it (the forwarding
    broker's principal, not the one it carries) needs CLUSTER_ACTION on the cluster before anything
    is unwrapped, as Kafka's ``handleEnvelopeRequest``; refused: the Envelope's own error,
    CLUSTER_AUTHORIZATION_FAILED, with no response data (``EnvelopeRequest.getErrorResponse``)."""
    from kbroker.api.envelope import envelope

    peer = f"node {header.client_id}"
    if not connection_authorized(broker, CLUSTER_ACTION):
        log.info("envelope from %s refused: no CLUSTER_ACTION on the cluster", peer)
        return EnvelopeResponse(response_data=None, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    return await envelope(broker, body, peer)


async def describe_cluster(broker: ClusterDescribing, header: RequestHeader, body: DescribeClusterRequest) -> DescribeClusterResponse:
    R = DescribeClusterResponse
    version = header.request_api_version
    # Kafka's handleDescribeCluster: unlike on a broker, ALTER on the cluster (refused: the request's
    # error response, CLUSTER_AUTHORIZATION_FAILED), before the endpoint type is looked at
    if not connection_authorized(broker, ALTER):
        return error_response_as(R, body, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    endpoint_type = body.endpoint_type if version >= 1 else 1
    if endpoint_type != CONTROLLER_ENDPOINT_TYPE:
        return R(error_code=int(ErrorCode.UNSUPPORTED_ENDPOINT_TYPE),
                 error_message="The controller only supports the CONTROLLER endpoint type.",
                 endpoint_type=endpoint_type, cluster_id=broker.cluster_id, controller_id=-1, brokers=[],
                 cluster_authorized_operations=-2147483648)
    brokers = [R.DescribeClusterBroker(broker_id=v, host=host, port=port, rack=None)
               for v, (host, port) in sorted(voter_endpoints(broker).items())]
    return R(error_code=0, error_message=None, endpoint_type=CONTROLLER_ENDPOINT_TYPE, cluster_id=broker.cluster_id,
             controller_id=broker.active_controller_id, brokers=brokers,
             cluster_authorized_operations=-2147483648)
