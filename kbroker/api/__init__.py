"""One module per Kafka API. Each registers its handler and version range in the registry."""

from __future__ import annotations

import importlib

API_MODULES = (
    "api_versions",
    "metadata",
    "produce",
    "fetch",
    "list_offsets",
    "create_topics",
    "delete_topics",
    "init_producer_id",
    "describe_configs",
    "alter_configs",
)

_loaded = False


def load_handlers() -> None:
    global _loaded
    if _loaded:
        return
    for name in API_MODULES:
        importlib.import_module(f"kbroker.api.{name}")
    _loaded = True
