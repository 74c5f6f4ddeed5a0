"""The registry of implemented API handlers.

Each API module registers its handler with the version range it implements; ApiVersions is built
from this registry, so the broker never advertises what it does not handle.

A spec's newest version can be marked ``latestVersionUnstable`` (still changing upstream). As in
Kafka (``ApiKeys.toApiVersionForApiResponse`` and ``ApiVersionManager.isApiEnabled``), such a
version is advertised and served only when ``unstable.api.versions.enable=true``; otherwise a
request at it closes the connection like any version the broker does not serve.

Listeners: a handler serves the broker listeners unless it declares others, as Kafka's
``ApiMessageType.listeners`` (``"broker"``, ``"controller"``). :data:`HANDLERS` is what a broker
listener serves (and its ApiVersions advertises); :func:`handlers_for` gives any listener's table,
so controller-only APIs (BrokerRegistration, BrokerHeartbeat, AlterPartition, UnregisterBroker)
are never answered nor advertised on a client listener. The server chooses the table by the
listener a connection came in on.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.primitives import Message, Writer

if TYPE_CHECKING:
    from kbroker.api.context import HandlerContext


class PreEncoded:
    """The base of an answer encoded ahead (``kbroker.api.metadata.EncodedMetadata``): the server
    writes it as it writes a response message. A class, not a Protocol: every response message
    has the same methods, and a handler answering another API's response must not pass for one."""

    __slots__ = ()

    throttle_time_ms: int

    def encode_into(self, w: Writer, version: int) -> None:
        raise NotImplementedError


Reply = Message | PreEncoded | None
"""What a handler answers: its API's response, one encoded ahead, or None (no response: a Produce
with acks=0)."""

Handler = Callable[["HandlerContext[object]", Message], "Reply | Awaitable[Reply]"]
"""A handler as the tables keep it (its services and request type erased): the server calls it
with a context on the whole broker and a body decoded as the API's request class. Each handler's
own signature is checked where it is registered (:func:`api`) and, for its services, in the
composition root (:mod:`kbroker.wiring.handler_services`)."""

C = TypeVar("C")  # a handler's context: RequestContext[S] or HandlerContext[S], S its services
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
TypedHandler = Callable[[C, Req], "Resp | PreEncoded | Awaitable[Resp | PreEncoded | None] | None"]

# API keys whose request spec marks its newest version ``latestVersionUnstable`` (Kafka 4.4:
# InitProducerId v6, KIP-939 two-phase commit). tests/protocol/test_versions_44.py checks
# this set against every request spec, so a regenerated codec cannot silently disagree with it.
LATEST_VERSION_UNSTABLE: frozenset[int] = frozenset({22})


@dataclass(frozen=True, slots=True)
class ApiHandler:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler
    name: str
    listeners: tuple[str, ...] = ("broker",)

    def enabled_max(self, unstable_enabled: bool) -> int:
        """The newest version served: the spec's unstable newest version only when enabled."""
        if unstable_enabled or self.api_key not in LATEST_VERSION_UNSTABLE:
            return self.max_version
        return min(self.max_version, REQUESTS[self.api_key].MAX_VERSION - 1)

    def enabled(self, version: int, unstable_enabled: bool) -> bool:
        return self.min_version <= version <= self.enabled_max(unstable_enabled)


BROKER_LISTENER = "broker"
CONTROLLER_LISTENER = "controller"
# Listener kind -> api key -> handler. The broker listeners' table is HANDLERS itself.
LISTENER_HANDLERS: dict[str, dict[int, ApiHandler]] = {BROKER_LISTENER: {}, CONTROLLER_LISTENER: {}}
HANDLERS: dict[int, ApiHandler] = LISTENER_HANDLERS[BROKER_LISTENER]


def handlers_for(listener: str) -> dict[int, ApiHandler]:
    """The API table of a listener kind (``"broker"`` or ``"controller"``)."""
    return LISTENER_HANDLERS[listener]


def api(request: type[Req], response: type[Resp], min_version: int, max_version: int,
        listeners: tuple[str, ...] = (BROKER_LISTENER,)) -> Registration[Req, Resp]:
    """Register the function it decorates as the handler of ``request``'s API for
    ``min_version..max_version`` on ``listeners``: mypy checks that it takes a ``request`` and
    answers a ``response`` (or one encoded ahead, or nothing), maybe awaited."""
    api_key = request.API_KEY
    if api_key is None:
        raise RuntimeError(f"{request.__name__} is not a request")
    if response.API_KEY != api_key:
        raise RuntimeError(f"{response.__name__} answers api key {response.API_KEY}, "
                           f"not {request.__name__}'s {api_key}")
    unknown = [name for name in listeners if name not in LISTENER_HANDLERS]
    if unknown or not listeners:
        raise RuntimeError(f"api key {api_key}: unknown listeners {listeners}")
    return Registration(api_key, min_version, max_version, tuple(listeners))


class Registration(Generic[Req, Resp]):
    """The decorator :func:`api` returns: it registers a handler of ``Req`` answering ``Resp`` and
    gives it back with its own type (an ``async def`` stays a coroutine function of its response)."""

    __slots__ = ("api_key", "min_version", "max_version", "listeners")

    def __init__(self, api_key: int, min_version: int, max_version: int, listeners: tuple[str, ...]) -> None:
        self.api_key = api_key
        self.min_version = min_version
        self.max_version = max_version
        self.listeners = listeners

    @overload
    def __call__(self, fn: Callable[[C, Req], Coroutine[Any, Any, Resp]]
                 ) -> Callable[[C, Req], Coroutine[Any, Any, Resp]]: ...

    @overload
    def __call__(self, fn: Callable[[C, Req], Resp]) -> Callable[[C, Req], Resp]: ...

    @overload
    def __call__(self, fn: TypedHandler[C, Req, Resp]) -> TypedHandler[C, Req, Resp]: ...

    def __call__(self, fn: TypedHandler[C, Req, Resp]) -> TypedHandler[C, Req, Resp]:
        api_key = self.api_key
        # Erased for the tables: the server gives the handler a body of the API's request class
        # and a context on the whole broker (which provides ``fn``'s services, checked in
        # kbroker.wiring.handler_services).
        handler = cast(Handler, fn)
        entry = ApiHandler(api_key, self.min_version, self.max_version, handler, fn.__module__, self.listeners)
        for name in self.listeners:
            present = LISTENER_HANDLERS[name].get(api_key)
            if present is not None and not isinstance(present.handler, Deferred):
                raise RuntimeError(f"api key {api_key} registered twice on the {name} listener")
        for name in self.listeners:
            LISTENER_HANDLERS[name][api_key] = entry
        return fn


class Deferred:
    """The handler of an API whose module is not imported yet (:func:`defer`): its first call
    imports the module, whose :func:`api` registration replaces this entry, then runs the real
    handler. Each call looks the entry up again, so a table that kept this object still works."""

    __slots__ = ("api_key", "module", "listener")

    def __init__(self, api_key: int, module: str, listener: str) -> None:
        self.api_key = api_key
        self.module = module
        self.listener = listener

    def resolve(self) -> Handler:
        """The real handler (importing its module if needed)."""
        entry = LISTENER_HANDLERS[self.listener].get(self.api_key)
        if entry is None or isinstance(entry.handler, Deferred):
            importlib.import_module(self.module)
            entry = LISTENER_HANDLERS[self.listener].get(self.api_key)
            if entry is None or isinstance(entry.handler, Deferred):
                raise RuntimeError(f"{self.module} did not register api key {self.api_key} "
                                   f"on the {self.listener} listener")
        return entry.handler

    def __call__(self, ctx: HandlerContext[object], body: Message) -> Reply | Awaitable[Reply]:
        return self.resolve()(ctx, body)

    def __repr__(self) -> str:
        return f"Deferred({self.api_key}, {self.module!r})"


def defer(api_key: int, module: str, min_version: int, max_version: int,
          listeners: tuple[str, ...] = (BROKER_LISTENER,)) -> None:
    """Register ``api_key`` on ``listeners`` with the version range ``module`` registers, the
    module imported when the API is first called. A key already registered is left as it is."""
    for name in listeners:
        if api_key not in LISTENER_HANDLERS[name]:
            LISTENER_HANDLERS[name][api_key] = ApiHandler(
                api_key, min_version, max_version, Deferred(api_key, module, name), module, tuple(listeners))
