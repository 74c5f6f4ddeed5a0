"""The metadata quorum's APIs on the broker listeners, forwarded to the active controller.

Kafka 4.4's brokers (``KafkaApis``) serve DescribeQuorum (55), UnregisterBroker (64),
AddRaftVoter (80), RemoveRaftVoter (81) and UnregisterController (94) on their client listeners by
forwarding them to the active controller (``forwardToController``: an Envelope), whose
``ControllerApis`` answers them as if they had come to its controller listener, authorized for the
forwarded principal. UpdateRaftVoter (82) is controller-only in Kafka and is not served here.

Each API's controller side is registered with :func:`controller_operation` (what an Envelope
carrying it runs on the controller, and what the single-node start runs locally); it calls the same
function as the controller listener's handler. An error that stops the forwarding (no controller
answered) is the request type's top-level error, as Kafka's ``getErrorResponse``.
"""

from __future__ import annotations

from typing import TypeVar

from kbroker.api.authorization import operation_subject
from kbroker.api.context import BrokerServices, RaftNodeServices, RequestContext, requester, response_as
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import api
from kbroker.controller.client import (
    DESCRIBE_QUORUM,
    UNREGISTER_BROKER,
    Requester,
    controller_operation,
)
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, DESCRIBE, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse
from kbroker_protocol.primitives import Message

R = TypeVar("R", bound=Message)


class _Header:
    """The request header a controller-listener handler reads (its version, the client id)."""

    __slots__ = ("request_api_key", "request_api_version", "client_id")

    def __init__(self, api_key: int, version: int, client_id: str | None) -> None:
        self.request_api_key = api_key
        self.request_api_version = version
        self.client_id = client_id


def _refused(broker: BrokerServices, requester_: Requester | None, response_type: type[R], version: int,
             request: Message, operation: int) -> R | None:
    """Kafka's ControllerApis ``authorizeClusterOperation``: CLUSTER_AUTHORIZATION_FAILED."""
    if authorized(operation_subject(broker, requester_), operation, CLUSTER, CLUSTER_NAME):
        return None
    return error_response_as(response_type, request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))


# -- broker listeners: forwarded ---------------------------------------------------------------


@api(DESCRIBE_QUORUM, 0, 2)
async def handle_describe_quorum(ctx: RequestContext, request: DescribeQuorumRequest) -> DescribeQuorumResponse:
    response = await ctx.broker.controller_client.forward(DESCRIBE_QUORUM, request, ctx.api_version, requester(ctx))
    return response_as(response, DescribeQuorumResponse)


@api(UNREGISTER_BROKER, 0, 0)
async def handle_unregister_broker(ctx: RequestContext, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    response = await ctx.broker.controller_client.forward(UNREGISTER_BROKER, request, ctx.api_version, requester(ctx))
    return response_as(response, UnregisterBrokerResponse)


# -- the controller's side ---------------------------------------------------------------------


@controller_operation(DESCRIBE_QUORUM)
async def describe_quorum_operation(broker: RaftNodeServices, request: DescribeQuorumRequest, version: int,
                                    requester_: Requester | None = None) -> DescribeQuorumResponse:
    from kbroker.api.controller_apis import describe_quorum

    refused = _refused(broker, requester_, DescribeQuorumResponse, version, request, DESCRIBE)
    if refused is not None:
        return refused
    client_id = requester_.client_id if requester_ is not None else None
    return await describe_quorum(broker, _Header(DESCRIBE_QUORUM, version, client_id), request)


@controller_operation(UNREGISTER_BROKER)
async def unregister_broker_operation(broker: BrokerServices, request: UnregisterBrokerRequest, version: int,
                                      requester_: Requester | None = None) -> UnregisterBrokerResponse:
    from kbroker.api.controller_listener import ControllerRequestContext
    from kbroker.api.unregister_broker import handle_unregister_broker as on_controller

    refused = _refused(broker, requester_, UnregisterBrokerResponse, version, request, ALTER)
    if refused is not None:
        return refused
    client_id = requester_.client_id if requester_ is not None else None
    return await on_controller(ControllerRequestContext(broker, _Header(UNREGISTER_BROKER, version, client_id)),
                               request)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(55)
def _describe_quorum_error(request: DescribeQuorumRequest, version: int, code: int) -> DescribeQuorumResponse:
    # DescribeQuorumRequest.getTopLevelErrorResponse: the code and its default message (v2+), no topics
    return DescribeQuorumResponse(error_code=code, error_message=default_message(code), topics=[])


@refusal(64)
def _unregister_broker_error(request: UnregisterBrokerRequest, version: int, code: int) -> UnregisterBrokerResponse:
    # ControllerApis/KafkaApis: UnregisterBrokerResponseData with the code, no message
    return UnregisterBrokerResponse(error_code=code, error_message=None)
