"""ElectLeaders (key 43), v0-2.

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
v1 adds the top-level error code, v2 is flexible. The handler sends the request to the controller
(``ctx.broker.controller_client``); kbroker/controller/operations/elect_leaders.py
is the controller's side (the elections and their records).
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker.controller.operations.elect_leaders import elect_leaders_error
from kbroker_protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse


@api(ElectLeadersRequest, ElectLeadersResponse, 0, 2)
async def handle_elect_leaders(ctx: RequestContext[Forwarding], request: ElectLeadersRequest) -> ElectLeadersResponse:
    return await ctx.broker.controller_client.elect_leaders(request, ctx.api_version, requester(ctx))


# -- the error response (Kafka's getErrorResponse of the request: built with the operation's) -----

refusal(43)(elect_leaders_error)
