"""CreatePartitions (key 37), v0-3.

Adds partitions to existing topics through the controller's metadata records (one commit per
topic). The versions differ only in encoding (v2+ flexible); v0-1 are the same request. A topic
named twice gets INVALID_REQUEST ("Duplicate topic name.") once. validateOnly runs every check and
commits nothing. Manual assignments must name registered brokers, each at most once, with as many
replicas as the topic's existing partitions, and at least one unfenced broker, as Kafka's
``ReplicationControlManager`` requires; the controller mutation quota is checked before them
(after the count checks), as Kafka does. A request adding more than 10,000 partitions in all to
the existing topics it may alter fails whole with POLICY_VIOLATION "Excessively large number of
additional partitions per request."; one naming more than 10,000 such topics with "Unable to
perform excessively large batch operation." (Kafka 4.4's bound on one controller operation).

The handler sends the request to the controller (``ctx.broker.controller_client``);
kbroker/controller/operations/create_partitions.py is the controller's side (the checks, the new
partitions' logs, the records), run one at a time with the controller's other operations.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest, CreatePartitionsResponse


@api(CreatePartitionsRequest, CreatePartitionsResponse, 0, 3)
async def handle_create_partitions(ctx: RequestContext[Forwarding], request: CreatePartitionsRequest) -> CreatePartitionsResponse:
    return await ctx.broker.controller_client.create_partitions(request, ctx.api_version, requester(ctx))


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(37)
def _create_partitions_error(request: CreatePartitionsRequest, version: int, code: int) -> CreatePartitionsResponse:
    R = CreatePartitionsResponse
    return R(results=[R.CreatePartitionsTopicResult(name=topic.name, error_code=code, error_message=None)
                      for topic in request.topics])
