"""The spec's type and field model: version ranges, field types, and the struct tree one message
spec builds (``build_message``), with the walks over it that the checks and emitters share."""

from __future__ import annotations

import keyword
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_VERSION = 0x7FFF

# Fixed-width field types: ``struct`` format code and size in bytes.
FIXED = {
    "int8": ("b", 1),
    "int16": ("h", 2),
    "uint16": ("H", 2),
    "int32": ("i", 4),
    "uint32": ("I", 4),
    "int64": ("q", 8),
    "float64": ("d", 8),
    "bool": ("?", 1),
    "uuid": ("16s", 16),
}
VARIABLE = {"string", "bytes", "records"}
PRIMITIVES = set(FIXED) | VARIABLE


@dataclass(frozen=True)
class Versions:
    lo: int
    hi: int  # inclusive; MAX_VERSION when open-ended

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi


NONE = Versions(1, 0)


def parse_versions(text: str | None, default: Versions | None = None) -> Versions:
    if text is None:
        if default is None:
            raise ValueError("missing versions")
        return default
    text = str(text).strip()
    if text == "none":
        return NONE
    if text.endswith("+"):
        return Versions(int(text[:-1]), MAX_VERSION)
    if "-" in text:
        lo, hi = text.split("-")
        return Versions(int(lo), int(hi))
    return Versions(int(text), int(text))


def snake(name: str) -> str:
    """Kafka's camel-to-snake rule: an underscore before a capital that follows a non-capital."""
    out = []
    prev_cap = True
    for ch in name:
        if ch.isupper():
            if not prev_cap:
                out.append("_")
            out.append(ch.lower())
            prev_cap = True
        else:
            out.append(ch)
            prev_cap = False
    s = "".join(out)
    if keyword.iskeyword(s):
        s += "_"
    return s


@dataclass
class FieldSpec:
    name: str
    attr: str
    type: str  # element type for arrays
    is_array: bool
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default: object  # raw spec default (None = absent)
    flexible_override: Versions | None
    struct: StructSpec | None = None

    def is_fixed(self) -> bool:
        return not self.is_array and self.type in FIXED


@dataclass
class StructSpec:
    name: str
    path: tuple[str, ...]  # class path, e.g. ("ProduceRequest", "TopicProduceData")
    fields: list[FieldSpec]
    children: list[StructSpec] = field(default_factory=list)  # nested (inline) structs
    common: bool = False
    versions: set[int] = field(default_factory=set)  # versions that need a reader/writer
    uses_common: list[str] = field(default_factory=list)

    @property
    def ident(self) -> str:
        return "_".join(self.path)


@dataclass
class MessageSpec:
    name: str
    kind: str
    api_key: int | None
    valid: Versions
    flexible: Versions
    root: StructSpec
    commons: dict[str, StructSpec]
    source: str
    raw_commons: dict[str, object]


def struct_tree(st: StructSpec) -> Iterator[StructSpec]:
    """``st`` and its nested (inline) structs, parents first."""
    yield st
    for child in st.children:
        yield from struct_tree(child)


def message_structs(msg: MessageSpec) -> Iterator[StructSpec]:
    """Every struct a message defines: its root's tree, then each common struct's tree."""
    yield from struct_tree(msg.root)
    for common in msg.commons.values():
        yield from struct_tree(common)


def fixed_runs(fields: list[FieldSpec]) -> list[list[FieldSpec]]:
    """``fields`` in order, consecutive fixed-width fields grouped into one run (read or written
    with one ``struct.Struct``); every other field is a run of its own."""
    runs: list[list[FieldSpec]] = []
    for f in fields:
        if f.is_fixed() and runs and runs[-1][-1].is_fixed():
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _strip_about(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip_about(v) for k, v in x.items() if k != "about"}
    if isinstance(x, list):
        return [_strip_about(v) for v in x]
    return x


def build_message(spec: dict[str, Any], source: str) -> MessageSpec:
    name = spec["name"]
    valid = parse_versions(spec["validVersions"])
    if name == "RequestHeader":
        valid = Versions(0, valid.hi)  # header v0 (no client id) is still spoken
    flexible = parse_versions(spec.get("flexibleVersions", "none"))
    commons: dict[str, StructSpec] = {}
    raw_commons = {}
    for cs in spec.get("commonStructs", []):
        st = StructSpec(cs["name"], (cs["name"],), [], common=True)
        commons[cs["name"]] = st
        raw_commons[cs["name"]] = _strip_about(cs)
    for cs in spec.get("commonStructs", []):
        st = commons[cs["name"]]
        st.fields = [_build_field(f, st, commons) for f in cs["fields"]]
    root = StructSpec(name, (name,), [])
    root.fields = [_build_field(f, root, commons) for f in spec["fields"]]
    msg = MessageSpec(
        name, spec["type"], spec.get("apiKey"), valid, flexible, root, commons, source, raw_commons
    )
    for v in range(valid.lo, valid.hi + 1):
        _mark_versions(root, v)
    _check_unique_names(msg)
    return msg


def _build_field(f: dict[str, Any], parent: StructSpec, commons: dict[str, StructSpec]) -> FieldSpec:
    ftype = f["type"]
    is_array = ftype.startswith("[]")
    elem = ftype[2:] if is_array else ftype
    tagged = parse_versions(f.get("taggedVersions"), NONE)
    versions = parse_versions(f.get("versions"), tagged if tagged != NONE else None)
    fs = FieldSpec(
        name=f["name"],
        attr=snake(f["name"]),
        type=elem,
        is_array=is_array,
        versions=versions,
        nullable=parse_versions(f.get("nullableVersions"), NONE),
        tagged=tagged,
        tag=f.get("tag"),
        default="null" if "default" in f and f["default"] is None else f.get("default"),
        flexible_override=parse_versions(f["flexibleVersions"]) if "flexibleVersions" in f else None,
    )
    if elem not in PRIMITIVES:
        if "fields" in f:
            st = StructSpec(elem, parent.path + (elem,), [])
            st.fields = [_build_field(sub, st, commons) for sub in f["fields"]]
            parent.children.append(st)
        elif elem in commons:
            st = commons[elem]
            if elem not in parent.uses_common:
                parent.uses_common.append(elem)
        else:
            raise ValueError(f"unknown struct type {elem} in {parent.name}.{f['name']}")
        fs.struct = st
    return fs


def _mark_versions(st: StructSpec, v: int) -> None:
    st.versions.add(v)
    for f in st.fields:
        if f.struct is not None and v in f.versions:
            _mark_versions(f.struct, v)


def _check_unique_names(msg: MessageSpec) -> None:
    seen: set[str] = set()
    for st in message_structs(msg):
        if st.name in seen:
            raise ValueError(f"{msg.name}: struct name {st.name} defined twice")
        seen.add(st.name)
