"""The common Produce answer, one topic with one partition and no error message, encoded from a
template the generated codec gives (:class:`SingleAnswer`).

Most Produce requests carry one partition's batch (a producer with one partition's data ready per
linger): answering one the generic way builds three messages (the response, its topic, its
partition) and walks the codec's writers through them. A :class:`SingleAnswer` is a
:class:`ProduceResponse` that holds the partition's numbers instead and writes itself as three
pieces: the bytes before the partition's fixed-width fields, those fields, the bytes after them.

The pieces are derived from the codec, never written by hand: :func:`template` encodes the
response the generic way with every fixed-width field of the partition at 0, then each at -2, and
reads off where each field lies and how wide it is (any field the codec writes otherwise, or
bytes that change unexpectedly, and the version gets no template: the generic encoder answers).
``tests/unit/test_produce_answer.py`` checks the bytes against the generic encoder for every
version and for values across the fields' ranges.

A request with several partitions of one topic (a Java producer's batches of several partitions,
a librdkafka producer's keyed records spread over a topic) is answered by a :class:`TopicAnswer`
when every partition succeeded without a message: the same template's pieces repeated, with the
partition count in front (:func:`many_template`, derived from the codec's encodings of one and two
partitions and checked against it with three and 130), instead of a message per partition walked
by the codec's writers.

Read as a message, a :class:`SingleAnswer` or :class:`TopicAnswer` is the response it encodes:
reading ``responses`` builds the generic messages (and from then on it encodes the generic way, so
that a change made through them is sent), as does a throttle time or node endpoints set on it
(client quotas, the test controls' faults and traces).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from kbroker_protocol.messages.produce import ProduceResponse
from kbroker_protocol.wire_write import Writer

TopicResp = ProduceResponse.TopicProduceResponse
PartResp = ProduceResponse.TopicProduceResponse.PartitionProduceResponse

# The partition's fields a template takes, in the order the codec writes them (a version without
# ``log_start_offset``, below v5, takes the first four).
FIELDS = ("index", "error_code", "base_offset", "log_append_time_ms", "log_start_offset")
_FORMATS = {2: "h", 4: "i", 8: "q"}
MAX_TEMPLATES = 4096  # templates kept (per version, topic name and id); cleared when full


class Template:
    """A Produce response body of one topic with one partition, split around the partition's
    fixed-width fields: ``prefix``, ``fields.pack(...)`` (``count`` of :data:`FIELDS`), ``suffix``."""

    __slots__ = ("prefix", "fields", "count", "suffix")

    def __init__(self, prefix: bytes, fields: struct.Struct, count: int, suffix: bytes) -> None:
        self.prefix = prefix
        self.fields = fields
        self.count = count
        self.suffix = suffix


Numbers = tuple[int, int, int, int, int]  # a partition's FIELDS
_templates: dict[tuple[int, str, int], Template | None] = {}  # (version, name, topic id as int)


def _partition(index: int, error_code: int, base_offset: int, log_append_time_ms: int,
               log_start_offset: int) -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse:
    return PartResp(index=index, error_code=error_code, base_offset=base_offset, log_append_time_ms=log_append_time_ms,
                    log_start_offset=log_start_offset, record_errors=[], error_message=None)


def partition_answer(index: int, error_code: int, base_offset: int, log_append_time_ms: int,
                     log_start_offset: int) -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse:
    """The message of a partition's plain answer (no error message, no record errors)."""
    return _partition(index, error_code, base_offset, log_append_time_ms, log_start_offset)


def _encoded(version: int, name: str, topic_id: uuid.UUID, value: int, field: str | None) -> bytes:
    """The generic encoding of the single answer with every one of :data:`FIELDS` at 0, or
    ``field`` alone at ``value`` (all of them, for None)."""
    index, error_code, base_offset, log_append_time_ms, log_start_offset = (
        value if field is None or f == field else 0 for f in FIELDS)
    part = _partition(index, error_code, base_offset, log_append_time_ms, log_start_offset)
    response = ProduceResponse(responses=[TopicResp(name=name, topic_id=topic_id, partition_responses=[part])],
                               throttle_time_ms=0)
    return response.encode(version)


def _derive(version: int, name: str, topic_id: uuid.UUID) -> Template | None:
    zero = _encoded(version, name, topic_id, 0, None)
    places: list[tuple[int, int, str]] = []  # (position, width, field)
    for field in FIELDS:
        probe = _encoded(version, name, topic_id, -2, field)
        if len(probe) != len(zero):
            return None
        changed = [i for i, (a, b) in enumerate(zip(zero, probe, strict=True)) if a != b]
        if not changed:
            continue  # not in this version
        start, width = changed[0], len(changed)
        if changed[-1] != start + width - 1 or width not in _FORMATS:
            return None
        places.append((start, width, field))
    places.sort()
    order = tuple(field for _start, _width, field in places)
    if order != FIELDS[: len(order)] or len(order) < 4:
        return None
    start = places[0][0]
    end = start
    for place, width, _field in places:
        if place != end:
            return None  # fields not adjacent
        end += width
    fields = struct.Struct(">" + "".join(_FORMATS[width] for _start, width, _field in places))
    found = Template(zero[:start], fields, len(order), zero[end:])
    every = _encoded(version, name, topic_id, -2, None)
    if every != found.prefix + fields.pack(*([-2] * len(order))) + found.suffix:
        return None
    return found


def template(version: int, name: str, topic_id: uuid.UUID) -> Template | None:
    """The template of the single answer for ``name``/``topic_id`` at ``version`` (None: the
    codec writes it in a way a template cannot follow; answer generically)."""
    key = (version, name, topic_id.int)  # (an int hashes in C; a UUID in Python)
    try:
        return _templates[key]
    except KeyError:
        pass
    if len(_templates) >= MAX_TEMPLATES:
        _templates.clear()
    found = _templates[key] = _derive(version, name, topic_id)
    return found


class Many:
    """A Produce response body of one topic with any number of partitions: ``head``, the partition
    count (an unsigned varint of count + 1 in flexible versions, else an int32), then per partition
    ``fields.pack(...)`` and ``entry``, then ``tail``."""

    __slots__ = ("head", "compact", "fields", "count", "entry", "tail")

    def __init__(self, head: bytes, compact: bool, fields: struct.Struct, count: int, entry: bytes,
                 tail: bytes) -> None:
        self.head = head
        self.compact = compact
        self.fields = fields
        self.count = count
        self.entry = entry
        self.tail = tail

    def write(self, buf: bytearray, numbers: list[Numbers]) -> None:
        buf += self.head
        n = len(numbers)
        if not self.compact:
            buf += _INT32.pack(n)
        elif n < 127:
            buf.append(n + 1)
        else:
            _write_uvarint(buf, n + 1)
        pack = self.fields.pack
        entry = self.entry
        if self.count == len(FIELDS):
            for one in numbers:
                buf += pack(*one)
                buf += entry
        else:
            count = self.count
            for one in numbers:
                buf += pack(*one[:count])
                buf += entry
        buf += self.tail


_INT32 = struct.Struct(">i")
_many_templates: dict[tuple[int, str, int], Many | None] = {}  # (version, name, topic id as int)


def _write_uvarint(buf: bytearray, value: int) -> None:
    while value >= 0x80:
        buf.append((value & 0x7F) | 0x80)
        value >>= 7
    buf.append(value)


def _encoded_many(version: int, name: str, topic_id: uuid.UUID, numbers: list[Numbers]) -> bytes:
    """The generic encoding of one topic's answer with these partitions."""
    response = ProduceResponse(responses=[TopicResp(name=name, topic_id=topic_id, partition_responses=[
        _partition(*one) for one in numbers])], throttle_time_ms=0)
    return response.encode(version)


def _derive_many(version: int, name: str, topic_id: uuid.UUID) -> Many | None:
    one = template(version, name, topic_id)
    if one is None:
        return None
    zero: Numbers = (0, 0, 0, 0, 0)
    single = one.prefix + one.fields.pack(*zero[: one.count]) + one.suffix
    double = _encoded_many(version, name, topic_id, [zero, zero])
    entry_size = len(double) - len(single)  # one more partition: its fields and the bytes after them
    width = one.fields.size
    if entry_size < width or entry_size - width > len(one.suffix):
        return None
    place = len(one.prefix)
    if one.prefix.endswith(b"\x02") and double[place - 1:place] == b"\x03":
        head, compact = one.prefix[:-1], True
    elif one.prefix.endswith(b"\x00\x00\x00\x01") and double[place - 4:place] == b"\x00\x00\x00\x02":
        head, compact = one.prefix[:-4], False
    else:
        return None
    rest = entry_size - width
    found = Many(head, compact, one.fields, one.count, one.suffix[:rest], one.suffix[rest:])
    probes: list[list[Numbers]] = [
        [(1, 2, 3, 4, 5), (6, -7, 8, -9, 10), (2**31 - 1, -(2**15), 2**63 - 1, -(2**63), -1)],
        [(i, 0, 1000 * i, -1, i) for i in range(130)],  # a two-byte count in flexible versions
    ]
    for probe in probes:
        buf = bytearray()
        found.write(buf, probe)
        if bytes(buf) != _encoded_many(version, name, topic_id, probe):
            return None
    return found


def many_template(version: int, name: str, topic_id: uuid.UUID) -> Many | None:
    """The template of one topic's answer with any number of partitions for ``name``/``topic_id``
    at ``version`` (None: answer generically)."""
    key = (version, name, topic_id.int)
    try:
        return _many_templates[key]
    except KeyError:
        pass
    if len(_many_templates) >= MAX_TEMPLATES:
        _many_templates.clear()
    found = _many_templates[key] = _derive_many(version, name, topic_id)
    return found


class _OneTopicAnswer(ProduceResponse):
    """A Produce response of one topic whose partitions all succeeded without an error message or
    record errors, kept as the partitions' numbers (``_numbers``) while nothing was read or changed
    through ``responses``; a subclass says how the numbers make the partitions' messages and how
    they are encoded (:func:`_encoder`)."""

    __slots__ = ("_numbers", "_topic")

    def __init__(self, name: str, topic_id: uuid.UUID, numbers: Any) -> None:
        self.throttle_time_ms = 0
        self.node_endpoints = []
        self.unknown_tagged_fields = []
        self._topic: tuple[str, uuid.UUID] = (name, topic_id)
        self._numbers: Any = numbers

    @staticmethod
    def _partitions(numbers: Any) -> list[PartResp]:
        raise NotImplementedError

    @property
    def responses(self) -> list[ProduceResponse.TopicProduceResponse]:
        numbers = self._numbers
        if numbers is not None:
            self._numbers = None
            name, topic_id = self._topic
            parts = self._partitions(numbers)
            _RESPONSES.__set__(self, [TopicResp(name=name, topic_id=topic_id, partition_responses=parts)])
        value: list[ProduceResponse.TopicProduceResponse] = _RESPONSES.__get__(self, ProduceResponse)
        return value

    @responses.setter
    def responses(self, value: list[ProduceResponse.TopicProduceResponse]) -> None:
        self._numbers = None
        _RESPONSES.__set__(self, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProduceResponse):
            return NotImplemented
        return (self.responses, self.throttle_time_ms, self.node_endpoints, self.unknown_tagged_fields) == (
            other.responses, other.throttle_time_ms, other.node_endpoints, other.unknown_tagged_fields)

    __hash__ = None  # type: ignore[assignment]


def _encoder(many: bool) -> Callable[..., None]:
    """The ``encode_into`` of a :class:`_OneTopicAnswer`: from the :func:`many_template` (``many``:
    its numbers are a list of :data:`Numbers`) or the :func:`template` (they are one's). One body
    for both, with ``many`` a closure's cell, not a class attribute or a method of the template:
    on the hot path that is one load more, where those would be a generic attribute lookup or a
    call (instructions per answer: scripts/instr_produce_partitions.py --pieces)."""

    def encode_into(self: _OneTopicAnswer, writer: Writer, version: int) -> None:
        numbers = self._numbers
        if numbers is not None and not self.throttle_time_ms and not self.node_endpoints \
                and not self.unknown_tagged_fields:
            name, topic_id = self._topic
            if many:
                found_many = many_template(version, name, topic_id)
                if found_many is not None:
                    found_many.write(writer.buf, numbers)
                    return
            else:
                found = template(version, name, topic_id)
                if found is not None:
                    buf = writer.buf
                    buf += found.prefix
                    buf += found.fields.pack(*numbers[: found.count])
                    buf += found.suffix
                    return
        ProduceResponse.encode_into(self, writer, version)

    return encode_into


class TopicAnswer(_OneTopicAnswer):
    """The answer of one topic with any number of partitions, ``numbers`` one :data:`Numbers` per
    partition, encoded from its :func:`many_template`."""

    __slots__ = ()

    @staticmethod
    def _partitions(numbers: list[Numbers]) -> list[PartResp]:
        return [_partition(*one) for one in numbers]

    encode_into = _encoder(many=True)


class SingleAnswer(_OneTopicAnswer):
    """The answer of one topic with one partition, ``numbers`` its :data:`Numbers` (one tuple, made
    by the caller: the base's ``__init__`` then serves, with no second call), encoded from its
    :func:`template`."""

    __slots__ = ()

    @staticmethod
    def _partitions(numbers: Numbers) -> list[PartResp]:
        return [_partition(*numbers)]

    encode_into = _encoder(many=False)


_RESPONSES: Any = ProduceResponse.__dict__["responses"]  # the slot under the property
