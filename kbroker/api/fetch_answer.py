"""The common Fetch answer encoded straight from the partitions' reads (:class:`FetchAnswer`).

A Fetch answered the generic way builds a message per topic and per partition (twelve fields
each) and walks the codec's writers through them. The common answer, every partition without a
diverging epoch and without a current leader to carry (KIP-951, NOT_LEADER_OR_FOLLOWER or
FENCED_LEADER_EPOCH from v16), no node endpoints, no tagged fields, is instead kept as the reads
kbroker/api/fetch.py made and written by :func:`write_answer`: per version a :class:`Shape`, the
structs of the fixed-width fields, with the partition's usual variable parts (no aborted
transactions or an empty list, no records) packed in the same struct call.

The shapes are written from the generated codec's writers (protocol/messages/fetch.py), and each
is checked against it at its first use (:func:`shape`: probe answers encoded both ways, a
mismatch and that version answers generically). ``tests/unit/test_fetch_answer.py`` compares the
bytes with the generic encoder's for every version and answers of every kind.

Read as a message, a :class:`FetchAnswer` is the response it encodes: reading ``responses``
builds the generic messages (and from then on it encodes the generic way, so that a change made
through them is sent).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

from kbroker_protocol.messages.fetch import FetchResponse
from kbroker_protocol.wire_write import (
    Writer,
    write_compact_records,
    write_compact_string,
    write_records,
    write_string,
    write_uvarint,
)

TopicResp = FetchResponse.FetchableTopicResponse
PartData = FetchResponse.FetchableTopicResponse.PartitionData
Aborted = FetchResponse.FetchableTopicResponse.PartitionData.AbortedTransaction
# A partition's tagged structs at their defaults (not written), shared by the generic answers'
# partitions (:func:`topics_of`)
NO_DIVERGING = PartData.EpochEndOffset()
NO_LEADER = PartData.LeaderIdAndEpoch()
NO_SNAPSHOT = PartData.SnapshotId()
ZERO_UUID = uuid.UUID(int=0)
MIN_VERSION, MAX_VERSION = 4, 18
_I32 = struct.Struct(">i")
_QQ = struct.Struct(">qq")


class Shape:
    """How one version writes the answer: the header's struct, whether topics go by id (v13+),
    whether the version is flexible (v12+, compact lengths and tagged fields), and the
    partition's structs (``head``: the fields before the aborted transactions; ``empty``: the
    whole partition without aborted transactions or with none, and without records: the fields,
    the aborted marker, the preferred read replica from v11, the empty records' length and, when
    flexible, the empty tag section; ``lead``: the same up to the records' length)."""

    __slots__ = ("version", "header", "by_id", "flexible", "has_start", "has_preferred", "head", "empty", "lead",
                 "null_aborted", "no_aborted")

    def __init__(self, version: int) -> None:
        self.version = version
        self.header = struct.Struct(">i" if version < 7 else ">ihi")
        self.by_id = version >= 13
        self.flexible = flexible = version >= 12
        self.has_start = version >= 5
        self.has_preferred = version >= 11
        head = ">ihqq" + ("q" if self.has_start else "")
        marker = "B" if flexible else "i"  # the aborted list's length: compact (+1, 0 for null) or int32 (-1)
        preferred = "i" if self.has_preferred else ""
        self.head = struct.Struct(head)
        self.lead = struct.Struct(head + marker + preferred)
        self.empty = struct.Struct(head + marker + preferred + ("BB" if flexible else "i"))
        self.null_aborted = 0 if flexible else -1
        self.no_aborted = 1 if flexible else 0


def _numbers(shape: Shape, r: Any, index: int) -> tuple[int, ...]:
    if shape.has_start:
        return (index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset)
    return (index, r.error, r.high_watermark, r.last_stable_offset)


def write_answer(w: Writer, shape: Shape, throttle_time_ms: int, error_code: int, session_id: int,
                 reads: list[Any]) -> None:
    """The answer of ``reads`` (kbroker/api/fetch.py's ``_Read``, none with a diverging epoch or
    a current leader to carry), grouped by topic in order of first appearance as the generic
    answer groups them."""
    b = w.buf
    if shape.version < 7:
        b += shape.header.pack(throttle_time_ms)
    else:
        b += shape.header.pack(throttle_time_ms, error_code, session_id)
    groups: dict[tuple[str | None, uuid.UUID], list[Any]] = {}
    last_topic: Any = groups  # (never a topic)
    last_id: Any = groups
    group: list[Any] = []
    for r in reads:
        c = r.want.cached
        topic, topic_id = c.topic, c.topic_id
        if topic is not last_topic or topic_id is not last_id:
            key = (topic, topic_id)
            found = groups.get(key)
            if found is None:
                found = groups[key] = []
            group, last_topic, last_id = found, topic, topic_id
        group.append(r)
    flexible = shape.flexible
    _count(b, flexible, len(groups))
    by_id = shape.by_id
    has_start = shape.has_start
    has_preferred = shape.has_preferred
    empty, lead = shape.empty.pack, shape.lead.pack
    null_aborted, no_aborted = shape.null_aborted, shape.no_aborted
    for (topic, topic_id), group in groups.items():
        if by_id:
            b += (topic_id or ZERO_UUID).bytes
        elif flexible:
            write_compact_string(b, topic or "")
        else:
            write_string(b, topic or "")
        _count(b, flexible, len(group))
        for r in group:
            a = r.aborted
            if a:
                b += shape.head.pack(*_numbers(shape, r, r.want.cached.partition))
                if flexible:
                    write_uvarint(b, len(a) + 1)
                    for item in a:
                        b += _QQ.pack(item.producer_id, item.first_offset)
                        b.append(0)
                else:
                    b += _I32.pack(len(a))
                    for item in a:
                        b += _QQ.pack(item.producer_id, item.first_offset)
                if has_preferred:
                    b += _I32.pack(r.preferred)
                _write_records(w, flexible, r.records)
                b = w.buf
                if flexible:
                    b.append(0)
                continue
            marker = null_aborted if a is None else no_aborted
            records = r.records
            index = r.want.cached.partition
            if type(records) is bytes and not records:
                if has_start:
                    if has_preferred:
                        if flexible:
                            b += empty(index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset,
                                       marker, r.preferred, 1, 0)
                        else:
                            b += empty(index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset,
                                       marker, r.preferred, 0)
                    else:
                        b += empty(index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset,
                                   marker, 0)
                else:
                    b += empty(index, r.error, r.high_watermark, r.last_stable_offset, marker, 0)
                continue
            if has_preferred:
                b += lead(index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset, marker,
                          r.preferred)
            elif has_start:
                b += lead(index, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset, marker)
            else:
                b += lead(index, r.error, r.high_watermark, r.last_stable_offset, marker)
            _write_records(w, flexible, records)
            b = w.buf  # (never replaced, but kept as the codec keeps it)
            if flexible:
                b.append(0)
        if flexible:
            b.append(0)  # the topic's tag section
    if flexible:
        b.append(0)  # the response's tag section (no node endpoints)


def _count(b: bytearray, flexible: bool, n: int) -> None:
    """An array's length: a compact one (an unsigned varint of n + 1) or an int32."""
    if not flexible:
        b += _I32.pack(n)
    elif n < 127:
        b.append(n + 1)
    else:
        write_uvarint(b, n + 1)


def _write_records(w: Writer, flexible: bool, records: Any) -> None:
    if flexible:
        write_compact_records(w, records, True)
    else:
        write_records(w, records, True)


class FetchAnswer(FetchResponse):
    """A Fetch response kept as its partitions' reads (``_reads``) while nothing was read or
    changed through ``responses``."""

    __slots__ = ("_reads",)

    def __init__(self, error_code: int, session_id: int, reads: list[Any]) -> None:
        self.throttle_time_ms = 0
        self.error_code = error_code
        self.session_id = session_id
        self.node_endpoints = []
        self.unknown_tagged_fields = []
        self._reads: list[Any] | None = reads

    @property
    def responses(self) -> list[FetchResponse.FetchableTopicResponse]:
        reads = self._reads
        if reads is not None:
            self._reads = None
            _RESPONSES.__set__(self, topics_of(reads)[0])
        value: list[FetchResponse.FetchableTopicResponse] = _RESPONSES.__get__(self, FetchResponse)
        return value

    @responses.setter
    def responses(self, value: list[FetchResponse.FetchableTopicResponse]) -> None:
        self._reads = None
        _RESPONSES.__set__(self, value)

    def encode_into(self, writer: Writer, version: int) -> None:
        reads = self._reads
        if reads is not None and not self.node_endpoints and not self.unknown_tagged_fields:
            found = shape(version)
            if found is not None:
                write_answer(writer, found, self.throttle_time_ms, self.error_code, self.session_id, reads)
                return
        FetchResponse.encode_into(self, writer, version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FetchResponse):
            return NotImplemented
        return (self.throttle_time_ms, self.error_code, self.session_id, self.responses, self.node_endpoints,
                self.unknown_tagged_fields) == (other.throttle_time_ms, other.error_code, other.session_id,
                                                other.responses, other.node_endpoints, other.unknown_tagged_fields)

    __hash__ = None  # type: ignore[assignment]


def topics_of(reads: list[Any]) -> tuple[list[FetchResponse.FetchableTopicResponse], list[PartData]]:
    """The generic answer's topics of ``reads`` (grouped by topic in order of first appearance),
    and their partitions' messages in the order of ``reads``. The partitions share the default
    tagged structs (one instance each instead of three new ones per partition; never changed in
    place: a caller sets another object on a partition when one is not at its default)."""
    topics: list[TopicResp] = []
    parts: list[PartData] = []
    by_topic: dict[tuple[str | None, uuid.UUID], TopicResp] = {}
    for r in reads:
        c = r.want.cached
        key = (c.topic, c.topic_id)
        tr = by_topic.get(key)
        if tr is None:
            tr = TopicResp(topic=c.topic or "", topic_id=c.topic_id or ZERO_UUID, partitions=[])
            by_topic[key] = tr
            topics.append(tr)
        pd = PartData(
            partition_index=c.partition,
            error_code=r.error,
            high_watermark=r.high_watermark,
            last_stable_offset=r.last_stable_offset,
            log_start_offset=r.log_start_offset,
            aborted_transactions=r.aborted,
            preferred_read_replica=r.preferred,
            records=r.records,
            diverging_epoch=NO_DIVERGING,
            current_leader=NO_LEADER,
            snapshot_id=NO_SNAPSHOT,
        )
        if r.diverging is not None:
            pd.diverging_epoch = PartData.EpochEndOffset(epoch=r.diverging[0], end_offset=r.diverging[1])
        tr.partitions.append(pd)
        parts.append(pd)
    return topics, parts


_RESPONSES: Any = FetchResponse.__dict__["responses"]  # the slot under the property

# -- the shapes, each checked against the codec at its first use -------------------------------

_shapes: dict[int, Shape | None] = {}


@dataclass(slots=True)
class _ProbeCached:
    topic: str | None
    topic_id: uuid.UUID
    partition: int


@dataclass(slots=True)
class _ProbeWant:
    cached: _ProbeCached


@dataclass(slots=True)
class _ProbeRead:
    want: _ProbeWant
    error: int
    records: Any
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: list[Aborted] | None
    preferred: int = -1
    diverging: tuple[int, int] | None = None


def _probe_reads() -> list[_ProbeRead]:
    """Partitions of every kind the fast path writes, over two topics interleaved."""
    t1 = (_ProbeCached("t", uuid.UUID(int=0x1234), 0), _ProbeCached("t", uuid.UUID(int=0x1234), 3))
    t2 = (_ProbeCached("\u00e9" * 200, uuid.UUID(int=2**128 - 1), 2**31 - 1), _ProbeCached(None, ZERO_UUID, 1))
    aborted = [Aborted(producer_id=2**63 - 1, first_offset=-(2**63)), Aborted(producer_id=7, first_offset=8)]
    return [
        _ProbeRead(_ProbeWant(t1[0]), 0, b"", 2**63 - 1, -(2**63), -1, None),
        _ProbeRead(_ProbeWant(t2[0]), 1, b"x" * 200, 5, 4, 3, [], 2),
        _ProbeRead(_ProbeWant(t1[1]), -32768, b"y" * 2000, 10, 9, 0, aborted, 2**31 - 1),
        _ProbeRead(_ProbeWant(t2[1]), 32767, b"", 0, 0, 0, [], -(2**31)),
        _ProbeRead(_ProbeWant(t1[0]), 0, b"z", 1, 1, 1, aborted[1:]),
    ]


def _parts_bytes(w: Writer) -> bytes:
    return b"".join(p if isinstance(p, bytes) else bytes(p) for p in w.parts())


def _check(found: Shape) -> bool:
    reads = _probe_reads()
    for throttle, error, session_id, chosen in ((0, 0, 0, reads), (3, 7, 123456, reads[1:]), (0, 0, 5, [])):
        fast, generic = Writer(), Writer()
        write_answer(fast, found, throttle, error, session_id, chosen)
        FetchResponse(throttle_time_ms=throttle, error_code=error, session_id=session_id,
                      responses=topics_of(chosen)[0]).encode_into(generic, found.version)
        if _parts_bytes(fast) != _parts_bytes(generic):
            return False
    return True


def shape(version: int) -> Shape | None:
    """The checked shape of ``version`` (None: answer generically)."""
    try:
        return _shapes[version]
    except KeyError:
        pass
    found: Shape | None = None
    if MIN_VERSION <= version <= MAX_VERSION:
        found = Shape(version)
        if not _check(found):
            found = None
    _shapes[version] = found
    return found
