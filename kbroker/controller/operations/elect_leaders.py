"""The controller's side of ElectLeaders (key 43).

Elections as Kafka's ``ReplicationControlManager.electLeaders``, made by the controller's own
election (``controller.replication_control.elect_leader``: a ``PartitionChangeBuilder`` with the
preferred or unclean election, ELR included, as the controller's periodic elections). Preferred
(type 0, the only one at v0): a partition whose leader is already its first replica gets
ELECTION_NOT_NEEDED; otherwise the builder elects the first replica if it is registered, unfenced
and in the ISR, else keeps the current leader (then nothing changes: PREFERRED_LEADER_NOT_AVAILABLE),
else elects another ISR member or the last known ELR leader. Unclean (type 1, v1+): a partition that
has a leader gets ELECTION_NOT_NEEDED; otherwise the builder elects from the ISR, the last known ELR
leader, or failing those any unfenced replica (an unclean election), else
ELIGIBLE_LEADERS_NOT_AVAILABLE. Any other type
is INVALID_REQUEST for the whole request; so is POLICY_VIOLATION ("Unable to perform excessively
large batch operation.") for more than 10,000 elections in one request, nothing elected (Kafka's
bound on the records of one controller operation). A null partition list means every partition: every
topic is listed, but partitions that need no election are left out of its results; an empty list
does nothing. An election is a PartitionChangeRecord committed through the controller (the leader
epoch moves).
The broker's handler is kbroker/api/elect_leaders.py.
"""

from __future__ import annotations

from typing import Protocol

from kbroker.controller.operations.host import local_controller, operation_subject
from kbroker.controller.operations.reassignments import ReassignmentHost, replication_settings
from kbroker.controller.replication_control import ELECTION_PREFERRED, ELECTION_UNCLEAN, elect_leader
from kbroker.controller.user_op_limits import BATCH_TOO_LARGE_MESSAGE, MAX_RECORDS_PER_USER_OP
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.client import Requester
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse


class ElectionHost(ReassignmentHost, Protocol):
    """ElectLeaders as it uses the node: its controller, the authorizer, and the configuration of the
    cluster defaults (``reassignments.replication_settings``), as the reassignments do."""


TopicOut = ElectLeadersResponse.ReplicaElectionResult
PartOut = ElectLeadersResponse.ReplicaElectionResult.PartitionResult

PREFERRED, UNCLEAN = ELECTION_PREFERRED, ELECTION_UNCLEAN


async def elect_leaders(broker: ElectionHost, request: ElectLeadersRequest, version: int, requester: Requester | None = None) -> ElectLeadersResponse:
    """The controller's side of ElectLeaders (Kafka's ReplicationControlManager.electLeaders)."""
    # Kafka's ControllerApis: ALTER on the cluster, for the forwarded principal
    if not authorized(operation_subject(broker, requester), ALTER, CLUSTER, CLUSTER_NAME):
        return elect_leaders_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _elect_leaders(broker, request, version)


async def _elect_leaders(broker: ElectionHost, request: ElectLeadersRequest, version: int) -> ElectLeadersResponse:
    image = local_controller(broker).image  # the controller's own (kbroker/controller/quorum.py)
    election = request.election_type if version >= 1 else PREFERRED
    if election not in (PREFERRED, UNCLEAN):
        return _failed(request, ErrorCode.INVALID_REQUEST, f"Unknown election type {election}")
    settings = replication_settings(broker)
    records: list[mr.PartitionChangeRecord] = []
    results: list[TopicOut] = []
    if request.topic_partitions is None:
        for name in sorted(image.topics):
            out = TopicOut(topic=name, partition_result=[])
            for index in sorted(image.topics[name].partitions):
                error, message = elect_leader(image, name, index, election, records, settings)
                if error != ErrorCode.ELECTION_NOT_NEEDED:
                    out.partition_result.append(PartOut(partition_id=index, error_code=error, error_message=message))
            results.append(out)
    else:
        for t in request.topic_partitions:
            out = TopicOut(topic=t.topic, partition_result=[])
            results.append(out)
            for index in t.partitions:
                error, message = elect_leader(image, t.topic, index, election, records, settings)
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


def elect_leaders_error(request: ElectLeadersRequest, version: int, code: int) -> ElectLeadersResponse:
    R = ElectLeadersResponse
    E = R.ReplicaElectionResult
    return R(error_code=code, replica_election_results=[
        E(topic=topic.topic, partition_result=[
            E.PartitionResult(partition_id=index, error_code=code, error_message=None)
            for index in topic.partitions])
        for topic in request.topic_partitions or ()
    ])
