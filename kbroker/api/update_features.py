"""UpdateFeatures (key 57), v0-2.

Changes finalized feature levels (``kafka-features.sh upgrade/downgrade``, Admin.updateFeatures).
A Kafka broker forwards this to the controller; here the built-in controller checks the whole
request as Kafka's ``FeatureControlManager.updateFeatures`` does (see
kbroker/controller/features.py) and writes one FeatureLevelRecord per feature to the metadata log
atomically, or nothing. A failure is one top-level INVALID_UPDATE_VERSION naming the first feature
that failed ("The update failed for all features since ..."), with no per-feature results. On
success v0-1 list each feature with error NONE (message "NONE", as Kafka's ``Errors.message()``);
v2 drops the per-feature results. ValidateOnly (v1+) checks without writing. As in Kafka's
controller, the upgrade type is read from UpgradeType (v1+; at v0 its default, UPGRADE). A
kraft.version upgrade (0 to 1, as ``upgrade --release-version`` asks) is written as Kafka's Raft
layer writes it: KRaftVersionRecord and VotersRecord control records naming this single voter.
The handler sends the request to the controller (``ctx.broker.controller_client``);
kbroker/controller/operations/update_features.py is the controller's side.
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
