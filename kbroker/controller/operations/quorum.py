"""The controller's side of the metadata quorum's APIs a broker forwards: DescribeQuorum (55),
UnregisterBroker (64) and UnregisterController (94), as Kafka 4.4's ControllerApis answers them.

Each is what the controller listener runs for the API (kbroker/api/controller_apis.py,
kbroker/api/unregister_broker.py, kbroker/api/controller_registration.py) and, authorized for the
forwarded principal (CLUSTER DESCRIBE for DescribeQuorum, ALTER for the others, else
CLUSTER_AUTHORIZATION_FAILED), what an Envelope carrying it runs (the ``*_operation`` functions; the
brokers' handlers are kbroker/api/quorum_forwarding.py and kbroker/api/controller_registration.py).

- DescribeQuorum: answered by the leader as Kafka's ``KafkaRaftClient.handleDescribeQuorumRequest``
  (other nodes: NOT_LEADER_OR_FOLLOWER for the partition), voters and observers with their log end
  offsets and fetch times, and (v2) the controller endpoints;
- UnregisterBroker: the broker leaves every ISR and ELR and an UnregisterBrokerRecord is
  committed, as ReplicationControlManager.unregisterBroker; an unknown id gets
  BROKER_ID_NOT_REGISTERED, a controller that is not active NOT_CONTROLLER;
- UnregisterController: an UnregisterControllerRecord, as ``QuorumController.unregisterController``:
  the active controller cannot unregister itself (INVALID_REQUEST), the metadata.version must be at
  least 4.4-IV2 (level 33, UNSUPPORTED_VERSION), the id must be registered
  (CONTROLLER_ID_NOT_REGISTERED).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Protocol, TypeVar

from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import (
    Authorizing,
    ClusterControlling,
    ControllerHolder,
    local_controller,
    operation_subject,
)
from kbroker.metadata.client import Requester
from kbroker.metadata.features import METADATA_VERSION
from kbroker.metadata.image import METADATA_TOPIC
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, DESCRIBE, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.describe_quorum import (
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    ReplicaState,
)
from kbroker_protocol.messages.metadata_records import UnregisterControllerRecord
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse
from kbroker_protocol.messages.unregister_controller import (
    UnregisterControllerRequest,
    UnregisterControllerResponse,
)
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.raft.io import RaftDriver

R = TypeVar("R", bound=Message)


class QuorumNode(Protocol):
    """DescribeQuorum as it uses the node: its Raft driver (None: no quorum), its id and
    configuration (the controller endpoints it names)."""

    @property
    def config(self) -> BrokerConfig: ...

    @property
    def raft(self) -> RaftDriver | None: ...

    @property
    def node_id(self) -> int: ...


class UnregisteringNode(ControllerHolder, Protocol):
    """UnregisterController as it uses the node: its controller, and its id (an active controller
    cannot unregister itself)."""

    @property
    def node_id(self) -> int: ...


class DescribeQuorumHost(QuorumNode, Authorizing, Protocol):
    """DescribeQuorum as an Envelope or the controller listener runs it: what the answer reads, and
    the authorizer (DESCRIBE on the cluster)."""


class UnregisterBrokerHost(ClusterControlling, Authorizing, Protocol):
    """UnregisterBroker as an Envelope runs it: the cluster's control, and the authorizer (ALTER on
    the cluster, for the forwarded principal)."""


class UnregisterControllerHost(UnregisteringNode, Authorizing, Protocol):
    """UnregisterController as an Envelope or the controller listener runs it: what it uses, and
    the authorizer (ALTER on the cluster)."""

MV_CONTROLLER_UNREGISTRATION = 33  # IBP_4_4_IV2


def _active(broker: ControllerHolder) -> bool:
    controller = broker.controller
    return controller is not None and controller.is_active()


# -- DescribeQuorum ----------------------------------------------------------------------------


def voter_endpoints(broker: QuorumNode) -> dict[int, tuple[str, int]]:
    """Each voter's controller endpoint: the voter set's (a dynamic quorum) or the configured one."""
    raft = broker.raft
    assert raft is not None
    voters = raft.node.voters if raft.node is not None else raft.voters
    out = {v: raft.addresses[v] for v in voters if v in raft.addresses}
    if raft.port and broker.node_id in voters:
        out[broker.node_id] = (_advertised_host(broker), raft.port)
    return out


def _advertised_host(broker: QuorumNode) -> str:
    cfg = broker.config
    names = {e.listener for e in cfg.controller_listeners}
    for e in cfg.advertised_listeners:
        if e.listener in names and e.host:
            host: str = e.host
            return host
    assert broker.raft is not None
    host = broker.raft.host
    return "localhost" if host in ("", "0.0.0.0", "::") else host


async def describe_quorum(broker: QuorumNode, body: DescribeQuorumRequest) -> DescribeQuorumResponse:
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
             for v, (host, port) in sorted(voter_endpoints(broker).items())]
    return R(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC, partitions=[R.TopicData.PartitionData(
        partition_index=0, error_code=0, error_message=None, leader_id=node.leader_id, leader_epoch=node.epoch,
        high_watermark=node.high_watermark, current_voters=voters, observers=observers)])], nodes=nodes)


# -- UnregisterBroker ----------------------------------------------------------------------------


async def unregister_broker(broker: ClusterControlling, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    """The active controller's UnregisterBroker."""
    # (imported here: only a controller of a multi-node quorum serves this API; the single-node start does not load it)
    from kbroker.controller.cluster_runtime import is_active, now_ms, operation, write
    controller = local_controller(broker)
    if not is_active(controller):
        return UnregisterBrokerResponse(error_code=ErrorCode.NOT_CONTROLLER,
                                        error_message=ErrorCode.NOT_CONTROLLER.message)
    async with operation(broker) as cc:
        response, records = cc.unregister_broker(controller.image, request, now_ms())
        if records:
            try:
                await write(controller, records)
            except ControllerError as exc:
                return UnregisterBrokerResponse(error_code=exc.code, error_message=exc.message)
    return response


# -- UnregisterController --------------------------------------------------------------------------


async def unregister_controller(broker: UnregisteringNode, request: UnregisterControllerRequest) -> UnregisterControllerResponse:
    R = UnregisterControllerResponse
    if not _active(broker):
        return R(error_code=ErrorCode.NOT_CONTROLLER, error_message=None)
    controller = local_controller(broker)
    try:
        async with controller.exclusive():
            if request.controller_id == broker.node_id:
                return R(error_code=ErrorCode.INVALID_REQUEST,
                         error_message="Controller cannot unregister itself while it is active.")
            # the controller's own image (kbroker/controller/quorum.py), not the broker's
            if controller.image.features.get(METADATA_VERSION, 0) < MV_CONTROLLER_UNREGISTRATION:
                return R(error_code=ErrorCode.UNSUPPORTED_VERSION,
                         error_message="The current MetadataVersion is too old to support controller unregistration.")
            if request.controller_id not in controller.image.controllers:
                return R(error_code=ErrorCode.CONTROLLER_ID_NOT_REGISTERED,
                         error_message=f"Controller ID {request.controller_id} is not currently registered.")
            await controller.write([UnregisterControllerRecord(controller_id=request.controller_id)])
    except ControllerError as exc:
        return R(error_code=exc.code, error_message=exc.message)
    return R(error_code=ErrorCode.NONE, error_message=None)


# -- the operations: what an Envelope carrying each API runs ---------------------------------------


def _cluster_authorized(broker: Authorizing, requester_: Requester | None, operation: int) -> bool:
    """Kafka's ControllerApis ``authorizeClusterOperation``, for the forwarded principal."""
    return authorized(operation_subject(broker, requester_), operation, CLUSTER, CLUSTER_NAME)


async def describe_quorum_operation(broker: DescribeQuorumHost, request: DescribeQuorumRequest, version: int,
                                    requester_: Requester | None = None) -> DescribeQuorumResponse:
    if not _cluster_authorized(broker, requester_, DESCRIBE):
        return describe_quorum_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await describe_quorum(broker, request)


async def unregister_broker_operation(broker: UnregisterBrokerHost, request: UnregisterBrokerRequest, version: int,
                                      requester_: Requester | None = None) -> UnregisterBrokerResponse:
    if not _cluster_authorized(broker, requester_, ALTER):
        return unregister_broker_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await unregister_broker(broker, request)


async def unregister_controller_operation(broker: UnregisterControllerHost, request: UnregisterControllerRequest, version: int,
                                          requester_: Requester | None = None) -> UnregisterControllerResponse:
    if not _cluster_authorized(broker, requester_, ALTER):
        return UnregisterControllerResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None)
    return await unregister_controller(broker, request)


# -- the error responses (Kafka's getErrorResponse of each request) --------------------------------


def describe_quorum_error(request: DescribeQuorumRequest, version: int, code: int) -> DescribeQuorumResponse:
    # DescribeQuorumRequest.getTopLevelErrorResponse: the code and its default message (v2+), no topics
    return DescribeQuorumResponse(error_code=code, error_message=default_message(code), topics=[])


def unregister_broker_error(request: UnregisterBrokerRequest, version: int, code: int) -> UnregisterBrokerResponse:
    # ControllerApis/KafkaApis: UnregisterBrokerResponseData with the code, no message
    return UnregisterBrokerResponse(error_code=code, error_message=None)


def unregister_controller_error(request: UnregisterControllerRequest, version: int, code: int
                                ) -> UnregisterControllerResponse:
    return UnregisterControllerResponse(error_code=code, error_message=None)
