"""Emitting the packages' ``__init__`` modules: the messages package (lazy imports, the request
and response registries by API key) and the record sub-packages (classes by name and API key)."""

from __future__ import annotations

import re
from typing import cast

from .emit_module import GENERATED_BY
from .model import MessageSpec


def _block(opening: str, rows: list[str], closing: str) -> list[str]:
    """A literal spread over lines: ``opening``, one indented ``row,`` a line, ``closing``."""
    return [opening, *(f"    {row}," for row in rows), closing]


def _exports(names: list[str]) -> list[str]:
    """``__all__``: explicit exports, so that importers pass mypy's no_implicit_reexport."""
    return _block("__all__ = [", [repr(n) for n in names], "]")


def render_root_init(mods: dict[str, list[MessageSpec]]) -> str:
    """The messages package's ``__init__``: lazy imports of its classes and the registries of
    requests and responses by API key."""
    lines = [
        f"{GENERATED_BY}. Do not edit.",
        '"""Generated Kafka message classes and the registry of requests and responses by API key.',
        "",
        "One module per request/response pair (``produce.py``: ``ProduceRequest``, ``ProduceResponse``),",
        "plus ``request_header.py`` and ``response_header.py``.  Every class (see",
        "``kbroker_protocol.message.Message``) has ``__slots__``, a keyword constructor defaulting each field",
        "to the spec default, snake_case attributes plus ``unknown_tagged_fields`` (``(tag, bytes)``",
        "pairs), ``API_KEY``, ``MIN_VERSION``, ``MAX_VERSION``, ``FLEXIBLE_MIN_VERSION``, nested struct",
        "classes named by the spec's struct types, ``encode(version)``, ``encode_into(writer, version)``,",
        "``encode_parts(version)``, ``Cls.decode(buf, version)`` and ``Cls.read(reader, version)``.",
        "",
        "Internal record formats live in ``data`` (message/ data types), ``coordinator``",
        "(``__consumer_offsets`` and ``__transaction_state`` keys and values), ``metadata_records``",
        "(KRaft metadata log) and ``raft`` (quorum state).",
        "",
        "The message modules are imported on first use (PEP 562 ``__getattr__``; ``REQUESTS`` and",
        "``RESPONSES`` import a module when its key is first looked up): a broker start loads only the",
        "few it uses before its first answer, not all of them (~30 ms of CPU).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import importlib",
        "from collections.abc import Iterator, Mapping",
        "from typing import TYPE_CHECKING, Any",
        "",
        "if TYPE_CHECKING:  # the classes as a type checker sees them; at run time, __getattr__",
        "    from kbroker_protocol.message import Message",
    ]
    for mod, msgs in sorted(mods.items()):
        lines.append(f"    from kbroker_protocol.messages.{mod} import {', '.join(m.name for m in msgs)}")
    lines.append("")
    reqs: dict[int, tuple[str, str]] = {}
    resps: dict[int, tuple[str, str]] = {}
    lines.append("# class name -> module of this package")
    modules = []
    for mod, msgs in sorted(mods.items()):
        for m in msgs:
            modules.append(f"{m.name!r}: {mod!r}")
            key = cast(int, m.api_key)  # every request and response spec has an apiKey
            if m.kind == "request":
                reqs[key] = (m.name, re.sub(r"Request$", "", m.name))
            elif m.kind == "response":
                resps[key] = (m.name, re.sub(r"Response$", "", m.name))
    lines += _block("_MODULES: dict[str, str] = {", modules, "}")
    lines += [
        "",
        "",
        "def __getattr__(name: str) -> Any:",
        "    module = _MODULES.get(name)",
        "    if module is None:",
        "        raise AttributeError(f\"module {__name__!r} has no attribute {name!r}\")",
        "    value = getattr(importlib.import_module(f\"{__name__}.{module}\"), name)",
        "    globals()[name] = value",
        "    return value",
        "",
        "",
        "def __dir__() -> list[str]:",
        "    return sorted(set(globals()) | set(_MODULES))",
        "",
        "",
        "class _ByApiKey(Mapping[int, \"type[Message]\"]):",
        "    \"\"\"API key -> message class, each class imported when its key is first looked up.",
        "",
        "    ``resolved`` is the plain dict of the classes imported so far (``RESOLVED_REQUESTS``,",
        "    ``RESOLVED_RESPONSES``): a hot path looks there first, one dict hit, and comes here only",
        "    for a key it has not seen yet.\"\"\"",
        "",
        "    __slots__ = (\"_names\", \"resolved\")",
        "",
        "    def __init__(self, names: dict[int, str], resolved: dict[int, type[Message]]) -> None:",
        "        self._names = names",
        "        self.resolved = resolved",
        "",
        "    def __getitem__(self, api_key: int) -> type[Message]:",
        "        cls = self.resolved.get(api_key)",
        "        if cls is None:",
        "            cls = self.resolved[api_key] = __getattr__(self._names[api_key])",
        "        return cls",
        "",
        "    def get(  # type: ignore[override]",
        "        self, api_key: int, default: type[Message] | None = None",
        "    ) -> type[Message] | None:",
        "        cls = self.resolved.get(api_key)",
        "        if cls is not None:",
        "            return cls",
        "        return self[api_key] if api_key in self._names else default",
        "",
        "    def __contains__(self, api_key: object) -> bool:",
        "        return api_key in self._names",
        "",
        "    def __iter__(self) -> Iterator[int]:",
        "        return iter(self._names)",
        "",
        "    def __len__(self) -> int:",
        "        return len(self._names)",
        "",
        "    def __repr__(self) -> str:",
        "        return f\"_ByApiKey({self._names!r})\"",
        "",
        "",
        "# API key -> class for the classes already imported: plain dicts, filled by REQUESTS and",
        "# RESPONSES as keys are looked up (``RESOLVED_REQUESTS.get(k) or REQUESTS.get(k)``).",
        "RESOLVED_REQUESTS: dict[int, type[Message]] = {}",
        "RESOLVED_RESPONSES: dict[int, type[Message]] = {}",
    ]
    lines += _block("REQUESTS: Mapping[int, type[Message]] = _ByApiKey({",
                    [f"{k}: {reqs[k][0]!r}" for k in sorted(reqs)], "}, RESOLVED_REQUESTS)")
    lines += _block("RESPONSES: Mapping[int, type[Message]] = _ByApiKey({",
                    [f"{k}: {resps[k][0]!r}" for k in sorted(resps)], "}, RESOLVED_RESPONSES)")
    lines += _block("API_NAMES: dict[int, str] = {", [f"{k}: {reqs[k][1]!r}" for k in sorted(reqs)], "}")
    lines.append("")
    lines += _exports(["API_NAMES", "REQUESTS", "RESOLVED_REQUESTS", "RESOLVED_RESPONSES", "RESPONSES",
                       *sorted(m.name for ms in mods.values() for m in ms)])
    return "\n".join(lines) + "\n"


def render_sub_init(pkg: str, mods: dict[str, list[MessageSpec]]) -> str:
    """A record sub-package's ``__init__``: its classes by name and by API key."""
    lines = [
        f"{GENERATED_BY}. Do not edit.",
        f'"""Generated Kafka internal record formats ({pkg})."""',
        "",
    ]
    by_kind: dict[str, dict[int, str]] = {}
    names = []
    for mod, msgs in sorted(mods.items()):
        lines.append(f"from kbroker_protocol.messages.{pkg}.{mod} import {', '.join(m.name for m in msgs)}")
        for m in msgs:
            names.append(m.name)
            if m.api_key is not None:
                by_kind.setdefault(m.kind, {})[m.api_key] = m.name
    lines.append("")
    lines += _block("CLASSES: dict[str, type] = {", [f"{n!r}: {n}" for n in sorted(names)], "}")
    consts = []
    for kind, table in sorted(by_kind.items()):
        const = re.sub(r"[^A-Z]", "_", kind.upper()) + "_BY_API_KEY"
        consts.append(const)
        lines += _block(f"{const}: dict[int, type] = {{", [f"{k}: {table[k]}" for k in sorted(table)], "}")
    # Explicit exports: importers of ``kbroker_protocol.messages.<pkg>`` pass mypy's
    # no_implicit_reexport (part of --strict).
    lines.append("")
    lines += _exports(["CLASSES", *consts, *sorted(names)])
    return "\n".join(lines) + "\n"
