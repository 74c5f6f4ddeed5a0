"""What a field holds in the generated code: its default value, its Python annotation, the
module-level names of the struct classes, and which codec module each helper comes from."""

from __future__ import annotations

from .model import NONE, FieldSpec, StructSpec


def default_expr(f: FieldSpec) -> str:
    """Python source for the field's default value (containers are fresh objects)."""
    d = f.default.strip() if isinstance(f.default, str) else f.default
    null = null_default(f)
    if f.is_array:
        return "None" if null else "[]"
    if f.struct is not None:
        return "None" if null else f"{class_ref(f.struct)}()"
    t = f.type
    if t in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
        return "0" if d is None else str(int(str(d), 0))
    if t == "float64":
        return "0.0" if d is None else repr(float(str(d)))
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


def null_default(f: FieldSpec) -> bool:
    """JSON ``null`` and the string ``"null"`` both mean a null default."""
    return isinstance(f.default, str) and f.default.strip() == "null"


def is_lazy(f: FieldSpec) -> bool:
    """Struct-valued fields whose default is a fresh struct: decoders leave them unset and the
    class builds the default on first access (``Message.__getattr__``), which keeps decoding
    of absent or untransmitted tagged structs free."""
    return f.struct is not None and not f.is_array and not null_default(f)


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


def codec_helper(op: str, t: str, flex: bool, nullable: bool) -> str:
    """The codec helper reading (``op`` "read") or writing ("write") a string, bytes or records
    value: ``read_compact_nullable_string``, ``write_bytes``, ``read_compact_records``...
    (records take nullability as an argument, not in the name)."""
    if t == "records":
        return f"{op}_" + ("compact_" if flex else "") + "records"
    if t in ("string", "bytes"):
        return f"{op}_" + ("compact_" if flex else "") + ("nullable_" if nullable else "") + t
    raise ValueError(t)


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
