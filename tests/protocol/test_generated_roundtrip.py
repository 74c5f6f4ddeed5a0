"""Property tests: the generated codec against the reference interpreter, for every version.

For every (message, version) pair -- every request and response version of every API with
valid versions, both headers and the internal record formats -- Hypothesis builds random valid
values from the spec; the generated ``encode`` must produce the interpreter's bytes exactly, and
``decode(encode(x)) == x`` must hold for both codecs.
"""

from __future__ import annotations

import importlib
import types
import typing
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kbroker_protocol.messages as messages
from kbroker_protocol.interpreter import (
    Schema,
    attr_name,
    field_versions,
    in_range,
    load_specs,
    valid_versions,
)
from kbroker_protocol.primitives import ExternalRecords, Message

SPECS = load_specs()
PACKAGES = {
    "message": "kbroker_protocol.messages",
    "group-coordinator": "kbroker_protocol.messages.coordinator",
    "transaction-coordinator": "kbroker_protocol.messages.coordinator",
    "metadata": "kbroker_protocol.messages.metadata_records",
    "raft": "kbroker_protocol.messages.raft",
}
SCALARS = {
    "int8",
    "int16",
    "uint16",
    "uint32",
    "int32",
    "int64",
    "float64",
    "bool",
    "uuid",
    "string",
    "bytes",
    "records",
}
INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def generated_class(spec: dict) -> type:
    pkg = PACKAGES[spec["_dir"]]
    if pkg == "kbroker_protocol.messages" and spec["type"] == "data":
        pkg = "kbroker_protocol.messages.data"
    mod = importlib.import_module(pkg)
    if hasattr(mod, spec["name"]):
        return getattr(mod, spec["name"])
    return mod.CLASSES[spec["name"]]


def scalar_strategy(t: str, nullable: bool) -> st.SearchStrategy:
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        s = st.sampled_from([0, lo, hi, -1 if lo < 0 else 1]) | st.integers(lo, hi)
    elif t == "float64":
        s = st.floats(allow_nan=False)
    elif t == "bool":
        s = st.booleans()
    elif t == "uuid":
        s = st.binary(min_size=16, max_size=16).map(lambda b: uuid.UUID(bytes=b))
    elif t == "string":
        s = st.text(max_size=12)
    else:  # bytes, records
        s = st.binary(max_size=24)
    return st.none() | s if nullable else s


def struct_strategy(schema: Schema, fields: list[dict], v: int, unknown_tags: bool = True) -> st.SearchStrategy:
    parts = {}
    known_tags = set()
    for f in fields:
        name = attr_name(f["name"])
        if not in_range(field_versions(f), v):
            parts[name] = st.just(None).map(lambda _x, f=f: schema.default(f))
            continue
        if in_range(f.get("taggedVersions"), v):
            known_tags.add(f["tag"])
        parts[name] = value_strategy(schema, f, v, unknown_tags)
    if schema.is_flexible(v) and unknown_tags:
        parts["unknown_tagged_fields"] = st.dictionaries(
            st.integers(0, 300).filter(lambda t: t not in known_tags), st.binary(max_size=6), max_size=2
        ).map(lambda d: sorted(d.items()))
    else:
        parts["unknown_tagged_fields"] = st.just([])
    return st.fixed_dictionaries(parts)


def value_strategy(schema: Schema, f: dict, v: int, unknown_tags: bool = True) -> st.SearchStrategy:
    s = _value_strategy(schema, f, v, unknown_tags)
    if in_range(f.get("taggedVersions"), v) or "default" in f:
        # Tagged fields equal to their default are omitted on the wire: exercise that often.
        default = schema.default(f)
        s = st.one_of(st.builds(lambda: _copy(default)), s)
    return s


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_copy(x) for x in value]
    return value


def _value_strategy(schema: Schema, f: dict, v: int, unknown_tags: bool) -> st.SearchStrategy:
    t = f["type"]
    nullable = in_range(f.get("nullableVersions"), v)
    if t.startswith("[]"):
        elem = t[2:]
        if elem in SCALARS:
            inner = scalar_strategy(elem, False)
        else:
            inner = st.deferred(lambda: struct_strategy(schema, schema.struct_fields(f), v, unknown_tags))
        s = st.lists(inner, max_size=3)
        return st.none() | s if nullable else s
    if t in SCALARS:
        return scalar_strategy(t, nullable)
    s = struct_strategy(schema, schema.struct_fields(f), v, unknown_tags)
    return st.none() | s if nullable else s


def build(cls: type, schema: Schema, fields: list[dict], value: dict):
    """The generated object equal to the interpreter's dict ``value``."""
    kwargs = {"unknown_tagged_fields": list(value["unknown_tagged_fields"])}
    for f in fields:
        name = attr_name(f["name"])
        val = value[name]
        t = f["type"]
        elem = t.removeprefix("[]")
        if elem not in SCALARS and val is not None:
            sub = getattr(cls, elem)
            sub_fields = schema.struct_fields(f)
            if t.startswith("[]"):
                val = [build(sub, schema, sub_fields, item) for item in val]
            else:
                val = build(sub, schema, sub_fields, val)
        kwargs[name] = val
    return cls(**kwargs)


def all_pairs() -> list[tuple[str, int]]:
    return [(name, v) for name, spec in sorted(SPECS.items()) for v in valid_versions(spec)]


PAIRS = all_pairs()


def _api_pair_count_from_specs() -> int:
    """Request and response versions counted straight from the spec files' validVersions."""
    count = 0
    for spec in SPECS.values():
        if spec["type"] in ("request", "response"):
            text = spec["validVersions"]
            lo, _, hi = text.partition("-")
            count += int(hi or lo) - int(lo) + 1
    return count


def test_every_api_version_pair_is_covered(capsys):
    registry_pairs = sum(
        cls.MAX_VERSION - cls.MIN_VERSION + 1
        for table in (messages.REQUESTS, messages.RESPONSES)
        for cls in table.values()
    )
    covered_api = [(n, v) for n, v in PAIRS if SPECS[n]["type"] in ("request", "response")]
    assert registry_pairs == _api_pair_count_from_specs() == len(covered_api)
    assert len(messages.REQUESTS) == len(messages.RESPONSES) == len(messages.API_NAMES)
    with capsys.disabled():
        print(
            f"\nproperty tests cover {len(covered_api)} (api, version) pairs "
            f"({len(messages.REQUESTS)} APIs, requests and responses) and {len(PAIRS) - len(covered_api)} "
            "header / internal-record (type, version) pairs"
        )


_SETTINGS = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize(("name", "version"), PAIRS, ids=[f"{n}-v{v}" for n, v in PAIRS])
def test_generated_matches_interpreter(name: str, version: int) -> None:
    spec = SPECS[name]
    schema = Schema(spec)
    cls = generated_class(spec)
    assert cls.MIN_VERSION <= version <= cls.MAX_VERSION

    @_SETTINGS
    @given(struct_strategy(schema, spec["fields"], version))
    def check(value: dict) -> None:
        expected = schema.encode(value, version)
        obj = build(cls, schema, spec["fields"], value)
        assert obj.encode(version) == expected
        back = cls.decode(expected, version)
        assert back == obj
        assert back.encode(version) == expected
        assert schema.decode(expected, version) == schema.decode(schema.encode(value, version), version)
        assert_typed(obj)
        assert_typed(back)

    check()


# --------------------------------------------------------------------------------------------
# The generated annotations (what mypy checks kbroker's messages against) hold at run time.
# --------------------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, object]] = {}


def _hints(cls: type) -> dict[str, object]:
    """The constructor's annotations of a generated class, evaluated; one for every field."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls.__init__)
        assert hints.pop("return") is type(None)
        assert set(hints) == {*cls._FIELDS, "unknown_tagged_fields"}, f"{cls.__qualname__}: unannotated fields"
        _HINTS[cls] = hints
    return hints


def _conforms(value: object, hint: object) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(x, args[0]) for x in value)
    if origin is tuple:
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(_conforms(x, a) for x, a in zip(value, args, strict=True)))
    if hint is type(None):
        return value is None
    if hint is ExternalRecords:  # (a Protocol: anything with a length)
        return hasattr(value, "__len__")
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    assert isinstance(hint, type), hint
    if isinstance(value, Message):
        assert_typed(value)
    return isinstance(value, hint)


def assert_typed(obj: Message) -> None:
    """Every field of ``obj`` (and of the structs in it) has the type its annotation says."""
    for name, hint in _hints(type(obj)).items():
        value = getattr(obj, name)
        assert _conforms(value, hint), f"{type(obj).__qualname__}.{name} = {value!r} is not {hint}"


def test_annotations_are_checked_against_values():
    from kbroker_protocol.messages.produce import ProduceRequest

    P = ProduceRequest.TopicProduceData.PartitionProduceData
    assert_typed(ProduceRequest(topic_data=[ProduceRequest.TopicProduceData(partition_data=[P(records=b"x")])]))
    for wrong in (ProduceRequest(acks="1"), ProduceRequest(topic_data=[P()]), ProduceRequest(transactional_id=b"t")):
        with pytest.raises(AssertionError):
            assert_typed(wrong)


# --------------------------------------------------------------------------------------------
# Cross-check against an independent implementation: kafka-python 3's own codec.
# --------------------------------------------------------------------------------------------


def _kafka_python_classes() -> dict[str, type]:
    import inspect
    import pkgutil

    import kafka.protocol as kp
    from kafka.protocol.api_message import ApiMessage

    found = {}
    for info in pkgutil.walk_packages(kp.__path__, "kafka.protocol."):
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if inspect.isclass(obj) and issubclass(obj, ApiMessage) and getattr(obj, "_json", None):
                found[obj._json["name"]] = obj
    return found


KP_CLASSES = _kafka_python_classes()
KP_PAIRS = [
    (name, v)
    for name, v in PAIRS
    if name in KP_CLASSES
    and SPECS[name]["type"] in ("request", "response")
    and v <= KP_CLASSES[name].max_version
]


def test_kafka_python_cross_check_covers_the_main_apis():
    names = {n for n, _ in KP_PAIRS}
    for must in ("ProduceRequest", "FetchResponse", "MetadataResponse", "ApiVersionsResponse", "JoinGroupRequest"):
        assert must in names
    assert len(KP_PAIRS) > 300


@pytest.mark.parametrize(("name", "version"), KP_PAIRS, ids=[f"{n}-v{v}" for n, v in KP_PAIRS])
def test_kafka_python_reads_and_rewrites_our_bytes(name: str, version: int) -> None:
    spec = SPECS[name]
    schema = Schema(spec)
    cls = generated_class(spec)
    kp_cls = KP_CLASSES[name]

    @settings(_SETTINGS, max_examples=8)
    @given(struct_strategy(schema, spec["fields"], version, unknown_tags=False))
    def check(value: dict) -> None:
        if name == "ApiVersionsResponse":
            # kafka-python (like Kafka's clients) re-reads an error response at v0.
            value["error_code"] = 0
        ours = build(cls, schema, spec["fields"], value).encode(version)
        theirs = kp_cls.decode(ours, version=version)
        theirs._header = None  # kafka-python's decode skips __init__, its encode reads this slot
        assert theirs.encode(version=version) == ours

    check()
