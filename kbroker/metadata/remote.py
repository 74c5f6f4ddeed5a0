"""The controller client of a cluster node: requests go to the active controller over a channel.

As Kafka's ``ForwardingManager``: an admin request is forwarded in an Envelope (API 58) whose
request data is the inner request serialized with its header (the client's API version and client
id), with the client's principal (``DefaultPrincipalData``, version-prefixed, as Kafka's
``DefaultKafkaPrincipalBuilder`` serializes it) and the client's address (4 or 16 bytes). The
controller answers with the inner response serialized with its header. The answer to the client:

- the inner response, when the Envelope's error is NONE;
- NOT_CONTROLLER in the Envelope never reaches the client: the channel retries with the controller
  it resolves next (the controller's Envelope handler turns an inner response naming NOT_CONTROLLER
  into that Envelope error, as Kafka's ``RequestChannel.buildResponseSend``);
- another Envelope error (a misconfigured controller): the request's error response with
  UNKNOWN_SERVER_ERROR, as Kafka (UNSUPPORTED_VERSION too: Kafka closes the client's connection
  then, so the client renegotiates versions; kbroker answers UNSUPPORTED_VERSION instead);
- no controller answering before the deadline: the request's error response with
  REQUEST_TIMED_OUT (Kafka's ``onTimeout``);
- a controller serving no version of the API this node can send: UNSUPPORTED_VERSION (Kafka's
  ``versionMismatch``); a response that does not decode: UNKNOWN_SERVER_ERROR.

The error responses are built by the ``error_response`` callable the composition root passes in
(``kbroker.api.envelope.error_response_for``, which this layer may not import).

AllocateProducerIds (API 67) is sent directly, not in an Envelope, as Kafka's
``RPCProducerIdManager`` does; a deadline without an answer gives REQUEST_TIMED_OUT.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import struct
from collections.abc import Callable
from typing import Any, Protocol

from kbroker.metadata.channel import ControllerVersionMismatch
from kbroker.metadata.client import (
    ALLOCATE_PRODUCER_IDS,
    ENVELOPE,
    FORWARDED_APIS,
    ControllerUnavailable,
    ForwardingOperations,
    Requester,
)
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.allocate_producer_ids import (
    AllocateProducerIdsRequest,
    AllocateProducerIdsResponse,
)
from kbroker_protocol.messages.data.default_principal_data import DefaultPrincipalData
from kbroker_protocol.messages.envelope import EnvelopeRequest

log = logging.getLogger(__name__)

_VERSION = struct.Struct(">h")

ErrorResponse = Callable[[int, Any, int, int], Any]
"""``(api_key, request, api_version, error_code) -> response body``: a request's error response."""


class Channel(Protocol):
    async def send(self, api_key: int, request: Any) -> Any: ...


def serialize_principal(principal_type: str, name: str, token_authenticated: bool = False) -> bytes:
    """Kafka's DefaultKafkaPrincipalBuilder.serialize: int16 version, then DefaultPrincipalData."""
    data = DefaultPrincipalData(type=principal_type, name=name, token_authenticated=token_authenticated)
    version = DefaultPrincipalData.MAX_VERSION
    return _VERSION.pack(version) + bytes(data.encode(version))


def deserialize_principal(raw: bytes | memoryview) -> DefaultPrincipalData:
    """The inverse of :func:`serialize_principal`; raises ValueError for bytes that are not one."""
    view = memoryview(raw)
    if len(view) < 2:
        raise ValueError("principal data shorter than its version")
    (version,) = _VERSION.unpack_from(view, 0)
    if not DefaultPrincipalData.MIN_VERSION <= version <= DefaultPrincipalData.MAX_VERSION:
        raise ValueError(f"unknown principal data version {version}")
    try:
        data: DefaultPrincipalData = DefaultPrincipalData.decode(view[2:], version)
    except Exception as exc:
        raise ValueError(f"principal data does not decode: {exc}") from None
    return data


def address_bytes(host: str) -> bytes:
    """The client's address as Kafka's ``InetAddress.getAddress()`` (4 or 16 bytes)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).packed
    except ValueError:
        return ipaddress.ip_address("0.0.0.0").packed


class RemoteControllerClient(ForwardingOperations):
    """Forwards the admin APIs to the active controller in Envelopes and asks it for producer-id
    blocks, over ``channel`` (a ``ControllerChannel``)."""

    def __init__(self, channel: Channel, error_response: ErrorResponse) -> None:
        self.channel = channel
        self.error_response = error_response
        self._correlation = itertools.count(1)

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        if api_key not in FORWARDED_APIS:
            raise ValueError(f"api {api_key} is not forwarded to the controller")
        requester = requester or Requester()
        header = RequestHeader(request_api_key=api_key, request_api_version=version,
                               correlation_id=next(self._correlation), client_id=requester.client_id)
        envelope = EnvelopeRequest(
            request_data=encode_request(header, request),
            request_principal=serialize_principal(requester.principal_type, requester.principal_name),
            client_host_address=address_bytes(requester.client_host),
        )
        try:
            response = await self.channel.send(ENVELOPE, envelope)
        except ControllerUnavailable as exc:
            log.info("forwarding api %d v%d from %s: %s", api_key, version, requester.client_id, exc)
            return self.error_response(api_key, request, version, ErrorCode.REQUEST_TIMED_OUT)
        except ControllerVersionMismatch as exc:  # Kafka: the envelope's versionMismatch
            log.warning("forwarding api %d v%d: %s", api_key, version, exc)
            return self.error_response(api_key, request, version, ErrorCode.UNSUPPORTED_VERSION)
        if response.error_code != ErrorCode.NONE:
            code = ErrorCode(response.error_code)
            log.warning("forwarded api %d v%d failed in its envelope: %s", api_key, version, code.name)
            return self.error_response(api_key, request, version, ErrorCode.UNSUPPORTED_VERSION
                                       if code == ErrorCode.UNSUPPORTED_VERSION else ErrorCode.UNKNOWN_SERVER_ERROR)
        if response.response_data is None:
            log.warning("forwarded api %d v%d: an envelope without a response", api_key, version)
            return self.error_response(api_key, request, version, ErrorCode.UNKNOWN_SERVER_ERROR)
        try:
            _inner_header, body = decode_response(response.response_data, api_key, version)
        except ProtocolError as exc:
            log.warning("forwarded api %d v%d: the controller's response does not decode: %s", api_key, version, exc)
            return self.error_response(api_key, request, version, ErrorCode.UNKNOWN_SERVER_ERROR)
        return body

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> AllocateProducerIdsResponse:
        try:
            response: AllocateProducerIdsResponse = await self.channel.send(
                ALLOCATE_PRODUCER_IDS, AllocateProducerIdsRequest(broker_id=broker_id, broker_epoch=broker_epoch))
        except ControllerUnavailable:
            return AllocateProducerIdsResponse(error_code=ErrorCode.REQUEST_TIMED_OUT, producer_id_start=-1,
                                               producer_id_len=0)
        return response
