"""The controller's side of forwarding: Envelope (key 58, v0) and AllocateProducerIds (key 67, v0).

Controller-listener APIs (Kafka serves them on the CONTROLLER listener only): they are not
registered on the broker listeners, which close a connection that sends them (as for any API they
do not serve). The controller listener (the RaftDriver's ``handlers``, kbroker.api.controller_apis)
serves :func:`envelope` and :func:`allocate_producer_ids`, which take the node and the request,
after its CLUSTER_ACTION check of the connection's principal. :data:`CONTROLLER_APIS` are the same
two as ``(ctx, request)`` handlers, with the same check of the context's principal; only tests
register them (on a broker listener, for forwarding between in-process nodes).

Envelope, as Kafka's ``ControllerApis.handleEnvelopeRequest`` and ``EnvelopeUtils``: the request
data is an inner request with its header; the principal (``DefaultPrincipalData``) and client
address are decoded (a principal that does not decode: PRINCIPAL_DESERIALIZATION_FAILURE; an inner
request that does not decode or is not a forwardable API: INVALID_REQUEST; a version this node
does not serve: UNSUPPORTED_VERSION, all as the Envelope's error). The inner request runs on this
node's controller (a :class:`~kbroker.controller.operations.local.LocalControllerClient`) and its response,
serialized with its header, is the Envelope's response data; if that response names NOT_CONTROLLER
anywhere (or this node's controller is not the active one), the Envelope answers NOT_CONTROLLER
with no data instead, so that the forwarding broker finds the active controller and retries (Kafka's
``RequestChannel.buildResponseSend``). An inner operation that fails unexpectedly is answered with
its error response (UNKNOWN_SERVER_ERROR), inside the Envelope. As the inner request may be any
forwarded API, the Envelope handler sees the union of what the controller's operations use of the
node, and only that: :class:`~kbroker.controller.operations.local.AllOperationsHost`, the
intersection of the operations' own Protocols (which covers the configuration, the controller and
the authorizer the handler reads itself).

AllocateProducerIds, as ``ControllerApis.handleAllocateProducerIdsRequest``: a block of producer
ids for the broker (STALE_BROKER_EPOCH for a broker not registered at that epoch, NOT_CONTROLLER
when this node's controller is not active); it sees only the node's controller (``ControllerHolder``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import builder_for, error_response_as
from kbroker.api.registry import HANDLERS
from kbroker.api.services import Authorizing
from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import ControllerHolder
from kbroker.controller.operations.local import (
    AllOperationsHost,
    LocalControllerClient,
    allocate_producer_id_block,
)
from kbroker.metadata.client import FORWARDED_APIS, Requester, controller_active
from kbroker.security.acls import CLUSTER, CLUSTER_ACTION, CLUSTER_NAME, authorized
from kbroker_protocol.api import decode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError, UnsupportedVersionError
from kbroker_protocol.messages.allocate_producer_ids import (
    AllocateProducerIdsRequest,
    AllocateProducerIdsResponse,
)
from kbroker_protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kbroker_protocol.primitives import Message

log = logging.getLogger(__name__)


def _error(code: ErrorCode) -> EnvelopeResponse:
    return EnvelopeResponse(response_data=None, error_code=code)


def error_codes(message: object) -> set[int]:
    """Every ``error_code`` in a response (Kafka's ``AbstractResponse.errorCounts`` keys)."""
    found: set[int] = set()
    stack: list[object] = [message]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        fields = getattr(item, "_FIELDS", None)
        if fields is None:
            continue
        for name in fields:
            value = getattr(item, name, None)
            if name == "error_code" and isinstance(value, int):
                found.add(value)
            elif isinstance(value, list) or hasattr(value, "_FIELDS"):
                stack.append(value)
    return found


async def handle_envelope(ctx: RequestContext[AllOperationsHost], request: EnvelopeRequest) -> EnvelopeResponse:
    """The Envelope served with a request context (:data:`CONTROLLER_APIS`): as on the controller
    listener (``kbroker.api.controller_apis.envelope_on_controller``), the sending connection's
    principal needs CLUSTER_ACTION on the cluster before anything is unwrapped; refused,
    CLUSTER_AUTHORIZATION_FAILED with no response data."""
    if not authorized(ctx, CLUSTER_ACTION, CLUSTER, CLUSTER_NAME):
        log.info("envelope from %s refused: no CLUSTER_ACTION on the cluster", ctx.peer)
        return _error(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    return await envelope(ctx.broker, request, ctx.peer)


async def envelope(broker: AllOperationsHost, request: EnvelopeRequest, peer: str = "?") -> EnvelopeResponse:
    """The Envelope handler on ``broker`` (the node running the controller), for any server that
    serves the controller listener (``peer``: the forwarding node's address, for the log).
    ``broker`` is typed on the intersection of every forwarded operation's Protocol
    (``AllOperationsHost``): the inner request may be any of them; the handler itself reads only
    the configuration (the inner API's versions) and the controller (whether it is active)."""
    # (imported here: Envelopes reach only the controller of a multi-node quorum)
    from kbroker.metadata.remote import deserialize_principal
    try:
        principal = deserialize_principal(request.request_principal or b"")
    except ValueError as exc:
        log.info("envelope from %s: %s", peer, exc)
        return _error(ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE)
    try:
        client_host = str(ipaddress.ip_address(bytes(request.client_host_address)))
    except ValueError:
        log.info("envelope from %s: client address of %d bytes", peer, len(request.client_host_address))
        return _error(ErrorCode.INVALID_REQUEST)
    try:
        header, inner = decode_request(request.request_data)
    except UnsupportedVersionError:
        return _error(ErrorCode.UNSUPPORTED_VERSION)
    except ProtocolError as exc:
        log.info("envelope from %s: the forwarded request does not decode: %s", peer, exc)
        return _error(ErrorCode.INVALID_REQUEST)
    api_key, version = header.request_api_key, header.request_api_version
    if api_key not in FORWARDED_APIS:
        log.info("envelope from %s: api %d is not eligible for forwarding", peer, api_key)
        return _error(ErrorCode.INVALID_REQUEST)
    entry = HANDLERS.get(api_key)
    if entry is None or not entry.enabled(version, broker.config["unstable.api.versions.enable"]):
        return _error(ErrorCode.UNSUPPORTED_VERSION)
    if not controller_active(broker.controller):
        return _error(ErrorCode.NOT_CONTROLLER)
    requester = Requester(client_id=header.client_id, client_host=client_host, principal_type=principal.type,
                          principal_name=principal.name)
    try:
        response = await LocalControllerClient(broker).forward(api_key, inner, version, requester)
    except ControllerError as exc:
        if exc.code == ErrorCode.NOT_CONTROLLER:  # leadership lost while the operation ran
            return _error(ErrorCode.NOT_CONTROLLER)
        log.exception("forwarded api %d v%d from %s failed", api_key, version, peer)
        response = error_response_for(api_key, inner, version, ErrorCode.UNKNOWN_SERVER_ERROR)
    except Exception:
        log.exception("forwarded api %d v%d from %s failed", api_key, version, peer)
        response = error_response_for(api_key, inner, version, ErrorCode.UNKNOWN_SERVER_ERROR)
    if ErrorCode.NOT_CONTROLLER in error_codes(response):
        return _error(ErrorCode.NOT_CONTROLLER)
    data = b"".join(bytes(part) for part in encode_response(header.correlation_id, api_key, version, response))
    return EnvelopeResponse(response_data=data, error_code=ErrorCode.NONE)


class ProducerIdAllocator(ControllerHolder, Authorizing, Protocol):
    """The node as :func:`handle_allocate_producer_ids` uses it: its controller, and the authorizer."""


async def handle_allocate_producer_ids(ctx: RequestContext[ProducerIdAllocator], request: AllocateProducerIdsRequest
                                       ) -> AllocateProducerIdsResponse:
    """AllocateProducerIds served with a request context: CLUSTER_ACTION on the cluster for the
    connection's principal first, as on the controller listener; refused, CLUSTER_AUTHORIZATION_FAILED
    (an empty block)."""
    if not authorized(ctx, CLUSTER_ACTION, CLUSTER, CLUSTER_NAME):
        return error_response_as(AllocateProducerIdsResponse, request, ctx.api_version,
                                 int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await allocate_producer_ids(ctx.broker, request)


async def allocate_producer_ids(broker: ControllerHolder, request: AllocateProducerIdsRequest
                                ) -> AllocateProducerIdsResponse:
    """The AllocateProducerIds handler on ``broker`` (the node running the controller: its
    controller is all it uses)."""
    if not controller_active(broker.controller):
        return AllocateProducerIdsResponse(error_code=ErrorCode.NOT_CONTROLLER, producer_id_start=-1,
                                           producer_id_len=0)
    return await allocate_producer_id_block(broker, request.broker_id, request.broker_epoch)


def error_response_for(api_key: int, request: Message, version: int, code: int) -> Message | None:
    """A forwarded request's error response (for ``RemoteControllerClient``)."""
    builder = builder_for(api_key)
    if builder is None:
        raise KeyError(api_key)
    return builder(request, version, code)


# (api key, min version, max version, handler): the controller-listener APIs of this module.
CONTROLLER_APIS: list[tuple[int, int, int, Callable[..., Awaitable[Message]]]] = [
    (58, 0, 0, handle_envelope),
    (67, 0, 0, handle_allocate_producer_ids),
]
