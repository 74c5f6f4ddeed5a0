"""ElectLeaders (key 43), v0-2.

v1 adds the top-level error code, v2 is flexible. The handler sends the request to the controller
(``ctx.broker.controller_client``); the elections, their errors and their records are the
controller's side: kbroker/controller/operations/elect_leaders.py.
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
