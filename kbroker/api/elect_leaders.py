"""ElectLeaders (key 43), v0-2.

Elections as Kafka's ``ReplicationControlManager.electLeaders``. Preferred (type 0, the only one
at v0): a partition whose leader is already its first replica gets ELECTION_NOT_NEEDED; otherwise
the first replica is elected if it is registered, unfenced and in the ISR, else
PREFERRED_LEADER_NOT_AVAILABLE. Unclean (type 1, v1+): a partition that has a leader gets
ELECTION_NOT_NEEDED; otherwise the first unfenced ISR member is elected, or failing that the first
unfenced replica (which becomes the whole ISR), else ELIGIBLE_LEADERS_NOT_AVAILABLE. Any other type
is INVALID_REQUEST for the whole request; so is POLICY_VIOLATION ("Unable to perform excessively
large batch operation.") for more than 10,000 elections in one request, nothing elected (Kafka's
bound on the records of one controller operation). A null partition list means every partition: every
topic is listed, but partitions that need no election are left out of its results; an empty list
does nothing. An election is a PartitionChangeRecord committed through the controller (the leader
epoch moves).
v1 adds the top-level error code, v2 is flexible. The handler sends the request to the controller
(``ctx.broker.controller_client``); :func:`elect_leaders` is the controller's side.
"""

from __future__ import annotations

from kbroker.api.authorization import operation_subject
from kbroker.api.context import BrokerServices, RequestContext, local_controller, requester
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import api
from kbroker.controller import metadata_records as mr
from kbroker.controller.client import ELECT_LEADERS, Requester, controller_operation
from kbroker.controller.image import NO_LEADER, MetadataImage
from kbroker.controller.user_op_limits import BATCH_TOO_LARGE_MESSAGE, MAX_RECORDS_PER_USER_OP
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse

TopicOut = ElectLeadersResponse.ReplicaElectionResult
PartOut = ElectLeadersResponse.ReplicaElectionResult.PartitionResult

PREFERRED, UNCLEAN = 0, 1
LEADER_RECOVERING = 1


def _active(image: MetadataImage, broker_id: int) -> bool:
    reg = image.brokers.get(broker_id)
    return reg is not None and not reg.fenced


def _elect(image: MetadataImage, topic_name: str, index: int, election: int,
           records: list[mr.PartitionChangeRecord]) -> tuple[ErrorCode, str | None]:
    topic = image.topic(topic_name)
    if topic is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {topic_name}"
    state = topic.partitions.get(index)
    if state is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic_name}-{index}"
    preferred = state.replicas[0] if state.replicas else NO_LEADER
    if election == PREFERRED:
        if state.leader == preferred:
            return ErrorCode.ELECTION_NOT_NEEDED, ErrorCode.ELECTION_NOT_NEEDED.message
        if preferred == NO_LEADER or preferred not in state.isr or not _active(image, preferred):
            return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE.message
        records.append(mr.PartitionChangeRecord(partition_id=index, topic_id=topic.topic_id, leader=preferred))
        return ErrorCode.NONE, None
    if state.leader != NO_LEADER:
        return ErrorCode.ELECTION_NOT_NEEDED, ErrorCode.ELECTION_NOT_NEEDED.message
    in_sync = [b for b in state.isr if _active(image, b)]
    if in_sync:
        records.append(mr.PartitionChangeRecord(partition_id=index, topic_id=topic.topic_id, leader=in_sync[0]))
        return ErrorCode.NONE, None
    alive = [b for b in state.replicas if _active(image, b)]
    if not alive:
        return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE.message
    records.append(mr.PartitionChangeRecord(partition_id=index, topic_id=topic.topic_id, leader=alive[0],
                                            isr=[alive[0]], leader_recovery_state=LEADER_RECOVERING))
    return ErrorCode.NONE, None


@api(43, 0, 2)
async def handle_elect_leaders(ctx: RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse:
    return await ctx.broker.controller_client.elect_leaders(request, ctx.api_version, requester(ctx))


@controller_operation(ELECT_LEADERS)
async def elect_leaders(broker: BrokerServices, request: ElectLeadersRequest, version: int, requester: Requester | None = None) -> ElectLeadersResponse:
    """The controller's side of ElectLeaders (Kafka's ReplicationControlManager.electLeaders)."""
    # Kafka's ControllerApis: ALTER on the cluster, for the forwarded principal
    if not authorized(operation_subject(broker, requester), ALTER, CLUSTER, CLUSTER_NAME):
        return error_response_as(ElectLeadersResponse, request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _elect_leaders(broker, request, version)


async def _elect_leaders(broker: BrokerServices, request: ElectLeadersRequest, version: int) -> ElectLeadersResponse:
    image = broker.image
    election = request.election_type if version >= 1 else PREFERRED
    if election not in (PREFERRED, UNCLEAN):
        return _failed(request, ErrorCode.INVALID_REQUEST, f"Unknown election type {election}")
    records: list[mr.PartitionChangeRecord] = []
    results: list[TopicOut] = []
    if request.topic_partitions is None:
        for name in sorted(image.topics):
            out = TopicOut(topic=name, partition_result=[])
            for index in sorted(image.topics[name].partitions):
                error, message = _elect(image, name, index, election, records)
                if error != ErrorCode.ELECTION_NOT_NEEDED:
                    out.partition_result.append(PartOut(partition_id=index, error_code=error, error_message=message))
            results.append(out)
    else:
        for t in request.topic_partitions:
            out = TopicOut(topic=t.topic, partition_result=[])
            results.append(out)
            for index in t.partitions:
                error, message = _elect(image, t.topic, index, election, records)
                out.partition_result.append(PartOut(partition_id=index, error_code=error, error_message=message))
    if len(records) > MAX_RECORDS_PER_USER_OP:  # Kafka's bounded record list: the whole operation fails
        return _failed(request, ErrorCode.POLICY_VIOLATION, BATCH_TOO_LARGE_MESSAGE)
    if records:
        await local_controller(broker).write(records)
    return ElectLeadersResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, replica_election_results=results)


def _failed(request: ElectLeadersRequest, code: ErrorCode, message: str) -> ElectLeadersResponse:
    """The whole request failed (Kafka's ElectLeadersRequest.getErrorResponse): the top-level
    error, and each partition the request names with it (none for a null partition list)."""
    return ElectLeadersResponse(
        throttle_time_ms=0, error_code=code,
        replica_election_results=[
            TopicOut(topic=t.topic, partition_result=[
                PartOut(partition_id=p, error_code=code, error_message=message) for p in t.partitions
            ])
            for t in request.topic_partitions or []
        ],
    )


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(43)
def _elect_leaders_error(request: ElectLeadersRequest, version: int, code: int) -> ElectLeadersResponse:
    R = ElectLeadersResponse
    E = R.ReplicaElectionResult
    return R(error_code=code, replica_election_results=[
        E(topic=topic.topic, partition_result=[
            E.PartitionResult(partition_id=index, error_code=code, error_message=None)
            for index in topic.partitions])
        for topic in request.topic_partitions or ()
    ])
