"""The response to a request whose handler failed with an unexpected exception.

Kafka does not close the connection when an API handler throws: ``KafkaApis.handle`` catches the
throwable and answers with ``request.getErrorResponse(throttleMs, e)``. Each request type builds
that response itself, with ``Errors.forException(e)`` (UNKNOWN_SERVER_ERROR, -1, for anything that
is not a Kafka ``ApiException``) in the places where the response carries an error code: the
top-level ``error_code`` for some APIs, one entry per topic/partition/group/transaction of the
request for others, both for a few. Every API kbroker serves has one builder, following what
Kafka's ``getErrorResponse`` of that request sets (the request's keys are echoed, the other fields
keep their schema defaults unless Kafka sets them, e.g. offsets to -1).

This module is the generic part: the registry of builders, :func:`error_response` (what the
dispatcher answers), :func:`error_response_as` (a handler refusing a request as a whole) and the
APIs whose error response is the top-level code alone. Every other API's builder lives in its own
module of :mod:`kbroker.api`, registered with :func:`refusal` when that module is imported;
:func:`builder_for` imports the module of an API whose builder is not registered yet (the modules
that serve it, as :func:`kbroker.api.refusal_modules` names them), so a broker that loads its
handler modules on their first request still finds every builder.

Error messages follow Kafka's ``ApiError.fromThrowable``: an UNKNOWN_SERVER_ERROR never carries
the exception's text (it could leak internals), so ``error_message`` stays null, except where
Kafka's builder uses the error's default message (FindCoordinator, DescribeConfigs).

A builder returns None when Kafka's ``getErrorResponse`` does (a Produce with acks=0): then no
response can be sent and the connection is closed, as Kafka does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from kbroker.controller.errors import ControllerError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import RESPONSES
from kbroker_protocol.primitives import Message

__all__ = ["BUILDERS", "builder_for", "error_code_for", "error_response", "error_response_as", "refusal"]

Builder = Callable[[Any, int, int], "Message | None"]  # (each builder takes its own API's request class)
"""``(request, api_version, error_code) -> response body`` (or None: no response possible)."""

BUILDERS: dict[int, Builder] = {}
"""API key -> its builder, for the APIs whose module is imported (see :func:`builder_for`)."""

NO_OFFSET = -1  # Kafka's INVALID_OFFSET / UNKNOWN_OFFSET / UNDEFINED_EPOCH_OFFSET
NO_EPOCH = -1
NO_TIMESTAMP = -1
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


def error_code_for(exc: BaseException) -> int:
    """Kafka's ``Errors.forException``: a controller refusal (:class:`ControllerError`, Kafka's
    ``ApiException``) gives its own code; anything else is unexpected (kbroker's handlers translate
    the errors they expect into response codes themselves): UNKNOWN_SERVER_ERROR."""
    if isinstance(exc, ControllerError):
        return int(exc.code)
    return int(ErrorCode.UNKNOWN_SERVER_ERROR)


def builder_for(api_key: int) -> Builder | None:
    """The error response builder of ``api_key`` (importing the module that registers it when
    needed); None for an API without one."""
    builder = BUILDERS.get(api_key)
    if builder is None:
        from kbroker.api import refusal_modules

        for module in refusal_modules(api_key):
            importlib.import_module(module)
            builder = BUILDERS.get(api_key)
            if builder is not None:
                break
    return builder


def error_response(api_key: int, api_version: int, request: Any, exc: BaseException) -> Message | None:
    """The error response Kafka would send for ``request`` after ``exc``; None when there is none
    (the caller then closes the connection). Raises KeyError for an API without a builder."""
    builder = builder_for(api_key)
    if builder is None:
        raise KeyError(api_key)
    return builder(request, api_version, error_code_for(exc))


_R = TypeVar("_R", bound=Message)


def error_response_as(response_type: type[_R], request: Message, api_version: int, code: int) -> _R:
    """The error response of ``response_type``'s API for ``request`` with ``code``, typed: what a
    handler answers when it refuses a request as a whole. Raises TypeError when that API's builder
    gives no ``response_type`` (a Produce with acks=0 gives None: its handler never refuses this way)."""
    api_key = response_type.API_KEY
    if api_key is None:
        raise TypeError(f"{response_type.__qualname__} is not an API response")
    builder = builder_for(api_key)
    if builder is None:
        raise KeyError(api_key)
    response = builder(request, api_version, code)
    if not isinstance(response, response_type):
        raise TypeError(f"the error response builder of API {api_key} gave {type(response).__qualname__}, "
                        f"not {response_type.__qualname__}")
    return response


_B = TypeVar("_B", bound=Builder)


def refusal(api_key: int) -> Callable[[_B], _B]:
    """Register the decorated function as ``api_key``'s error response builder (once per API)."""

    def register(fn: _B) -> _B:
        present = BUILDERS.get(api_key)
        if present is not None and present is not fn:
            raise RuntimeError(f"api key {api_key}: error response builder registered twice "
                               f"({present.__module__} and {fn.__module__})")
        BUILDERS[api_key] = fn
        return fn

    return register


def _top_level(api_key: int) -> None:
    """Register a builder that sets only the top-level error code (other fields at defaults). The
    response class is looked up when a response is built, not here: importing this module does
    not import the message modules of these 26 APIs."""

    def build(request: Any, version: int, code: int) -> Message:
        response_cls: Callable[..., Message] = RESPONSES[api_key]  # (any message with a top-level error code)
        return response_cls(error_code=code)

    refusal(api_key)(build)


# The APIs whose error response is the top-level code alone (lists empty, other fields default):
# Heartbeat, LeaveGroup, AddOffsetsToTxn, EndTxn, ConsumerGroupHeartbeat, ListTransactions,
# DescribeLogDirs, OffsetDelete, ListGroups, ListConfigResources, StreamsGroupHeartbeat;
# SaslHandshake (no mechanisms); the share groups' (KIP-932) ShareGroupHeartbeat, ShareFetch
# (ShareFetchResponse.of: no partitions, lock timeout 0) and ShareAcknowledge; and on the controller
# listener (Kafka's ControllerApis answers a failed request with the same getErrorResponse): the
# Raft RPCs Vote, BeginQuorumEpoch, EndQuorumEpoch and FetchSnapshot (no partitions, no endpoints),
# UpdateRaftVoter (no current leader), AlterPartition, BrokerRegistration (broker epoch -1),
# BrokerHeartbeat (fenced, as the schema's default), AssignReplicasToDirs, Envelope (no response
# data) and AllocateProducerIds (an empty block).
TOP_LEVEL_ONLY: tuple[int, ...] = (12, 13, 25, 26, 68, 66, 35, 47, 16, 74, 88, 17, 76, 78, 79,
                                   52, 53, 54, 59, 82, 56, 62, 63, 73, 58, 67)

for _key in TOP_LEVEL_ONLY:
    _top_level(_key)
