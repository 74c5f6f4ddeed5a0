"""The APIs a controller serves on its controller listener besides the Raft RPCs.

The Raft RPCs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot) are the
``RaftDriver``'s own; ``install`` adds Kafka's controller APIs to the same listener (one port per
listener, as Kafka's ControllerServer):

- DescribeQuorum (55), answered by the leader as Kafka's ``KafkaRaftClient.handleDescribeQuorumRequest``
  (other nodes: NOT_LEADER_OR_FOLLOWER for the partition), voters and observers with their log end
  offsets and fetch times, and (v2) the controller endpoints;
- DescribeCluster (60) with EndpointType 2 (controllers): the voters and the active controller, as
  Kafka's controllers answer ``--bootstrap-controller`` clients;
- cluster-control's controller-listener handlers: BrokerRegistration (62), BrokerHeartbeat (63),
  AlterPartition (56), UnregisterBroker (64);
- controller-seam's Envelope (58) and AllocateProducerIds (67).

A request whose handling raises (one of these handlers, or the Raft core on a Raft RPC) is answered
with its API's error response (:mod:`kbroker.api.error_response`: UNKNOWN_SERVER_ERROR, or a
controller refusal's own code) and the connection stays open, as Kafka's ``ControllerApis``
(``requestHelper.handleError``) does.
"""

from __future__ import annotations

import logging
import time
import uuid

from kbroker.api.context import RaftNodeServices
from kbroker.api.controller_listener import install_controller_handlers
from kbroker.api.error_response import error_response
from kbroker.raft.wire import METADATA_TOPIC
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kbroker_protocol.messages.describe_quorum import (
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    ReplicaState,
)
from kbroker_protocol.messages.request_header import RequestHeader

Broker = RaftNodeServices  # (kbroker.broker.Broker: the API layer stays below the broker)

log = logging.getLogger(__name__)

DESCRIBE_QUORUM, DESCRIBE_CLUSTER = 55, 60
ENVELOPE, ALLOCATE_PRODUCER_IDS = 58, 67
CONTROLLER_ENDPOINT_TYPE = 2


def install(broker: Broker) -> None:
    raft = broker.raft
    assert raft is not None
    # a request whose handling fails is answered with its error response, the connection kept (Kafka's
    # ControllerApis.handle: requestHelper.handleError -> request.getErrorResponse(e))
    raft.error_responder = error_response
    raft.handlers[DESCRIBE_QUORUM] = lambda header, body: describe_quorum(broker, header, body)
    raft.handlers[DESCRIBE_CLUSTER] = lambda header, body: describe_cluster(broker, header, body)
    # cluster-control's BrokerRegistration (62), BrokerHeartbeat (63), AlterPartition (56),
    # UnregisterBroker (64)
    install_controller_handlers(broker, raft.handlers)
    # controller-seam's Envelope (58) and AllocateProducerIds (67): forwarded admin requests and
    # producer-id blocks, run on this node's controller when it is the active one
    from kbroker.api.envelope import allocate_producer_ids, envelope

    raft.handlers[ENVELOPE] = lambda header, body: envelope(broker, body, f"node {header.client_id}")
    raft.handlers[ALLOCATE_PRODUCER_IDS] = lambda header, body: allocate_producer_ids(broker, body)
    # KIP-853 voter changes: AddRaftVoter (80), RemoveRaftVoter (81), UpdateRaftVoter (82)
    from kbroker.api.raft_voters import install as install_voter_changes

    install_voter_changes(broker)
    # ControllerRegistration (70) and UnregisterController (94); this controller's own registration
    # is started by the node (kbroker.broker.Broker._serve_controller_apis)
    from kbroker.api.controller_registration import install as install_registrations

    install_registrations(broker)


def _voter_endpoints(broker: Broker) -> dict[int, tuple[str, int]]:
    """Each voter's controller endpoint: the voter set's (a dynamic quorum) or the configured one."""
    raft = broker.raft
    assert raft is not None
    voters = raft.node.voters if raft.node is not None else raft.voters
    out = {v: raft.addresses[v] for v in voters if v in raft.addresses}
    if raft.port and broker.node_id in voters:
        out[broker.node_id] = (_advertised_host(broker), raft.port)
    return out


def _advertised_host(broker: Broker) -> str:
    cfg = broker.config
    names = {e.listener for e in cfg.controller_listeners}
    for e in cfg.advertised_listeners:
        if e.listener in names and e.host:
            host: str = e.host
            return host
    assert broker.raft is not None
    host = broker.raft.host
    return "localhost" if host in ("", "0.0.0.0", "::") else host


async def describe_quorum(broker: Broker, header: object, body: DescribeQuorumRequest) -> DescribeQuorumResponse:
    raft = broker.raft
    assert raft is not None and raft.node is not None
    node = raft.node
    R = DescribeQuorumResponse
    topics = [t for t in (body.topics or [])]
    if len(topics) != 1 or topics[0].topic_name != METADATA_TOPIC or len(topics[0].partitions) != 1 \
            or topics[0].partitions[0].partition_index != 0:
        return R(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), topics=[])
    if not raft.is_leader:
        return R(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC, partitions=[R.TopicData.PartitionData(
            partition_index=0, error_code=int(ErrorCode.NOT_LEADER_OR_FOLLOWER),
            error_message=ErrorCode.NOT_LEADER_OR_FOLLOWER.name, leader_id=node.leader_id, leader_epoch=node.epoch,
            high_watermark=-1, current_voters=[], observers=[])])], nodes=[])
    now_ms = int(time.time() * 1000)
    driver_now = raft.now_ms()
    zero = uuid.UUID(int=0)

    def wall(t: int | None) -> int:
        return -1 if t is None else now_ms - (driver_now - t)

    voter_set = node.voter_set

    def directory(v: int) -> uuid.UUID:
        info = voter_set.get(v)
        return info.directory_id if info is not None and info.directory_id is not None else zero

    voters = []
    for v in sorted(node.voters):
        if v == broker.node_id:
            voters.append(ReplicaState(replica_id=v, replica_directory_id=directory(v),
                                         log_end_offset=node.log.end_offset,
                                         last_fetch_timestamp=now_ms, last_caught_up_timestamp=now_ms))
        else:
            end = node.voter_end_offsets.get(v, -1)
            fetched = node.voter_last_fetch_times.get(v)
            caught_up = fetched if end >= node.high_watermark and end >= 0 else None
            voters.append(ReplicaState(replica_id=v, replica_directory_id=directory(v), log_end_offset=end,
                                         last_fetch_timestamp=wall(fetched) if end >= 0 else -1,
                                         last_caught_up_timestamp=wall(caught_up)))
    # observers: what the leader's core tracked this epoch (with their directory ids), else the
    # driver's record of fetches
    tracked = node.tracked_observers
    observers = []
    for o, (offset, t) in sorted(raft.observers.items()):
        if o in node.voters or o < 0:
            continue
        state = tracked.get(o)
        if state is not None and state.last_fetch >= 0:
            observers.append(ReplicaState(
                replica_id=o, replica_directory_id=state.directory_id or zero, log_end_offset=state.end_offset,
                last_fetch_timestamp=wall(state.last_fetch),
                last_caught_up_timestamp=wall(state.last_caught_up) if state.last_caught_up >= 0 else -1))
        else:
            observers.append(ReplicaState(
                replica_id=o, replica_directory_id=zero, log_end_offset=offset, last_fetch_timestamp=wall(t),
                last_caught_up_timestamp=wall(t) if offset >= node.high_watermark else -1))
    names = [e.listener for e in broker.config.controller_listeners] or [raft.listener_name]
    nodes = [R.Node(node_id=v, listeners=[R.Node.Listener(name=names[0], host=host, port=port)])
             for v, (host, port) in sorted(_voter_endpoints(broker).items())]
    return R(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC, partitions=[R.TopicData.PartitionData(
        partition_index=0, error_code=0, error_message=None, leader_id=node.leader_id, leader_epoch=node.epoch,
        high_watermark=node.high_watermark, current_voters=voters, observers=observers)])], nodes=nodes)


async def describe_cluster(broker: Broker, header: RequestHeader, body: DescribeClusterRequest) -> DescribeClusterResponse:
    R = DescribeClusterResponse
    version = header.request_api_version
    endpoint_type = body.endpoint_type if version >= 1 else 1
    if endpoint_type != CONTROLLER_ENDPOINT_TYPE:
        return R(error_code=int(ErrorCode.UNSUPPORTED_ENDPOINT_TYPE),
                 error_message="The controller only supports the CONTROLLER endpoint type.",
                 endpoint_type=endpoint_type, cluster_id=broker.cluster_id, controller_id=-1, brokers=[],
                 cluster_authorized_operations=-2147483648)
    brokers = [R.DescribeClusterBroker(broker_id=v, host=host, port=port, rack=None)
               for v, (host, port) in sorted(_voter_endpoints(broker).items())]
    return R(error_code=0, error_message=None, endpoint_type=CONTROLLER_ENDPOINT_TYPE, cluster_id=broker.cluster_id,
             controller_id=broker.active_controller_id, brokers=brokers,
             cluster_authorized_operations=-2147483648)
