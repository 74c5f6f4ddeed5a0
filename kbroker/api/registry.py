"""The registry of implemented API handlers.

Each API module registers its handler with the version range it implements; ApiVersions is built
from this registry, so the broker never advertises what it does not handle.

A spec's newest version can be marked ``latestVersionUnstable`` (still changing upstream). As in
Kafka (``ApiKeys.toApiVersionForApiResponse`` and ``ApiVersionManager.isApiEnabled``), such a
version is advertised and served only when ``unstable.api.versions.enable=true``; otherwise a
request at it closes the connection like any version the broker does not serve.
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

    def enabled_max(self, unstable_enabled: bool) -> int:
        """The newest version served: the spec's unstable newest version only when enabled."""
        if unstable_enabled or self.api_key not in LATEST_VERSION_UNSTABLE:
            return self.max_version
        return min(self.max_version, REQUESTS[self.api_key].MAX_VERSION - 1)

    def enabled(self, version: int, unstable_enabled: bool) -> bool:
        return self.min_version <= version <= self.enabled_max(unstable_enabled)


HANDLERS: dict[int, ApiHandler] = {}


def api(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``api_key`` for ``min_version..max_version``."""

    def register(fn: Handler) -> Handler:
        if api_key in HANDLERS:
            raise RuntimeError(f"api key {api_key} registered twice")
        HANDLERS[api_key] = ApiHandler(api_key, min_version, max_version, fn, fn.__module__)
        return fn

    return register
