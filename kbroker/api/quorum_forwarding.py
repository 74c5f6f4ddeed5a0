"""The metadata quorum's APIs on the broker listeners, forwarded to the active controller.

Kafka 4.4's brokers (``KafkaApis``) serve DescribeQuorum (55), UnregisterBroker (64),
AddRaftVoter (80), RemoveRaftVoter (81) and UnregisterController (94) on their client listeners by
forwarding them to the active controller (``forwardToController``: an Envelope), whose
``ControllerApis`` answers them as if they had come to its controller listener, authorized for the
forwarded principal. UpdateRaftVoter (82) is controller-only in Kafka and is not served here.

Each API's controller side is in kbroker/controller/operations/quorum.py (what an Envelope
carrying it runs on the controller, and what the single-node start runs locally); it calls the same
function as the controller listener's handler. An error that stops the forwarding (no controller
answered) is the request type's top-level error, as Kafka's ``getErrorResponse``.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.controller.operations.quorum import describe_quorum_error, unregister_broker_error
from kbroker.metadata.client import DESCRIBE_QUORUM, UNREGISTER_BROKER
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse


@api(DESCRIBE_QUORUM, 0, 2)
async def handle_describe_quorum(ctx: RequestContext, request: DescribeQuorumRequest) -> DescribeQuorumResponse:
    response = await ctx.broker.controller_client.forward(DESCRIBE_QUORUM, request, ctx.api_version, requester(ctx))
    return response_as(response, DescribeQuorumResponse)


@api(UNREGISTER_BROKER, 0, 0)
async def handle_unregister_broker(ctx: RequestContext, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    response = await ctx.broker.controller_client.forward(UNREGISTER_BROKER, request, ctx.api_version, requester(ctx))
    return response_as(response, UnregisterBrokerResponse)


# -- the error responses (Kafka's getErrorResponse of each request: built with the operations') -----

refusal(DESCRIBE_QUORUM)(describe_quorum_error)
refusal(UNREGISTER_BROKER)(unregister_broker_error)
