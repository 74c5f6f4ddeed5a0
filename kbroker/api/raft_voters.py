"""AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82): KIP-853 voter changes.

``install`` puts the three in the controller listener's handler table (the RaftDriver's), where
they are answered as kbroker/controller/operations/raft_voters.py describes. AddRaftVoter and
RemoveRaftVoter are also served on the broker listeners, forwarded to the active controller (as
Kafka's ``KafkaApis.forwardToController``); UpdateRaftVoter is controller-only, as in Kafka.
"""

from __future__ import annotations

from typing import Any

from kbroker.api.context import RaftNodeServices, RequestContext, requester, response_as
from kbroker.api.error_response import Builder, refusal
from kbroker.api.registry import api
from kbroker.controller.operations.raft_voters import (
    UPDATE_RAFT_VOTER,
    add_raft_voter,
    remove_raft_voter,
    update_raft_voter,
)
from kbroker.metadata.client import ADD_RAFT_VOTER, REMOVE_RAFT_VOTER
from kbroker_protocol.errors import default_message
from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kbroker_protocol.messages.remove_raft_voter import RemoveRaftVoterRequest, RemoveRaftVoterResponse

Broker = RaftNodeServices


def _top_level(cls: type[AddRaftVoterResponse] | type[RemoveRaftVoterResponse]) -> Builder:
    """Kafka's AddRaftVoterRequest/RemoveRaftVoterRequest ``getErrorResponse``: the code and its
    default message (``error.message()``)."""
    def build(request: Any, version: int, code: int) -> AddRaftVoterResponse | RemoveRaftVoterResponse:
        return cls(error_code=code, error_message=default_message(code))

    return build


refusal(ADD_RAFT_VOTER)(_top_level(AddRaftVoterResponse))
refusal(REMOVE_RAFT_VOTER)(_top_level(RemoveRaftVoterResponse))


def install(broker: Broker) -> None:
    """The three APIs on the controller listener (the RaftDriver's handler table)."""
    raft = broker.raft
    assert raft is not None
    raft.handlers[ADD_RAFT_VOTER] = lambda header, body: add_raft_voter(broker, body)
    raft.handlers[REMOVE_RAFT_VOTER] = lambda header, body: remove_raft_voter(broker, body)
    raft.handlers[UPDATE_RAFT_VOTER] = lambda header, body: update_raft_voter(broker, body)


# -- the broker listeners: forwarded to the active controller -----------------------------------


@api(ADD_RAFT_VOTER, 0, 1)
async def handle_add_raft_voter(ctx: RequestContext, request: AddRaftVoterRequest) -> AddRaftVoterResponse:
    response = await ctx.broker.controller_client.forward(ADD_RAFT_VOTER, request, ctx.api_version, requester(ctx))
    return response_as(response, AddRaftVoterResponse)


@api(REMOVE_RAFT_VOTER, 0, 0)
async def handle_remove_raft_voter(ctx: RequestContext, request: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse:
    response = await ctx.broker.controller_client.forward(REMOVE_RAFT_VOTER, request, ctx.api_version, requester(ctx))
    return response_as(response, RemoveRaftVoterResponse)
