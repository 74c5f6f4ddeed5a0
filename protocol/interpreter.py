"""A slow reference codec that walks Kafka's JSON specs at run time.

It shares nothing with the generated modules' code paths (only the idea of stripping ``//``
comment lines before parsing), so tests can check the generated codec against it byte for byte.
Values are dicts keyed by snake_case field names (or any object with those attributes when
encoding); decoding returns dicts, with ``unknown_tagged_fields`` as a list of ``(tag, bytes)``.

This module is for tests and tools, not the hot path.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

from kbroker_protocol.exceptions import ProtocolError

SPEC_SUBDIRS = ("message", "group-coordinator", "transaction-coordinator", "metadata", "raft")

_FIXED = {
    "int8": ">b",
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "float64": ">d",
}


def default_spec_dir() -> Path:
    env = os.environ.get("KBROKER_KAFKA_SPEC_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "kafka-spec"


def strip_json_comments(text: str) -> str:
    """Drop ``//`` comments: whole comment lines, and a comment after JSON on the same line.

    ``//`` inside a JSON string (``"http://..."`` in an ``about``) is left alone.
    """
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith("//"):
            continue
        if "//" in line:
            in_string = escaped = False
            for i, ch in enumerate(line):
                if in_string:
                    if escaped:
                        escaped = False
                    elif ch == "\\":
                        escaped = True
                    elif ch == '"':
                        in_string = False
                elif ch == '"':
                    in_string = True
                elif ch == "/" and line.startswith("//", i):
                    line = line[:i]
                    break
        out.append(line)
    return "\n".join(out)


def load_spec_text(text: str) -> dict:
    """Parse a spec file's text (Kafka's JSON with ``//`` comments)."""
    return json.loads(strip_json_comments(text))


def load_specs(spec_dir: Path | None = None) -> dict[str, dict]:
    """Every spec with valid versions, by name (``ProduceRequest``, ``OffsetCommitKey`` ...)."""
    spec_dir = spec_dir or default_spec_dir()
    out = {}
    for sub in SPEC_SUBDIRS:
        for path in sorted((spec_dir / sub).glob("*.json")):
            spec = load_spec_text(path.read_text(encoding="utf-8"))
            if str(spec.get("validVersions", "none")).strip() == "none":
                continue
            spec["_dir"] = sub
            out[spec["name"]] = spec
    return out


def version_range(text: Any) -> tuple[int, int] | None:
    """``"3+"``, ``"1-4"``, ``"7"`` or ``"none"`` as an inclusive range (None when empty)."""
    if text is None:
        return None
    text = str(text).strip()
    if text == "none":
        return None
    if text.endswith("+"):
        return int(text[:-1]), 1 << 15
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def in_range(text: Any, v: int) -> bool:
    r = version_range(text)
    return r is not None and r[0] <= v <= r[1]


def attr_name(name: str) -> str:
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out += "_"
        out += ch.lower()
    return out + "_" if out in ("from", "import", "class", "global", "is", "in", "as") else out


def valid_versions(spec: dict) -> range:
    versions = version_range(spec["validVersions"])
    if versions is None:
        raise ValueError(f"{spec['name']} has no valid versions")
    lo, hi = versions
    if spec["name"] == "RequestHeader":
        lo = 0
    return range(lo, hi + 1)


def field_versions(f: dict) -> Any:
    return f.get("versions", f.get("taggedVersions"))


class Schema:
    """One spec with its common structs resolved."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.name = spec["name"]
        self.commons = {c["name"]: c for c in spec.get("commonStructs", [])}

    def is_flexible(self, v: int) -> bool:
        return in_range(self.spec.get("flexibleVersions", "none"), v)

    def struct_fields(self, f: dict) -> list[dict]:
        if "fields" in f:
            return f["fields"]
        return self.commons[f["type"].removeprefix("[]")]["fields"]

    # -- defaults -------------------------------------------------------------------------
    def default(self, f: dict) -> Any:
        t = f["type"]
        d = f.get("default", None if "default" not in f else "null")
        if isinstance(d, str):
            d = d.strip()
        if "default" in f and f["default"] is None:
            d = "null"
        if t.startswith("[]"):
            return None if d == "null" else []
        if t in _FIXED:
            if d is None:
                return 0.0 if t == "float64" else 0
            return float(d) if t == "float64" else int(str(d), 0)
        if t == "bool":
            return d is True or str(d).lower() == "true"
        if t == "uuid":
            return uuid.UUID(int=0)
        if t == "string":
            return None if d == "null" else (d or "")
        if t == "bytes":
            return None if d == "null" else b""
        if t == "records":
            return None
        # struct
        if d == "null":
            return None
        return {**self.defaults_of(self.struct_fields(f)), "unknown_tagged_fields": []}

    def defaults_of(self, fields: list[dict]) -> dict:
        return {attr_name(f["name"]): self.default(f) for f in fields}

    # -- encoding -------------------------------------------------------------------------
    def encode(self, value: Any, v: int) -> bytes:
        out = bytearray()
        self._enc_struct(out, self.spec["fields"], value, v)
        return bytes(out)

    def _enc_struct(self, out: bytearray, fields: list[dict], value: Any, v: int) -> None:
        flex = self.is_flexible(v)
        tagged = []
        for f in fields:
            if not in_range(field_versions(f), v):
                continue
            val = _get(value, attr_name(f["name"]))
            if in_range(f.get("taggedVersions"), v):
                if not _equal(val, self.default(f)):
                    sub = bytearray()
                    self._enc_value(sub, f, val, v, True, tagged=True)
                    tagged.append((f["tag"], bytes(sub)))
                continue
            field_flex = flex and ("flexibleVersions" not in f or in_range(f["flexibleVersions"], v))
            self._enc_value(out, f, val, v, field_flex)
        if flex:
            tagged.extend(_get(value, "unknown_tagged_fields") or [])
            tagged.sort(key=lambda t: t[0])
            _uvarint(out, len(tagged))
            for tag, data in tagged:
                _uvarint(out, tag)
                _uvarint(out, len(data))
                out += data

    def _enc_value(self, out: bytearray, f: dict, val: Any, v: int, flex: bool, tagged: bool = False) -> None:
        t = f["type"]
        nullable = in_range(f.get("nullableVersions"), v)
        if t.startswith("[]"):
            elem = t[2:]
            if val is None:
                if not nullable:
                    raise ValueError(f"{f['name']} is not nullable")
                out += b"\x00" if flex else b"\xff\xff\xff\xff"
                return
            if flex:
                _uvarint(out, len(val) + 1)
            else:
                out += struct.pack(">i", len(val))
            for item in val:
                if elem in _FIXED or elem in ("bool", "uuid", "string", "bytes"):
                    self._enc_scalar(out, elem, item, flex, False)
                else:
                    self._enc_struct(out, self.struct_fields(f), item, v)
            return
        if t in _FIXED or t in ("bool", "uuid", "string", "bytes", "records"):
            self._enc_scalar(out, t, val, flex, nullable)
            return
        if nullable:
            # Presence marker: int8 (-1 null, 1 present); in a tagged field an unsigned varint.
            if val is None:
                out.append(0 if tagged else 0xFF)
                return
            out.append(1)
        self._enc_struct(out, self.struct_fields(f), val, v)

    @staticmethod
    def _enc_scalar(out: bytearray, t: str, val: Any, flex: bool, nullable: bool) -> None:
        if t in _FIXED:
            out += struct.pack(_FIXED[t], val)
        elif t == "bool":
            out.append(1 if val else 0)
        elif t == "uuid":
            out += val.bytes
        else:
            if val is None:
                if not nullable:
                    raise ValueError("null value for a non-nullable field")
                if flex:
                    out.append(0)
                else:
                    out += b"\xff\xff" if t == "string" else b"\xff\xff\xff\xff"
                return
            data = val.encode("utf-8") if t == "string" else bytes(val)
            if flex:
                _uvarint(out, len(data) + 1)
            elif t == "string":
                out += struct.pack(">h", len(data))
            else:
                out += struct.pack(">i", len(data))
            out += data

    # -- decoding -------------------------------------------------------------------------
    def decode(self, data: bytes, v: int) -> dict:
        r = _Reader(bytes(data))
        try:
            return self._dec_struct(r, self.spec["fields"], v)
        except (IndexError, struct.error) as exc:
            raise ProtocolError("truncated") from exc
        except UnicodeDecodeError as exc:
            raise ProtocolError("bad utf-8") from exc

    def _dec_struct(self, r: _Reader, fields: list[dict], v: int) -> dict:
        flex = self.is_flexible(v)
        result: dict[str, Any] = {}
        by_tag = {}
        for f in fields:
            name = attr_name(f["name"])
            result[name] = self.default(f)
            if not in_range(field_versions(f), v):
                continue
            if in_range(f.get("taggedVersions"), v):
                by_tag[f["tag"]] = f
                continue
            field_flex = flex and ("flexibleVersions" not in f or in_range(f["flexibleVersions"], v))
            result[name] = self._dec_value(r, f, v, field_flex)
        result["unknown_tagged_fields"] = []
        if flex:
            for _ in range(r.uvarint()):
                tag = r.uvarint()
                size = r.uvarint()
                end = r.pos + size
                if end > len(r.data):
                    raise ProtocolError("tagged field past the end")
                if tag in by_tag:
                    f = by_tag[tag]
                    result[attr_name(f["name"])] = self._dec_value(r, f, v, True, tagged=True)
                    if r.pos > end:
                        raise ProtocolError("tagged field overrun")
                else:
                    result["unknown_tagged_fields"].append((tag, r.data[r.pos : end]))
                r.pos = end
        return result

    def _dec_value(self, r: _Reader, f: dict, v: int, flex: bool, tagged: bool = False) -> Any:
        t = f["type"]
        nullable = in_range(f.get("nullableVersions"), v)
        if t.startswith("[]"):
            elem = t[2:]
            n = r.uvarint() - 1 if flex else r.unpack(">i")
            if n < 0:
                if nullable and (n == -1):
                    return None
                raise ProtocolError("bad array length")
            if n > len(r.data) - r.pos:
                raise ProtocolError("array longer than the data")
            items = []
            for _ in range(n):
                if elem in _FIXED or elem in ("bool", "uuid", "string", "bytes"):
                    items.append(self._dec_scalar(r, elem, flex, False))
                else:
                    items.append(self._dec_struct(r, self.struct_fields(f), v))
            return items
        if t in _FIXED or t in ("bool", "uuid", "string", "bytes", "records"):
            return self._dec_scalar(r, t, flex, nullable)
        if nullable and tagged:
            if r.uvarint() == 0:
                return None
        elif nullable:
            if r.take(1)[0] >= 0x80:
                return None
        return self._dec_struct(r, self.struct_fields(f), v)

    @staticmethod
    def _dec_scalar(r: _Reader, t: str, flex: bool, nullable: bool) -> Any:
        if t in _FIXED:
            return r.unpack(_FIXED[t])
        if t == "bool":
            return r.take(1)[0] != 0
        if t == "uuid":
            return uuid.UUID(bytes=r.take(16))
        if flex:
            n = r.uvarint() - 1
        else:
            n = r.unpack(">h" if t == "string" else ">i")
        if n < 0:
            if nullable and n == -1:
                return None
            raise ProtocolError("bad length")
        data = r.take(n)
        return data.decode("utf-8") if t == "string" else data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def uvarint(self) -> int:
        value = 0
        for i in range(5):
            b = self.take(1)[0]
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return value
        raise ProtocolError("varint too long")


def _uvarint(out: bytearray, n: int) -> None:
    while True:
        if n < 0x80:
            out.append(n)
            return
        out.append(0x80 | (n & 0x7F))
        n >>= 7


def _get(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value[name]
    return getattr(value, name)


def _equal(a: Any, b: Any) -> bool:
    """Deep equality between dict-or-object values (used to omit tagged fields at default)."""
    if isinstance(b, dict):
        if a is None:
            return False
        return all(_equal(_get(a, k), bv) for k, bv in b.items())
    if isinstance(b, list) and isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# --------------------------------------------------------------------------------------------
# Random valid values (for fuzzing): dicts the encoder accepts, small and varied.
# --------------------------------------------------------------------------------------------

_INT_BOUNDS = {
    "int8": 7,
    "int16": 15,
    "int32": 31,
    "int64": 63,
}


def random_value(schema: Schema, version: int, rng: Any, max_items: int = 3) -> dict:
    """A random valid value of ``schema`` at ``version`` (``rng`` is a ``random.Random``)."""
    return _random_struct(schema, schema.spec["fields"], version, rng, max_items)


def _random_struct(schema: Schema, fields: list[dict], v: int, rng: Any, max_items: int) -> dict:
    out: dict[str, Any] = {}
    for f in fields:
        name = attr_name(f["name"])
        default = schema.default(f)
        usable = default is not None or in_range(f.get("nullableVersions"), v)
        if not in_range(field_versions(f), v) or (usable and rng.random() < 0.1):
            out[name] = default
        else:
            out[name] = _random_field(schema, f, v, rng, max_items)
    tags = []
    if schema.is_flexible(v) and rng.random() < 0.2:
        known = {f.get("tag") for f in fields}
        tag = rng.choice([t for t in range(20, 40) if t not in known])
        tags.append((tag, rng.randbytes(rng.randrange(4))))
    out["unknown_tagged_fields"] = tags
    return out


def _random_field(schema: Schema, f: dict, v: int, rng: Any, max_items: int) -> Any:
    t = f["type"]
    if in_range(f.get("nullableVersions"), v) and rng.random() < 0.2:
        return None
    if t.startswith("[]"):
        elem = t[2:]
        n = rng.randrange(max_items + 1)
        if elem in _FIXED or elem in ("bool", "uuid", "string", "bytes"):
            return [_random_scalar(elem, rng) for _ in range(n)]
        return [_random_struct(schema, schema.struct_fields(f), v, rng, max_items) for _ in range(n)]
    if t in _FIXED or t in ("bool", "uuid", "string", "bytes", "records"):
        return _random_scalar(t, rng)
    return _random_struct(schema, schema.struct_fields(f), v, rng, max_items)


def _random_scalar(t: str, rng: Any) -> Any:
    if t in _INT_BOUNDS:
        bits = _INT_BOUNDS[t]
        return rng.choice([0, -1, 1, rng.randrange(-(1 << bits), 1 << bits)])
    if t == "uint16":
        return rng.randrange(1 << 16)
    if t == "uint32":
        return rng.randrange(1 << 32)
    if t == "float64":
        return rng.uniform(-1e9, 1e9)
    if t == "bool":
        return rng.random() < 0.5
    if t == "uuid":
        return uuid.UUID(int=rng.getrandbits(128))
    if t == "string":
        return "".join(rng.choice("abcxyz-._é€") for _ in range(rng.randrange(8)))
    return rng.randbytes(rng.randrange(40))
