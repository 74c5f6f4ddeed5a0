"""AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82): KIP-853 voter changes.

On the controller listener (``install``: the RaftDriver's handler table) the connection's principal
needs ALTER on the cluster for AddRaftVoter and RemoveRaftVoter, CLUSTER_ACTION for UpdateRaftVoter
(Kafka's ControllerApis ``authorizeClusterOperation``; refused: CLUSTER_AUTHORIZATION_FAILED, nothing
changed); then they are answered as Kafka
4.4's ``KafkaRaftClient.handleAddVoterRequest`` / ``handleRemoveVoterRequest`` /
``handleUpdateVoterRequest`` answer them, in their order: a cluster id that is given and not this
cluster's: INCONSISTENT_CLUSTER_ID (with Kafka's message); a node that is not the leader:
NOT_LEADER_OR_FOLLOWER; no valid voter (negative id, no directory id): INVALID_REQUEST; no endpoint
on the controller listener: INVALID_REQUEST; then the Raft core's checks (``RaftNode.add_voter`` and
the others: one change at a time, the leader's epoch and the previous change committed,
kraft.version 1, DUPLICATE_VOTER, VOTER_NOT_FOUND, a new voter caught up). Nothing is written unless
every check passes. AddRaftVoter and RemoveRaftVoter are also served on the broker listeners,
forwarded to the active controller (as Kafka's ``KafkaApis.forwardToController``); UpdateRaftVoter
is controller-only, as in Kafka. The answers themselves: kbroker/controller/operations/raft_voters.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.controller_listener import connection_authorized
from kbroker.api.error_response import Builder, error_response_as, refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker.controller.operations.host import Authorizing
from kbroker.controller.operations.raft_voters import (
    UPDATE_RAFT_VOTER,
    VoterUpdateNode,
    add_raft_voter,
    remove_raft_voter,
    update_raft_voter,
)
from kbroker.metadata.client import ADD_RAFT_VOTER, REMOVE_RAFT_VOTER
from kbroker.security.acls import ALTER, CLUSTER_ACTION
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kbroker_protocol.messages.remove_raft_voter import RemoveRaftVoterRequest, RemoveRaftVoterResponse
from kbroker_protocol.messages.request_header import RequestHeader
from kbroker_protocol.messages.update_raft_voter import UpdateRaftVoterResponse
from kbroker_protocol.primitives import Message

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


def _top_level(cls: type[AddRaftVoterResponse] | type[RemoveRaftVoterResponse]) -> Builder:
    """Kafka's AddRaftVoterRequest/RemoveRaftVoterRequest ``getErrorResponse``: the code and its
    default message (``error.message()``)."""
    def build(request: Any, version: int, code: int) -> AddRaftVoterResponse | RemoveRaftVoterResponse:
        return cls(error_code=code, error_message=default_message(code))

    return build


refusal(ADD_RAFT_VOTER)(_top_level(AddRaftVoterResponse))
refusal(REMOVE_RAFT_VOTER)(_top_level(RemoveRaftVoterResponse))


class VoterChangesApis(VoterUpdateNode, Authorizing, Protocol):
    """The node :func:`install` serves the three voter changes on: what they use (its Raft driver,
    whose handler table serves the controller listener, its cluster id and configuration), and
    the authorizer (the connection's ALTER or CLUSTER_ACTION on the cluster)."""


def install(broker: VoterChangesApis) -> None:
    """The three APIs on the controller listener (the RaftDriver's handler table)."""
    raft = broker.raft
    assert raft is not None
    # Kafka's ControllerApis: ALTER on the cluster for AddRaftVoter and RemoveRaftVoter, CLUSTER_ACTION
    # for UpdateRaftVoter (a controller's own), of the connection's principal
    raft.handlers[ADD_RAFT_VOTER] = lambda header, body: _authorized_first(
        broker, header, body, ALTER, AddRaftVoterResponse, add_raft_voter)
    raft.handlers[REMOVE_RAFT_VOTER] = lambda header, body: _authorized_first(
        broker, header, body, ALTER, RemoveRaftVoterResponse, remove_raft_voter)
    raft.handlers[UPDATE_RAFT_VOTER] = lambda header, body: _authorized_first(
        broker, header, body, CLUSTER_ACTION, UpdateRaftVoterResponse, update_raft_voter)


async def _authorized_first(broker: VoterChangesApis, header: RequestHeader, request: _Req, operation: int,
                            response_type: type[_Resp], serve: Callable[[VoterChangesApis, _Req], Awaitable[_Resp]]
                            ) -> _Resp:
    """``serve`` the request when the connection's principal may do ``operation`` on the cluster
    (Kafka's ``authorizeClusterOperation``), else the request's error response with
    CLUSTER_AUTHORIZATION_FAILED (its ``getErrorResponse``)."""
    if not connection_authorized(broker, operation):
        return error_response_as(response_type, request, header.request_api_version,
                                 int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await serve(broker, request)


# -- the broker listeners: forwarded to the active controller -----------------------------------


@api(AddRaftVoterRequest, AddRaftVoterResponse, 0, 1)
async def handle_add_raft_voter(ctx: RequestContext[Forwarding], request: AddRaftVoterRequest) -> AddRaftVoterResponse:
    response = await ctx.broker.controller_client.forward(ADD_RAFT_VOTER, request, ctx.api_version, requester(ctx))
    return response_as(response, AddRaftVoterResponse)


@api(RemoveRaftVoterRequest, RemoveRaftVoterResponse, 0, 0)
async def handle_remove_raft_voter(ctx: RequestContext[Forwarding], request: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse:
    response = await ctx.broker.controller_client.forward(REMOVE_RAFT_VOTER, request, ctx.api_version, requester(ctx))
    return response_as(response, RemoveRaftVoterResponse)
