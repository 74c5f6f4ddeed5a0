"""The registry of implemented API handlers.

Each API module registers its handler with the version range it implements; ApiVersions is built
from this registry, so the broker never advertises what it does not handle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbroker.server.connection import RequestContext

Handler = Callable[["RequestContext", Any], "Any | Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True)
class ApiHandler:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler
    name: str


HANDLERS: dict[int, ApiHandler] = {}


def api(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``api_key`` for ``min_version..max_version``."""

    def register(fn: Handler) -> Handler:
        if api_key in HANDLERS:
            raise RuntimeError(f"api key {api_key} registered twice")
        HANDLERS[api_key] = ApiHandler(api_key, min_version, max_version, fn, fn.__module__)
        return fn

    return register
