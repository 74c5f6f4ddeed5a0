#!/usr/bin/env python3
"""Generate ``protocol/messages/`` from Apache Kafka's JSON message specs.

Usage::

    .venv/bin/python scripts/generate_protocol.py [OUT_DIR] [--spec-dir DIR] [--prune]

OUT_DIR defaults to ``protocol/messages`` and the spec dir to ``../shared/kafka-spec``, both
relative to the repository root.  A spec directory that is missing or incomplete (a sub-directory
without specs, a header or a request's response missing, or fewer specs than the modules already
generated in OUT_DIR) is refused with a message and exit status 2, and nothing is written or
deleted; ``--prune`` accepts a spec set from which APIs were removed and deletes their modules.

The output is ordinary Python checked into the repository: one module per request/response
pair (``produce.py`` holds ``ProduceRequest`` and ``ProduceResponse``), the two headers, and the
internal record formats in sub-packages (``data/``, ``coordinator/``, ``metadata_records/``,
``raft/``).

For every struct and every version the generator emits a straight-line reader
``_read_<Path>_v<N>(buf, pos) -> (obj, pos)`` and writer ``_write_<Path>_v<N>(obj, w)``;
versions whose code is identical share one function, and each class dispatches through a tuple
indexed by version (``_READERS``/``_WRITERS``).  Consecutive fixed-width fields are read and
written with one precompiled ``struct.Struct``; records fields and array counts are decoded
inline; leaf structs (no arrays, structs or known tagged fields) are decoded and encoded inside
their parent's loop; struct-valued defaults are built on first access rather than on decode.

Field types are those of Kafka's own generator: int8/16/32/64, uint16, uint32, float64, bool,
uuid, string, bytes, records, arrays and structs (the specs have no varint field type; varints
appear only as compact lengths and tagged-field headers).  Only the protocol's facts (names,
types, versions, defaults, tags) reach the output; the specs' prose does not.

Constructors and attributes are annotated with each field's Python type (``PY_TYPES``; ``| None``
where a version is nullable or the default is null; arrays ``list[...]``; structs their class):
``mypy --strict`` checks the messages the broker builds.  The modules use postponed annotations,
so the annotations are never evaluated and cost nothing at run time.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kbroker_protocol.interpreter import strip_json_comments  # noqa: E402

DEFAULT_OUT = REPO / "protocol" / "messages"
DEFAULT_SPEC = REPO.parent / "shared" / "kafka-spec"
MAX_VERSION = 0x7FFF

# Spec sub-directory -> output sub-package ("" = the messages package itself).
SPEC_DIRS = {
    "message": "",
    "group-coordinator": "coordinator",
    "transaction-coordinator": "coordinator",
    "metadata": "metadata_records",
    "raft": "raft",
}

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
STRUCT_NAME_CODE = {"b": "b", "h": "h", "H": "H", "i": "i", "I": "I", "q": "q", "d": "d", "?": "o", "16s": "u"}


# ------------------------------------------------------------------------------------------
# Spec loading
# ------------------------------------------------------------------------------------------


def load_spec(path: Path) -> dict:
    """Parse one spec file: ``//`` comments (whole lines or after JSON, never inside strings)
    are dropped before JSON parsing (the one piece shared with the reference interpreter)."""
    return json.loads(strip_json_comments(path.read_text(encoding="utf-8")))


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


def _strip_about(x):
    if isinstance(x, dict):
        return {k: _strip_about(v) for k, v in x.items() if k != "about"}
    if isinstance(x, list):
        return [_strip_about(v) for v in x]
    return x


def build_message(spec: dict, source: str) -> MessageSpec:
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


def _build_field(f: dict, parent: StructSpec, commons: dict[str, StructSpec]) -> FieldSpec:
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

    def walk(st: StructSpec) -> None:
        if st.name in seen:
            raise ValueError(f"{msg.name}: struct name {st.name} defined twice")
        seen.add(st.name)
        for c in st.children:
            walk(c)

    walk(msg.root)
    for c in msg.commons.values():
        walk(c)


# ------------------------------------------------------------------------------------------
# Defaults
# ------------------------------------------------------------------------------------------


def default_expr(f: FieldSpec) -> str:
    """Python source for the field's default value (containers are fresh objects)."""
    d = f.default.strip() if isinstance(f.default, str) else f.default
    null = _null_default(f)
    if f.is_array:
        return "None" if null else "[]"
    if f.struct is not None:
        return "None" if null else f"{class_ref(f.struct)}()"
    t = f.type
    if t in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
        return "0" if d is None else str(int(str(d), 0))
    if t == "float64":
        return "0.0" if d is None else repr(float(d))
    if t == "bool":
        if d is None:
            return "False"
        if isinstance(d, bool):
            return repr(d)
        return {"true": "True", "false": "False"}[str(d).lower()]
    if t == "uuid":
        return "_ZERO_UUID"
    if t == "string":
        if null:
            return "None"
        return "''" if d is None else repr(d)
    if t == "bytes":
        return "None" if null else "b''"
    if t == "records":
        return "None"
    raise ValueError(t)


def _null_default(f: FieldSpec) -> bool:
    """JSON ``null`` and the string ``"null"`` both mean a null default."""
    return isinstance(f.default, str) and f.default.strip() == "null"


def is_lazy(f: FieldSpec) -> bool:
    """Struct-valued fields whose default is a fresh struct: decoders leave them unset and the
    class builds the default on first access (``Message.__getattr__``), which keeps decoding
    of absent or untransmitted tagged structs free."""
    return f.struct is not None and not f.is_array and not _null_default(f)


# The codec modules the generated code takes its helpers from, and their aliases there: the base
# class and field values (kbroker_protocol.message), decoding (wire_read), encoding (wire_write).
PRIMITIVE_MODULES = {"message": "_m", "wire_read": "_r", "wire_write": "_w"}
_MESSAGE_NAMES = frozenset({"Message", "DEFAULT", "ZERO_UUID", "Records"})


def primitive_home(name: str) -> str:
    """The module of ``PRIMITIVE_MODULES`` that defines a helper the generated code uses."""
    if name in _MESSAGE_NAMES:
        return "message"
    if name == "Writer" or name.startswith(("write_", "pack_")):
        return "wire_write"
    return "wire_read"


# Python types of the spec's scalar types, as the codec holds them at run time (see
# kbroker_protocol.message: uuids are uuid.UUID, bytes are bytes, records are any of the
# values the writers accept and come back from a decode as memoryview slices).
PY_TYPES = {
    "int8": "int",
    "int16": "int",
    "uint16": "int",
    "int32": "int",
    "uint32": "int",
    "int64": "int",
    "float64": "float",
    "bool": "bool",
    "uuid": "_uuid.UUID",
    "string": "str",
    "bytes": "bytes",
    "records": "_m.Records",
}


def py_type(f: FieldSpec) -> str:
    """The field's annotation (a string: generated modules use postponed annotations)."""
    if f.struct is None:
        elem = PY_TYPES[f.type]
    elif f.struct.common:
        # A class using a common struct also names it in its body (``Common = Common``), which
        # would shadow the class in its methods' annotations: the module-level alias does not.
        elem = class_ref(f.struct)
    else:
        elem = ".".join(f.struct.path)
    t = f"list[{elem}]" if f.is_array else elem
    # None where a version is nullable, where the default is null, and for records (whose
    # default is None in every version).
    if f.nullable != NONE or default_expr(f) == "None":
        t += " | None"
    return t


def class_ref(st: StructSpec) -> str:
    """Module-level alias for a struct's class (used by generated functions)."""
    return "_C_" + st.ident


# ------------------------------------------------------------------------------------------
# Code emission
# ------------------------------------------------------------------------------------------


class ModuleEmitter:
    def __init__(self, messages: list[MessageSpec]) -> None:
        self.messages = messages
        self.structs_fmt: dict[str, str] = {}  # format -> constant name
        self.funcs: list[str] = []
        self.canon: dict[tuple[str, str, int], str] = {}  # (kind, ident, v) -> function name
        self.bodies: dict[tuple[str, str], dict[str, str]] = {}
        self.tables: list[str] = []
        self.imports: set[str] = set()
        self.commons: dict[str, StructSpec] = {}
        self.common_versions: dict[str, set[int]] = {}
        self.common_flexible: dict[str, Versions] = {}
        self.generated: set[str] = set()
        self.default_fns: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def use(self, name: str) -> str:
        self.imports.add(name)
        return "_" + name

    def struct_const(self, fmt: str) -> str:
        if fmt not in self.structs_fmt:
            codes = re.findall(r"16s|.", fmt[1:])
            self.structs_fmt[fmt] = "_S_" + "".join(STRUCT_NAME_CODE[c] for c in codes)
        return self.structs_fmt[fmt]

    # -- per struct ---------------------------------------------------------------------
    def fn_name(self, kind: str, st: StructSpec, v: int) -> str:
        if st.common and st.ident not in self.generated:
            self.gen_struct(st, self.common_flexible[st.name])
        return self.canon[(kind, st.ident, v)]

    def gen_struct(self, st: StructSpec, flexible: Versions) -> None:
        """Emit reader and writer functions for ``st`` (children first)."""
        if st.ident in self.generated:
            return
        self.generated.add(st.ident)
        for child in st.children:
            self.gen_struct(child, flexible)
        for kind in ("read", "write"):
            seen: dict[str, str] = {}
            for v in sorted(st.versions):
                flex = v in flexible
                body = self.read_body(st, v, flex) if kind == "read" else self.write_body(st, v, flex)
                name = f"_{kind}_{st.ident}_v{v}"
                if body in seen:
                    self.canon[(kind, st.ident, v)] = seen[body]
                    alias = f"{name} = {seen[body]}"
                    if self.funcs and self.funcs[-1].startswith("_"):
                        self.funcs[-1] += "\n" + alias
                    else:
                        self.funcs.append(alias)
                    continue
                seen[body] = name
                self.canon[(kind, st.ident, v)] = name
                args = "(buf, pos)" if kind == "read" else "(o, w)"
                self.funcs.append(f"def {name}{args}:\n{body.rstrip()}")

    def present(self, st: StructSpec, v: int) -> tuple[list[FieldSpec], list[FieldSpec]]:
        regular = [f for f in st.fields if v in f.versions and v not in f.tagged]
        tagged = [f for f in st.fields if v in f.versions and v in f.tagged]
        tagged.sort(key=lambda f: f.tag)
        return regular, tagged

    @staticmethod
    def field_flex(f: FieldSpec, v: int, flex: bool) -> bool:
        if f.flexible_override is not None:
            return flex and v in f.flexible_override
        return flex

    # -- reading -----------------------------------------------------------------------
    def read_body(self, st: StructSpec, v: int, flex: bool) -> str:
        out = self.read_lines(st, v, flex, "o", "    ")
        out.append("    return o, pos")
        return "\n".join(out) + "\n"

    def is_leaf(self, st: StructSpec, v: int) -> bool:
        """No arrays, structs or known tagged fields in ``v``: simple enough to inline."""
        regular, tagged = self.present(st, v)
        return not tagged and all(not f.is_array and f.struct is None for f in regular)

    def read_lines(self, st: StructSpec, v: int, flex: bool, obj: str, ind: str) -> list[str]:
        """Statements decoding one ``st`` into the new object ``obj``, advancing ``pos``."""
        out: list[str] = []
        out.append(f"{ind}{obj} = _new({class_ref(st)})")
        regular, tagged = self.present(st, v)
        i = 0
        while i < len(regular):
            f = regular[i]
            if f.is_fixed():
                run = [f]
                while i + 1 < len(regular) and regular[i + 1].is_fixed():
                    i += 1
                    run.append(regular[i])
                self.read_fixed_run(run, obj, out, ind)
            else:
                self.read_field(f, v, self.field_flex(f, v, flex), f"{obj}.{f.attr}", out, ind)
            i += 1
        present = {id(f) for f in regular}
        for f in st.fields:
            if id(f) not in present and not is_lazy(f):
                out.append(f"{ind}{obj}.{f.attr} = {default_expr(f)}")
        if not flex:
            out.append(f"{ind}{obj}.unknown_tagged_fields = []")
        elif not tagged:
            out.append(f"{ind}if buf[pos] == 0:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}    {obj}.unknown_tagged_fields = []")
            out.append(f"{ind}else:")
            out.append(f"{ind}    {obj}.unknown_tagged_fields, pos = {self.use('read_unknown_tags')}(buf, pos)")
        else:
            out.append(f"{ind}unknown = []")
            out.append(f"{ind}{obj}.unknown_tagged_fields = unknown")
            out.append(f"{ind}if buf[pos] == 0:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}else:")
            i2 = ind + "    "
            out.append(f"{i2}count, pos = {self.use('read_uvarint')}(buf, pos)")
            out.append(f"{i2}{self.use('check_tag_count')}(buf, pos, count)")
            out.append(f"{i2}for _ in range(count):")
            i3 = i2 + "    "
            out.append(f"{i3}tag, end, pos = {self.use('read_tag_header')}(buf, pos)")
            kw = "if"
            for f in tagged:
                out.append(f"{i3}{kw} tag == {f.tag}:")
                self.read_field(f, v, True, f"{obj}.{f.attr}", out, i3 + "    ")
                out.append(f"{i3}    if pos > end:")
                out.append(f"{i3}        raise {self.use('tag_overrun')}(tag)")
                kw = "elif"
            out.append(f"{i3}else:")
            out.append(f"{i3}    unknown.append((tag, bytes(buf[pos:end])))")
            out.append(f"{i3}pos = end")
        return out

    def read_fixed_run(self, run: list[FieldSpec], obj: str, out: list[str], ind: str) -> None:
        fmt = "".join(FIXED[f.type][0] for f in run)
        size = sum(FIXED[f.type][1] for f in run)
        const = self.struct_const(">" + fmt)
        if not any(f.type == "uuid" for f in run):
            if len(run) == 1:
                out.append(f"{ind}{obj}.{run[0].attr} = {const}.unpack_from(buf, pos)[0]")
            else:
                targets = ", ".join(f"{obj}.{f.attr}" for f in run)
                out.append(f"{ind}{targets} = {const}.unpack_from(buf, pos)")
        else:
            uuid_of = self.use("uuid_from_bytes")
            if len(run) == 1:
                out.append(f"{ind}{obj}.{run[0].attr} = {uuid_of}({const}.unpack_from(buf, pos)[0])")
            else:
                out.append(f"{ind}t = {const}.unpack_from(buf, pos)")
                for k, f in enumerate(run):
                    val = f"t[{k}]" if f.type != "uuid" else f"{uuid_of}(t[{k}])"
                    out.append(f"{ind}{obj}.{f.attr} = {val}")
        out.append(f"{ind}pos += {size}")

    def scalar_reader(self, t: str, flex: bool, nullable: bool) -> str:
        if t in ("string", "bytes"):
            name = "read_" + ("compact_" if flex else "") + ("nullable_" if nullable else "") + t
            return f"{self.use(name)}(buf, pos)"
        if t == "records":
            name = "read_compact_records" if flex else "read_records"
            return f"{self.use(name)}(buf, pos, {nullable})"
        if t == "uuid":
            return f"{self.use('read_uuid')}(buf, pos)"
        raise ValueError(t)

    def min_element_size(self, f: FieldSpec, v: int, flex: bool) -> int:
        """Fewest bytes one array element can take: a count larger than the bytes left divided
        by this is rejected before anything is allocated."""
        if f.struct is not None:
            return max(1, self.min_struct_size(f.struct, v, flex))
        return self.min_value_size(f.type, False, flex)

    @staticmethod
    def min_value_size(t: str, is_array: bool, flex: bool) -> int:
        if flex:
            return FIXED[t][1] if t in FIXED and not is_array else 1
        if is_array:
            return 4
        if t in FIXED:
            return FIXED[t][1]
        return 2 if t == "string" else 4  # bytes, records

    def min_struct_size(self, st: StructSpec, v: int, flex: bool) -> int:
        regular, _tagged = self.present(st, v)
        size = 1 if flex else 0  # the tagged-field count
        for f in regular:
            field_flex = self.field_flex(f, v, flex)
            if f.struct is not None and not f.is_array:
                size += 1 if v in f.nullable else self.min_struct_size(f.struct, v, flex)
            else:
                size += self.min_value_size(f.type, f.is_array, field_flex)
        return size

    def read_field(self, f: FieldSpec, v: int, flex: bool, target: str, out: list[str], ind: str) -> None:
        nullable = v in f.nullable
        if f.is_array:
            min_size = self.min_element_size(f, v, flex)
            self.read_count(flex, nullable, min_size, out, ind)
            inner = ind
            if nullable:
                out.append(f"{ind}if n < 0:")
                out.append(f"{ind}    {target} = None")
                out.append(f"{ind}else:")
                inner = ind + "    "
            if f.type in FIXED and f.type != "uuid":
                code = FIXED[f.type][0]
                out.append(f"{inner}{target}, pos = {self.use('read_fixed_array')}(buf, pos, n, {code!r})")
            elif f.type == "uuid":
                out.append(f"{inner}{target}, pos = {self.use('read_uuid_array')}(buf, pos, n)")
            else:
                if f.struct is not None:
                    call = f"{self.fn_name('read', f.struct, v)}(buf, pos)"
                else:
                    call = self.scalar_reader(f.type, flex, False)
                out.append(f"{inner}items = []")
                out.append(f"{inner}append = items.append")
                out.append(f"{inner}for _ in range(n):")
                if f.struct is not None and self.is_leaf(f.struct, v):
                    # Small leaf structs are decoded in the loop itself (no call per element).
                    out.extend(self.read_lines(f.struct, v, flex, "item", inner + "    "))
                else:
                    out.append(f"{inner}    item, pos = {call}")
                out.append(f"{inner}    append(item)")
                out.append(f"{inner}{target} = items")
            return
        if f.struct is not None:
            call = f"{self.fn_name('read', f.struct, v)}(buf, pos)"
            if nullable and v in f.tagged:
                # Kafka marks presence of a tagged nullable struct with an unsigned varint.
                out.append(f"{ind}marker, pos = {self.use('read_uvarint')}(buf, pos)")
                out.append(f"{ind}if marker == 0:")
                out.append(f"{ind}    {target} = None")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {target}, pos = {call}")
            elif nullable:
                # A non-tagged nullable struct is preceded by an int8: negative means null.
                out.append(f"{ind}if buf[pos] >= 0x80:")
                out.append(f"{ind}    pos += 1")
                out.append(f"{ind}    {target} = None")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {target}, pos = {call.replace('(buf, pos)', '(buf, pos + 1)')}")
            else:
                out.append(f"{ind}{target}, pos = {call}")
            return
        if f.type in FIXED:
            code, size = FIXED[f.type]
            const = self.struct_const(">" + code)
            if f.type == "uuid":
                out.append(f"{ind}{target} = {self.use('uuid_from_bytes')}({const}.unpack_from(buf, pos)[0])")
            else:
                out.append(f"{ind}{target} = {const}.unpack_from(buf, pos)[0]")
            out.append(f"{ind}pos += {size}")
            return
        if f.type == "records":
            self.read_records_inline(flex, nullable, target, out, ind)
            return
        out.append(f"{ind}{target}, pos = {self.scalar_reader(f.type, flex, nullable)}")

    def read_len(self, flex: bool, out: list[str], ind: str) -> None:
        """``n`` = the raw length: int32, or compact uvarint minus one."""
        if flex:
            out.append(f"{ind}n = buf[pos]")
            out.append(f"{ind}if n < 0x80:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}else:")
            out.append(f"{ind}    n, pos = {self.use('read_uvarint')}(buf, pos)")
            out.append(f"{ind}n -= 1")
        else:
            out.append(f"{ind}n = {self.struct_const('>i')}.unpack_from(buf, pos)[0]")
            out.append(f"{ind}pos += 4")

    def read_null_check(self, nullable: bool, out: list[str], ind: str) -> None:
        out.append(f"{ind}if n < 0:")
        if nullable:
            out.append(f"{ind}    if n != -1:")
            out.append(f"{ind}        raise {self.use('bad_length')}(n)")
        else:
            out.append(f"{ind}    raise {self.use('bad_length')}(n)")

    def read_count(self, flex: bool, nullable: bool, min_size: int, out: list[str], ind: str) -> None:
        """Array count into ``n`` (-1 = null), checked against the bytes left."""
        self.read_len(flex, out, ind)
        self.read_null_check(nullable, out, ind)
        cond = "n > len(buf) - pos" if min_size == 1 else f"n * {min_size} > len(buf) - pos"
        out.append(f"{ind}elif {cond}:")
        out.append(f"{ind}    raise {self.use('array_too_long')}(n, len(buf) - pos)")

    def read_records_inline(self, flex: bool, nullable: bool, target: str, out: list[str], ind: str) -> None:
        """Records: a zero-copy slice of ``buf``."""
        self.read_len(flex, out, ind)
        self.read_null_check(nullable, out, ind)
        inner = ind
        if nullable:
            out.append(f"{ind}    {target} = None")
            out.append(f"{ind}else:")
            inner = ind + "    "
        out.append(f"{inner}end = pos + n")
        out.append(f"{inner}if end > len(buf):")
        out.append(f"{inner}    raise {self.use('short')}()")
        out.append(f"{inner}{target} = buf[pos:end]")
        out.append(f"{inner}pos = end")

    # -- writing -----------------------------------------------------------------------
    def write_body(self, st: StructSpec, v: int, flex: bool) -> str:
        lines = self.write_lines(st, v, flex, "o", "b", "w", "    ")
        if not lines:
            return "    pass\n"
        return "\n".join(["    b = w.buf", *lines]) + "\n"

    def write_lines(self, st: StructSpec, v: int, flex: bool, obj: str, b: str, w: str, ind: str) -> list[str]:
        """Statements appending ``obj`` (an ``st``) to bytearray ``b`` of writer ``w``."""
        out: list[str] = []
        regular, tagged = self.present(st, v)
        i = 0
        while i < len(regular):
            f = regular[i]
            if f.is_fixed():
                run = [f]
                while i + 1 < len(regular) and regular[i + 1].is_fixed():
                    i += 1
                    run.append(regular[i])
                fmt = "".join(FIXED[x.type][0] for x in run)
                const = self.struct_const(">" + fmt)
                vals = ", ".join(f"{obj}.{x.attr}.bytes" if x.type == "uuid" else f"{obj}.{x.attr}" for x in run)
                out.append(f"{ind}{b} += {const}.pack({vals})")
            else:
                self.write_field(f, v, self.field_flex(f, v, flex), f"{obj}.{f.attr}", b, w, out, ind)
            i += 1
        if flex:
            if not tagged:
                out.append(f"{ind}u = {obj}.unknown_tagged_fields")
                out.append(f"{ind}if u:")
                out.append(f"{ind}    {self.use('write_unknown_tags')}({b}, u)")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(0)")
            else:
                out.append(f"{ind}tags = []")
                for f in tagged:
                    out.append(f"{ind}v = {obj}.{f.attr}")
                    if _null_default(f):
                        out.append(f"{ind}if v is not None:")
                    elif f.struct is not None and not f.is_array:
                        out.append(f"{ind}if v is None or not ({self.is_default_expr(f.struct, 'v')}):")
                    else:
                        out.append(f"{ind}if v != {default_expr(f)}:")
                    i2 = ind + "    "
                    out.append(f"{i2}t = {self.use('Writer')}()")
                    field_out: list[str] = []
                    self.write_field(f, v, True, "v", "tb", "t", field_out, i2)
                    if any("tb" in line for line in field_out):
                        out.append(f"{i2}tb = t.buf")
                    out.extend(field_out)
                    out.append(f"{i2}tags.append(({f.tag}, t.getvalue()))")
                out.append(f"{ind}u = {obj}.unknown_tagged_fields")
                out.append(f"{ind}if tags or u:")
                out.append(f"{ind}    {self.use('write_tags')}({b}, tags, u)")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(0)")
        return out

    def is_default_expr(self, st: StructSpec, var: str) -> str:
        """Expression: is every field of ``var`` (an ``st``) at its default?  Nested structs
        are checked by a generated ``_is_default_<Path>`` function."""
        conds = []
        for f in st.fields:
            if f.struct is not None and not f.is_array and not _null_default(f):
                fn = self.is_default_fn(f.struct)
                conds.append(f"{var}.{f.attr} is not None and {fn}({var}.{f.attr})")
            elif f.is_array:
                conds.append(f"{var}.{f.attr} is None" if _null_default(f) else f"{var}.{f.attr} == []")
            else:
                d = default_expr(f)
                conds.append(f"{var}.{f.attr} is None" if d == "None" else f"{var}.{f.attr} == {d}")
        conds.append(f"not {var}.unknown_tagged_fields")
        return " and ".join(conds)

    def is_default_fn(self, st: StructSpec) -> str:
        """Name of a generated ``_is_default_<Path>(v)``: is every field at its default?"""
        name = f"_is_default_{st.ident}"
        if name not in self.default_fns:
            self.default_fns.add(name)
            self.funcs.append(f"def {name}(v):\n    return {self.is_default_expr(st, 'v')}")
        return name

    def scalar_writer(self, t: str, flex: bool, nullable: bool, value: str, b: str, w: str) -> str:
        if t in ("string", "bytes"):
            name = "write_" + ("compact_" if flex else "") + ("nullable_" if nullable else "") + t
            return f"{self.use(name)}({b}, {value})"
        if t == "records":
            name = "write_compact_records" if flex else "write_records"
            return f"{self.use(name)}({w}, {value}, {nullable})"
        raise ValueError(t)

    def write_field(
        self, f: FieldSpec, v: int, flex: bool, value: str, b: str, w: str, out: list[str], ind: str
    ) -> None:
        nullable = v in f.nullable
        if f.is_array:
            local = "a"
            out.append(f"{ind}{local} = {value}")
            inner = ind
            if nullable:
                out.append(f"{ind}if {local} is None:")
                out.append(f"{ind}    {b}.append(0)" if flex else f"{ind}    {b} += b'\\xff\\xff\\xff\\xff'")
                out.append(f"{ind}else:")
                inner = ind + "    "
            if flex:
                out.append(f"{inner}{self.use('write_uvarint')}({b}, len({local}) + 1)")
            else:
                out.append(f"{inner}{b} += {self.struct_const('>i')}.pack(len({local}))")
            if f.type in FIXED and f.type != "uuid":
                code = FIXED[f.type][0]
                out.append(f"{inner}{b} += {self.use('pack_array')}({code!r}, {local})")
            elif f.type == "uuid":
                out.append(f"{inner}for item in {local}:")
                out.append(f"{inner}    {b} += item.bytes")
            elif f.struct is not None:
                fn = self.fn_name("write", f.struct, v)
                out.append(f"{inner}for item in {local}:")
                if self.is_leaf(f.struct, v):
                    body = self.write_lines(f.struct, v, flex, "item", b, w, inner + "    ")
                    out.extend(body or [f"{inner}    pass"])
                else:
                    out.append(f"{inner}    {fn}(item, {w})")
            else:
                out.append(f"{inner}for item in {local}:")
                out.append(f"{inner}    {self.scalar_writer(f.type, flex, False, 'item', b, w)}")
            return
        if f.struct is not None:
            fn = self.fn_name("write", f.struct, v)
            if nullable:
                out.append(f"{ind}s = {value}")
                out.append(f"{ind}if s is None:")
                # int8 -1, or for a tagged field the unsigned varint 0.
                out.append(f"{ind}    {b}.append({'0' if v in f.tagged else '0xFF'})")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(1)")
                out.append(f"{ind}    {fn}(s, {w})")
            else:
                out.append(f"{ind}{fn}({value}, {w})")
            return
        if f.type in FIXED:
            const = self.struct_const(">" + FIXED[f.type][0])
            val = f"{value}.bytes" if f.type == "uuid" else value
            out.append(f"{ind}{b} += {const}.pack({val})")
            return
        out.append(f"{ind}{self.scalar_writer(f.type, flex, nullable, value, b, w)}")

    # -- classes -----------------------------------------------------------------------
    def class_source(self, st: StructSpec, msg: MessageSpec, ind: str) -> list[str]:
        out = [f"{ind}class {st.name}(_Message):"]
        i2 = ind + "    "
        attrs = [f.attr for f in st.fields]
        out.append(f"{i2}__slots__ = ({''.join(repr(a) + ', ' for a in attrs)}'unknown_tagged_fields')")
        out.append(f"{i2}_FIELDS = ({''.join(repr(a) + ', ' for a in attrs)})")
        out.append(f"{i2}API_KEY = {msg.api_key!r}")
        vers = sorted(st.versions)
        lo, hi = (vers[0], vers[-1]) if vers else (msg.valid.lo, msg.valid.hi)
        out.append(f"{i2}MIN_VERSION = {lo}")
        out.append(f"{i2}MAX_VERSION = {hi}")
        flex = msg.flexible
        if st.common:
            flex = self.common_flexible[st.name]
        out.append(f"{i2}FLEXIBLE_MIN_VERSION = {flex.lo if flex != NONE else None}")
        for c in st.uses_common:
            out.append(f"{i2}{c} = {c}")
        for child in st.children:
            out.append("")
            out.extend(self.class_source(child, msg, i2))
        out.append("")
        params = []
        body = []
        for f in st.fields:
            d = default_expr(f)
            t = py_type(f)
            if d in ("[]",) or d.endswith("()"):
                params.append(f"{f.attr}: {t} = _DEFAULT")
                body.append(f"{i2}    self.{f.attr}: {t} = {d} if {f.attr} is _DEFAULT else {f.attr}")
            else:
                params.append(f"{f.attr}: {t} = {d}")
                body.append(f"{i2}    self.{f.attr}: {t} = {f.attr}")
        params.append("unknown_tagged_fields: list[tuple[int, bytes]] | None = None")
        body.append(
            f"{i2}    self.unknown_tagged_fields: list[tuple[int, bytes]] = "
            "[] if unknown_tagged_fields is None else unknown_tagged_fields"
        )
        out.append(f"{i2}def __init__(self, *, {', '.join(params)}) -> None:")
        out.extend(body)
        return out

    def all_structs(self, st: StructSpec):
        yield st
        for c in st.children:
            yield from self.all_structs(c)

    # -- module ------------------------------------------------------------------------
    def render(self) -> str:
        # Merge common structs across the module (identical definitions share one class).
        raw_seen: dict[str, object] = {}
        for msg in self.messages:
            for name, st in msg.commons.items():
                if name in self.commons:
                    if raw_seen[name] != msg.raw_commons[name]:
                        raise ValueError(f"common struct {name} differs between messages in one module")
                    self.common_versions[name] |= st.versions
                    # Repoint fields to the shared struct.
                    self._repoint(msg, name, self.commons[name])
                else:
                    self.commons[name] = st
                    raw_seen[name] = msg.raw_commons[name]
                    self.common_versions[name] = set(st.versions)
                    self.common_flexible[name] = msg.flexible
        for name, st in self.commons.items():
            st.versions = self.common_versions[name]
        for name in self.commons:
            flexes = {m.flexible for m in self.messages if name in m.commons}
            if len(flexes) != 1:
                raise ValueError(f"common struct {name} shared by messages with different flexible versions")
        for name, st in self.commons.items():
            self.gen_struct(st, self.common_flexible[name])
        for msg in self.messages:
            self.gen_struct(msg.root, msg.flexible)

        classes: list[str] = []
        for st in self._common_order():
            msg = next(m for m in self.messages if st.name in m.commons)
            classes.extend(self.class_source(st, msg, ""))
            classes.append("")
            classes.append("")
        for msg in self.messages:
            classes.extend(self.class_source(msg.root, msg, ""))
            classes.append("")
            classes.append("")

        aliases = []
        wiring = []
        roots = list(self.commons.values()) + [m.root for m in self.messages]
        for root in roots:
            for st in self.all_structs(root):
                dotted = ".".join(st.path)
                aliases.append(f"{class_ref(st)} = {dotted}")
                readers = []
                writers = []
                hi = max(st.versions) if st.versions else -1
                for v in range(hi + 1):
                    if v in st.versions:
                        readers.append(self.canon[("read", st.ident, v)])
                        writers.append(self.canon[("write", st.ident, v)])
                    else:
                        readers.append("None")
                        writers.append("None")
                lazy = [f for f in st.fields if is_lazy(f)]
                if lazy:
                    items = ", ".join(f"{f.attr!r}: {class_ref(f.struct)}" for f in lazy)
                    wiring.append(f"{dotted}._LAZY_DEFAULTS = {{{items}}}")
                wiring.append(f"{dotted}._READERS = ({''.join(r + ', ' for r in readers)})")
                wiring.append(f"{dotted}._WRITERS = ({''.join(r + ', ' for r in writers)})")

        self.imports.update({"Message", "DEFAULT", "ZERO_UUID"})
        head = [
            "# Generated by scripts/generate_protocol.py from "
            + ", ".join(m.source for m in self.messages)
            + ". Do not edit.",
            '"""Kafka ' + ", ".join(m.name for m in self.messages) + ' (generated codec)."""',
            "",
            # Annotations are never evaluated: the typed constructors cost nothing at run time.
            "from __future__ import annotations",
            "",
            "import struct",
            "import uuid as _uuid",
            "",
            "from kbroker_protocol import " + ", ".join(
                f"{module} as {alias}" for module, alias in sorted(PRIMITIVE_MODULES.items())
                if module == "message" or any(primitive_home(name) == module for name in self.imports)
            ),
            "",
            "_new = object.__new__",
        ]
        imports = [f"_{name} = {PRIMITIVE_MODULES[primitive_home(name)]}.{name}" for name in sorted(self.imports)]
        consts = [f"{name} = struct.Struct({fmt!r})" for fmt, name in sorted(self.structs_fmt.items(), key=lambda x: x[1])]
        parts = [
            "\n".join(head + imports + consts),
            "",
            "",
            "\n".join(classes).rstrip("\n"),
            "",
            "",
            "\n".join(aliases),
            "",
            "",
            "\n\n\n".join(self.funcs),
            "",
            "",
            "\n".join(wiring),
        ]
        text = "\n".join(parts) + "\n"
        return re.sub(r"[ \t]+\n", "\n", text)

    def _common_order(self) -> list[StructSpec]:
        """Common structs with the ones they use first (class bodies reference them)."""
        order: list[StructSpec] = []
        done: set[str] = set()

        def deps(st: StructSpec) -> list[str]:
            out = list(st.uses_common)
            for c in st.children:
                out.extend(deps(c))
            return out

        def visit(st: StructSpec) -> None:
            if st.name in done:
                return
            done.add(st.name)
            for d in deps(st):
                visit(self.commons[d])
            order.append(st)

        for st in self.commons.values():
            visit(st)
        return order

    def _repoint(self, msg: MessageSpec, name: str, shared: StructSpec) -> None:
        def walk(st: StructSpec) -> None:
            for f in st.fields:
                if f.struct is not None and f.struct.common and f.struct.name == name:
                    f.struct = shared
            for c in st.children:
                walk(c)

        walk(msg.root)
        for c in msg.commons.values():
            walk(c)


# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------


def module_name(name: str) -> str:
    return snake(name)


def collect(spec_dir: Path) -> dict[str, dict[str, list[MessageSpec]]]:
    """{subpackage: {module name: [messages]}} for every spec with valid versions."""
    packages: dict[str, dict[str, list[MessageSpec]]] = {}
    for sub, pkg in SPEC_DIRS.items():
        for path in sorted((spec_dir / sub).glob("*.json")):
            spec = load_spec(path)
            if str(spec.get("validVersions")).strip() == "none":
                continue
            msg = build_message(spec, f"{sub}/{path.name}")
            kind = spec["type"]
            if pkg == "" and kind in ("request", "response"):
                base = re.sub(r"(Request|Response)$", "", msg.name)
                mod = module_name(base)
            elif pkg == "" and kind == "header":
                mod = module_name(msg.name)
            elif pkg == "":
                pkg_eff = "data"
                packages.setdefault(pkg_eff, {}).setdefault(module_name(msg.name), []).append(msg)
                continue
            else:
                mod = module_name(msg.name)
            packages.setdefault(pkg, {}).setdefault(mod, []).append(msg)
    for mods in packages.values():
        for msgs in mods.values():
            msgs.sort(key=lambda m: (m.kind != "request", m.name))
    return packages


def render_root_init(mods: dict[str, list[MessageSpec]]) -> str:
    lines = [
        "# Generated by scripts/generate_protocol.py. Do not edit.",
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
    lines.append("_MODULES: dict[str, str] = {")
    for mod, msgs in sorted(mods.items()):
        for m in msgs:
            lines.append(f"    {m.name!r}: {mod!r},")
            if m.kind == "request":
                reqs[m.api_key] = (m.name, re.sub(r"Request$", "", m.name))
            elif m.kind == "response":
                resps[m.api_key] = (m.name, re.sub(r"Response$", "", m.name))
    lines.append("}")
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
    lines.append("REQUESTS: Mapping[int, type[Message]] = _ByApiKey({")
    for k in sorted(reqs):
        lines.append(f"    {k}: {reqs[k][0]!r},")
    lines.append("}, RESOLVED_REQUESTS)")
    lines.append("RESPONSES: Mapping[int, type[Message]] = _ByApiKey({")
    for k in sorted(resps):
        lines.append(f"    {k}: {resps[k][0]!r},")
    lines.append("}, RESOLVED_RESPONSES)")
    lines.append("API_NAMES: dict[int, str] = {")
    for k in sorted(reqs):
        lines.append(f"    {k}: {reqs[k][1]!r},")
    lines.append("}")
    lines.append("")
    exported = ["API_NAMES", "REQUESTS", "RESOLVED_REQUESTS", "RESOLVED_RESPONSES", "RESPONSES"] + sorted(m.name for ms in mods.values() for m in ms)
    lines.append("__all__ = [")
    for n in exported:
        lines.append(f"    {n!r},")
    lines.append("]")
    return "\n".join(lines) + "\n"


def render_sub_init(pkg: str, mods: dict[str, list[MessageSpec]]) -> str:
    lines = [
        "# Generated by scripts/generate_protocol.py. Do not edit.",
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
    lines.append("CLASSES: dict[str, type] = {")
    for n in sorted(names):
        lines.append(f"    {n!r}: {n},")
    lines.append("}")
    consts = []
    for kind, table in sorted(by_kind.items()):
        const = re.sub(r"[^A-Z]", "_", kind.upper()) + "_BY_API_KEY"
        consts.append(const)
        lines.append(f"{const}: dict[int, type] = {{")
        for k in sorted(table):
            lines.append(f"    {k}: {table[k]},")
        lines.append("}")
    # Explicit exports: importers of ``kbroker_protocol.messages.<pkg>`` pass mypy's
    # no_implicit_reexport (part of --strict).
    lines.append("")
    lines.append("__all__ = [")
    for n in ["CLASSES", *consts, *sorted(names)]:
        lines.append(f"    {n!r},")
    lines.append("]")
    return "\n".join(lines) + "\n"


def generate(out_dir: Path, spec_dir: Path) -> dict[Path, str]:
    files: dict[Path, str] = {}
    packages = collect(spec_dir)
    for pkg, mods in packages.items():
        base = out_dir / pkg if pkg else out_dir
        for mod, msgs in mods.items():
            files[base / f"{mod}.py"] = ModuleEmitter(msgs).render()
        files[base / "__init__.py"] = render_root_init(mods) if pkg == "" else render_sub_init(pkg, mods)
    return files


class SpecDirError(Exception):
    """The spec directory cannot be used: missing, empty, incomplete or unreadable."""


def check_spec_dir(spec_dir: Path) -> None:
    """Refuse a spec directory that is not a whole set of Kafka specs (raises SpecDirError):
    every sub-directory present with specs in it, both headers, and every request with its
    response. Without this a wrong ``--spec-dir`` generated nothing, or half the modules."""
    if not spec_dir.is_dir():
        raise SpecDirError(f"spec directory {spec_dir} does not exist (--spec-dir names the directory "
                           "holding Kafka's " + ", ".join(f"{sub}/" for sub in SPEC_DIRS) + " specs)")
    empty = [sub for sub in SPEC_DIRS if not any((spec_dir / sub).glob("*.json"))]
    if empty:
        raise SpecDirError(f"spec directory {spec_dir} is incomplete: no *.json in "
                           + ", ".join(f"{sub}/" for sub in empty))
    names = {p.stem for p in (spec_dir / "message").glob("*.json")}
    missing = sorted({"RequestHeader", "ResponseHeader"} - names)
    for name in names:
        for have, want in (("Request", "Response"), ("Response", "Request")):
            if name.endswith(have) and name != f"{have}Header":
                partner = name[: -len(have)] + want
                if partner not in names:
                    missing.append(partner)
    if missing:
        raise SpecDirError(f"spec directory {spec_dir} is incomplete: message/ lacks "
                           + ", ".join(f"{n}.json" for n in sorted(set(missing))))


def generated_modules(out_dir: Path) -> list[Path]:
    """The modules under ``out_dir`` this generator wrote (by their first line)."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.rglob("*.py") if p.read_text(encoding="utf-8").startswith("# Generated by"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT), help="output directory")
    ap.add_argument("--spec-dir", default=str(DEFAULT_SPEC), help="Kafka spec directory")
    ap.add_argument("--prune", action="store_true",
                    help="also delete generated modules whose spec is gone (an API Kafka removed); "
                         "without it such a spec directory is refused and nothing is written")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    spec_dir = Path(args.spec_dir)
    try:
        check_spec_dir(spec_dir)
        files = generate(out_dir, spec_dir)
    except SpecDirError as exc:
        print(f"generate_protocol: {exc}; nothing written", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:  # an unreadable or malformed spec
        print(f"generate_protocol: cannot read the specs under {spec_dir}: {exc!r}; nothing written",
              file=sys.stderr)
        return 2
    stale = [p for p in generated_modules(out_dir) if p not in files]
    if stale and not args.prune:
        names = ", ".join(str(p.relative_to(out_dir)) for p in stale[:10])
        more = f" and {len(stale) - 10} more" if len(stale) > 10 else ""
        print(f"generate_protocol: the specs under {spec_dir} lack {len(stale)} of the modules generated "
              f"under {out_dir} ({names}{more}): a wrong or incomplete spec directory? (If Kafka removed "
              "those APIs, rerun with --prune.) nothing written", file=sys.stderr)
        return 2
    for old in stale:
        old.unlink()
    for path, text in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files under {out_dir}" + (f", removed {len(stale)} stale" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
