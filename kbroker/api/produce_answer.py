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

Read as a message, a :class:`SingleAnswer` is the response it encodes: reading ``responses``
builds the generic messages (and from then on it encodes the generic way, so that a change made
through them is sent), as does a throttle time or node endpoints set on it (client quotas,
the test controls' faults and traces).
"""

from __future__ import annotations

import struct
import uuid
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


_templates: dict[tuple[int, str, int], Template | None] = {}  # (version, name, topic id as int)


def _partition(index: int, error_code: int, base_offset: int, log_append_time_ms: int,
               log_start_offset: int) -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse:
    return PartResp(index=index, error_code=error_code, base_offset=base_offset, log_append_time_ms=log_append_time_ms,
                    log_start_offset=log_start_offset, record_errors=[], error_message=None)


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


class SingleAnswer(ProduceResponse):
    """A Produce response of one topic with one partition and no error message or record errors,
    encoded from its :func:`template` while nothing was read or changed through ``responses``."""

    __slots__ = ("_numbers", "_topic")

    def __init__(self, name: str, topic_id: uuid.UUID, index: int, error_code: int, base_offset: int,
                 log_append_time_ms: int, log_start_offset: int) -> None:
        self.throttle_time_ms = 0
        self.node_endpoints = []
        self.unknown_tagged_fields = []
        self._topic: tuple[str, uuid.UUID] = (name, topic_id)
        self._numbers: tuple[int, int, int, int, int] | None = (
            index, error_code, base_offset, log_append_time_ms, log_start_offset)

    @property
    def responses(self) -> list[ProduceResponse.TopicProduceResponse]:
        numbers = self._numbers
        if numbers is not None:
            self._numbers = None
            name, topic_id = self._topic
            part = _partition(*numbers)
            _RESPONSES.__set__(self, [TopicResp(name=name, topic_id=topic_id, partition_responses=[part])])
        value: list[ProduceResponse.TopicProduceResponse] = _RESPONSES.__get__(self, ProduceResponse)
        return value

    @responses.setter
    def responses(self, value: list[ProduceResponse.TopicProduceResponse]) -> None:
        self._numbers = None
        _RESPONSES.__set__(self, value)

    def encode_into(self, writer: Writer, version: int) -> None:
        numbers = self._numbers
        if numbers is not None and not self.throttle_time_ms and not self.node_endpoints \
                and not self.unknown_tagged_fields:
            name, topic_id = self._topic
            found = template(version, name, topic_id)
            if found is not None:
                buf = writer.buf
                buf += found.prefix
                buf += found.fields.pack(*numbers[: found.count])
                buf += found.suffix
                return
        super().encode_into(writer, version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProduceResponse):
            return NotImplemented
        return (self.responses, self.throttle_time_ms, self.node_endpoints, self.unknown_tagged_fields) == (
            other.responses, other.throttle_time_ms, other.node_endpoints, other.unknown_tagged_fields)

    __hash__ = None  # type: ignore[assignment]


_RESPONSES: Any = ProduceResponse.__dict__["responses"]  # the slot under the property
