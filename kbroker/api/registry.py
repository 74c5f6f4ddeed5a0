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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol.messages import REQUESTS

if TYPE_CHECKING:
    from kbroker.api.context import RequestContext

Handler = Callable[["RequestContext", Any], "Any | Awaitable[Any] | None"]

# API keys whose request spec marks its newest version ``latestVersionUnstable`` (Kafka 4.4:
# InitProducerId v6, KIP-939 two-phase commit). tests/protocol/test_unstable_versions.py checks
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


def api(api_key: int, min_version: int, max_version: int,
        listeners: tuple[str, ...] = (BROKER_LISTENER,)) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``api_key`` for ``min_version..max_version`` on
    ``listeners``."""

    def register(fn: Handler) -> Handler:
        unknown = [name for name in listeners if name not in LISTENER_HANDLERS]
        if unknown or not listeners:
            raise RuntimeError(f"api key {api_key}: unknown listeners {listeners}")
        entry = ApiHandler(api_key, min_version, max_version, fn, fn.__module__, tuple(listeners))
        for name in listeners:
            if api_key in LISTENER_HANDLERS[name]:
                raise RuntimeError(f"api key {api_key} registered twice on the {name} listener")
        for name in listeners:
            LISTENER_HANDLERS[name][api_key] = entry
        return fn

    return register
