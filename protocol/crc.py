"""CRC-32C (Castagnoli), as record batches and the Raft entry file use it: ``crc32c(data, value=0)``.

The function is the ``crc32c`` package's C extension (``crc32c._crc32c``, hardware-accelerated
where the CPU has it). It is loaded here without running the package's ``__init__``, which imports
``importlib.metadata`` (for ``__version__``: email, csv, zipfile...) and its command-line entry
point (argparse): 30-40 ms of CPU at every broker start, about a tenth of it, for nothing the
broker uses. The extension module is registered under its own name (``crc32c._crc32c``), so a
later ``import crc32c`` elsewhere finds and reuses it. If the extension cannot be found by file
(an unusual install), the package is imported as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["crc32c"]

_EXTENSION = "crc32c._crc32c"


def _load() -> Callable[..., int]:
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:
        return loaded.crc32c
    package = importlib.util.find_spec("crc32c")  # locates the package without importing it
    for directory in (package.submodule_search_locations or []) if package is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "_crc32c" + suffix)
            if not os.path.isfile(path):
                continue
            loader = importlib.machinery.ExtensionFileLoader(_EXTENSION, path)
            spec = importlib.util.spec_from_file_location(_EXTENSION, path, loader=loader)
            if spec is None:
                continue
            module: Any = importlib.util.module_from_spec(spec)
            sys.modules[_EXTENSION] = module
            try:
                loader.exec_module(module)
            except BaseException:
                del sys.modules[_EXTENSION]
                raise
            return module.crc32c
    from crc32c import crc32c as fallback

    return fallback


crc32c = _load()
