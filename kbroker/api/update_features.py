"""UpdateFeatures (key 57), v0-2.

v1 adds ValidateOnly and UpgradeType (in place of AllowDowngrade), v2's response has no
per-feature results. As a Kafka broker does, the handler sends the request to the controller
(``ctx.broker.controller_client``); what the controller checks, answers and writes is
kbroker/controller/operations/update_features.py.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker.controller.operations.update_features import update_features_error
from kbroker_protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse


@api(UpdateFeaturesRequest, UpdateFeaturesResponse, 0, 2)
async def handle_update_features(ctx: RequestContext[Forwarding], request: UpdateFeaturesRequest) -> UpdateFeaturesResponse:
    return await ctx.broker.controller_client.update_features(request, ctx.api_version, requester(ctx))


# -- the error response (Kafka's getErrorResponse of the request: built with the operation's) -----

refusal(57)(update_features_error)
