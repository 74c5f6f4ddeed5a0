"""One module per Kafka API. Each registers its handler and version range in the registry.

Every module in this package is imported by :func:`load_handlers`; a module that defines a
handler registers it with :func:`kbroker.api.registry.api`.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_handlers() -> None:
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
