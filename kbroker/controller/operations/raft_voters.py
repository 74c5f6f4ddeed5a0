"""The controller's side of AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82): KIP-853
voter changes.

On the controller listener (kbroker/api/raft_voters.py's ``install``) they are answered as Kafka
4.4's ``KafkaRaftClient.handleAddVoterRequest`` / ``handleRemoveVoterRequest`` /
``handleUpdateVoterRequest`` answer them, in their order: a cluster id that is given and not this
cluster's: INCONSISTENT_CLUSTER_ID (with Kafka's message); a node that is not the leader:
NOT_LEADER_OR_FOLLOWER; no valid voter (negative id, no directory id): INVALID_REQUEST; no endpoint
on the controller listener: INVALID_REQUEST; then the Raft core's checks (``RaftNode.add_voter`` and
the others: one change at a time, the leader's epoch and the previous change committed,
kraft.version 1, DUPLICATE_VOTER, VOTER_NOT_FOUND, a new voter caught up). Nothing is written unless
every check passes. AddRaftVoter and RemoveRaftVoter forwarded from a broker listener are
answered by the ``*_operation`` functions, which authorize the forwarded principal (CLUSTER ALTER)
first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol, TypeVar

from kbroker.controller.operations.host import Authorizing, operation_subject
from kbroker.controller.operations.update_features import Configured, metadata_directory_id
from kbroker.metadata.client import Requester
from kbroker.raft.io import RaftDriver
from kbroker.raft.node import VoterChange
from kbroker.raft.voters import Voter
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kbroker_protocol.messages.remove_raft_voter import RemoveRaftVoterRequest, RemoveRaftVoterResponse
from kbroker_protocol.messages.update_raft_voter import UpdateRaftVoterRequest, UpdateRaftVoterResponse

UPDATE_RAFT_VOTER = 82
ZERO = uuid.UUID(int=0)
_Listener = AddRaftVoterRequest.Listener | UpdateRaftVoterRequest.Listener
_VoterResponse = TypeVar("_VoterResponse", AddRaftVoterResponse, RemoveRaftVoterResponse)


class VoterChangeNode(Protocol):
    """AddRaftVoter and RemoveRaftVoter as they use the node: its Raft driver (None: no quorum)
    and its cluster id."""

    @property
    def raft(self) -> RaftDriver | None: ...

    @property
    def cluster_id(self) -> str: ...


class VoterUpdateNode(Configured, VoterChangeNode, Protocol):
    """UpdateRaftVoter as it uses the node: those, and its configuration (the metadata log
    directory's id, for a static quorum's voter)."""


class VotersHost(VoterChangeNode, Authorizing, Protocol):
    """The forwarded voter changes (AddRaftVoter, RemoveRaftVoter) as an Envelope runs them: what
    they use, and the authorizer the forwarded principal is checked with."""


def _cluster_mismatch(broker: VoterChangeNode, cluster_id: str | None) -> str | None:
    if cluster_id is None or cluster_id == broker.cluster_id:
        return None
    return f'The given id "{cluster_id}" doesn\'t match the cluster id "{broker.cluster_id}"'


def _answer(cls: type[_VoterResponse], change: VoterChange) -> _VoterResponse:
    return cls(error_code=change.error, error_message=change.message)


def _listener(raft: RaftDriver) -> str:
    return raft.listener_name


def _endpoints(listeners: Iterable[_Listener] | None) -> tuple[tuple[str, str, int], ...]:
    return tuple((item.name, item.host, item.port) for item in listeners or ())


def _format_endpoints(endpoints: tuple[tuple[str, str, int], ...]) -> str:
    inner = ", ".join(f"ListenerName({name})={host}:{port}" for name, host, port in endpoints)
    return f"Endpoints(endpoints={{{inner}}})"


def _voter_request_refusal(broker: VoterChangeNode, request: AddRaftVoterRequest | RemoveRaftVoterRequest,
                           response: type[_VoterResponse], what: str
                           ) -> _VoterResponse | None:
    """The answer to an AddRaftVoter or RemoveRaftVoter request this node refuses before the
    change, as Kafka's: another cluster's id, not the Raft leader, no valid voter named; None
    when it may go ahead."""
    mismatch = _cluster_mismatch(broker, request.cluster_id)
    if mismatch is not None:
        return response(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID, error_message=mismatch)
    if broker.raft is None or not broker.raft.is_leader:
        return response(error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER)
    directory = request.voter_directory_id
    if request.voter_id < 0 or directory is None or directory == ZERO:
        return response(error_code=ErrorCode.INVALID_REQUEST,
                        error_message=f"{what} voter request didn't include a valid voter")
    return None


async def add_raft_voter(broker: VoterChangeNode, request: AddRaftVoterRequest) -> AddRaftVoterResponse:
    refused = _voter_request_refusal(broker, request, AddRaftVoterResponse, "Add")
    if refused is not None:
        return refused
    raft = broker.raft
    assert raft is not None  # (the refusal checks it)
    directory = request.voter_directory_id
    endpoints = _endpoints(request.listeners)
    listener = _listener(raft)
    if not any(name == listener for name, _h, _p in endpoints):
        return AddRaftVoterResponse(
            error_code=ErrorCode.INVALID_REQUEST,
            error_message=f"Add voter request didn't include the endpoint ({_format_endpoints(endpoints)}) for the "
                          f"default listener ListenerName({listener})")
    ack = getattr(request, "ack_when_committed", True)
    change = await raft.add_voter(Voter(request.voter_id, directory, endpoints), ack_when_committed=ack)
    return _answer(AddRaftVoterResponse, change)


async def remove_raft_voter(broker: VoterChangeNode, request: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse:
    refused = _voter_request_refusal(broker, request, RemoveRaftVoterResponse, "Remove")
    if refused is not None:
        return refused
    raft = broker.raft
    assert raft is not None  # (the refusal checks it)
    change = await raft.remove_voter(request.voter_id, request.voter_directory_id)
    return _answer(RemoveRaftVoterResponse, change)


async def update_raft_voter(broker: VoterUpdateNode, request: UpdateRaftVoterRequest) -> UpdateRaftVoterResponse:
    raft = broker.raft
    R = UpdateRaftVoterResponse

    def answer(code: int) -> UpdateRaftVoterResponse:
        leader = raft.leader_id if raft is not None else -1
        host, port = "", -1
        if raft is not None and leader >= 0:
            host, port = raft.advertised_address() if leader == raft.node_id else raft.addresses.get(leader, ("", -1))
        return R(error_code=code, current_leader=R.CurrentLeader(
            leader_id=leader, leader_epoch=raft.epoch if raft is not None else -1, host=host, port=port))

    if _cluster_mismatch(broker, request.cluster_id) is not None:
        return answer(ErrorCode.INCONSISTENT_CLUSTER_ID)
    if raft is None:
        return answer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    # Kafka's validateLeaderOnlyRequest(currentLeaderEpoch)
    if request.current_leader_epoch < raft.epoch:
        return answer(ErrorCode.FENCED_LEADER_EPOCH)
    if request.current_leader_epoch > raft.epoch:
        return answer(ErrorCode.UNKNOWN_LEADER_EPOCH)
    if not raft.is_leader:
        return answer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    directory = request.voter_directory_id
    if request.voter_id < 0 or directory is None or directory == ZERO:
        return answer(ErrorCode.INVALID_REQUEST)
    endpoints = _endpoints(request.listeners)
    if not any(name == _listener(raft) for name, _h, _p in endpoints):
        return answer(ErrorCode.INVALID_REQUEST)
    feature = request.kraft_version_feature
    lo, hi = feature.min_supported_version, feature.max_supported_version
    if lo < 0 or hi < 0 or hi < lo:
        return answer(ErrorCode.INVALID_REQUEST)
    voter = Voter(request.voter_id, directory, endpoints, lo, hi)
    if raft.node is not None and raft.node.kraft_version < 1:
        # a static quorum: the leader keeps the voters in memory for the kraft.version upgrade
        from kbroker.raft.kraft_upgrade import local_voter
        from kbroker.raft.kraft_upgrade import update_voter as update_in_memory

        local = local_voter(raft, raft.directory_id or metadata_directory_id(broker))
        return answer(update_in_memory(raft, voter, local, raft.now_ms()))
    change = raft.update_voter(voter)
    return answer(change.error)


def _refused(broker: Authorizing, requester_: Requester | None, cls: type[_VoterResponse]) -> _VoterResponse | None:
    # Kafka's ControllerApis authorizes ALTER on the cluster
    if authorized(operation_subject(broker, requester_), ALTER, CLUSTER, CLUSTER_NAME):
        return None
    return cls(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None)


async def add_raft_voter_operation(broker: VotersHost, request: AddRaftVoterRequest, version: int,
                                   requester_: Requester | None = None) -> AddRaftVoterResponse:
    return _refused(broker, requester_, AddRaftVoterResponse) or await add_raft_voter(broker, request)


async def remove_raft_voter_operation(broker: VotersHost, request: RemoveRaftVoterRequest, version: int,
                                      requester_: Requester | None = None) -> RemoveRaftVoterResponse:
    return _refused(broker, requester_, RemoveRaftVoterResponse) or await remove_raft_voter(broker, request)
