"""Walk the records of a magic-2 batch without building a Python object per record.

The broker stores produced batches as received, but first checks, as Kafka's ``LogValidator`` does
through ``DefaultRecord.readFrom``, that the records section really holds the records the header
declares: every record's length, attributes, timestamp delta, offset delta, key, value and headers
parse and end exactly where the record's length says, the count matches, and nothing is left over.
Any defect raises :class:`kbroker_protocol.record_batch.InvalidRecord` (INVALID_RECORD, Kafka's
``InvalidRecordException``).

:func:`walk` is the hot path (every uncompressed Produce batch goes through it), so it reads
varints inline with a one-byte fast path and keeps only running totals: the number of records, the
largest and smallest timestamp delta, how many keys are null, and the index of the first record
whose offset delta is not its position (or whose attributes are not zero). Whoever needs the
per-record detail (which records lack a key, which timestamps are out of range) walks again with
:func:`record_fields`, which is slower but runs only when something is wrong.

``partial=True`` stops cleanly before a record that does not fit in the buffer yet (streaming a
decompressed payload chunk by chunk) instead of treating it as truncated.

Differences from Kafka, deliberately: a key or value length below -1 is rejected (Kafka's
``Utils.readBytes`` reads any negative length as null), as is a header value length below -1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from kbroker_protocol.record_batch import Buffer, InvalidRecord

# kbroker's delayed delivery (kbroker/delayed.py): a header key starting with this prefix is
# counted here, where the walk reads header keys anyway, so that checking a batch for it costs a
# batch without headers nothing and one with headers a comparison per key. Callers compare the
# counter before and after a walk (more than their own walk may be counted when threads walk at
# once: a false "maybe", never a missed one).
DELAY_HEADER_PREFIX = b"kbroker-deliver-"
delay_headers_seen = 0


_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_NO_INDEX = -1


class WalkResult(NamedTuple):
    pos: int  # where the walk stopped (after the last whole record it read)
    records: int  # records read (a field named count would shadow tuple.count)
    min_ts_delta: int  # smallest timestamp delta (0 if no record)
    max_ts_delta: int  # largest timestamp delta (0 if no record)
    null_keys: int  # records with a null key
    first_irregular: int  # first record whose offset delta != its index, or with attributes != 0; -1
    attributes_seen: int  # OR of every record's attributes byte


class RecordFields(NamedTuple):
    """One record's framing, for the slow paths (errors, rewriting a record)."""

    start: int  # position of the length varint
    body: int  # position of the attributes byte
    key_length_at: int  # position of the key length varint (after the offset delta)
    end: int  # position after the record
    attributes: int
    timestamp_delta: int
    offset_delta: int
    key_is_null: bool


class _Short(Exception):
    """A varint runs past the end of a partial buffer (more data needed)."""


def _varint_slow(buf: Buffer, pos: int, end: int, max_bytes: int, mask: int, partial: bool = False) -> tuple[int, int]:
    raw = 0
    shift = 0
    limit = pos + max_bytes
    while True:
        if pos >= end:
            if partial:
                raise _Short
            raise InvalidRecord("Incorrect declared batch size, premature EOF reached")
        if pos >= limit:
            raise InvalidRecord("Found invalid record structure: varint is too long")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            raw &= mask
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def walk(buf: Buffer, pos: int, end: int, count: int, *, partial: bool = False,
         stop_at_irregular: bool = False, first_index: int = 0) -> WalkResult:
    """Read up to ``count`` records of ``buf[pos:end]``.

    Without ``partial`` the records must fill ``buf[pos:end]`` exactly: fewer bytes than ``count``
    records need, or bytes left after them, raise :class:`InvalidRecord`. With ``partial`` the walk
    stops before a record that is not wholly inside ``end`` (the caller appends more data and
    continues from ``result.pos`` with ``count - result.count`` and ``first_index`` advanced).
    A record is irregular when its offset delta is not its index in the batch (``first_index`` +
    its position in this walk) or its attributes are not zero; ``stop_at_irregular`` stops before
    the first one (its index is ``result.first_irregular``).
    """
    n = 0
    min_tsd = _MASK64
    max_tsd = -_MASK64
    null_keys = 0
    irregular = _NO_INDEX
    attrs_seen = 0
    start = pos
    try:
        while n < count:
            if pos >= end:
                if partial:
                    break
                raise InvalidRecord("Incorrect declared batch size, premature EOF reached")
            start = pos
            # record length
            b = buf[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif pos + 1 < end and buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                length = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                try:
                    length, pos = _varint_slow(buf, pos, end, 5, _MASK32, partial)
                except _Short:
                    pos = start
                    break
            rend = pos + length
            if rend > end or length < 0:
                if partial and length >= 0:
                    pos = start
                    break
                raise InvalidRecord(
                    f"Invalid record size: expected {length} bytes in record payload, but instead the buffer has "
                    f"only {end - pos} remaining bytes.")
            attrs = buf[pos]
            pos += 1
            # timestamp delta (varlong)
            b = buf[pos]
            if b < 0x80:
                tsd = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                tsd, pos = _varint_slow(buf, pos, rend, 10, _MASK64)
            # offset delta
            b = buf[pos]
            if b < 0x80:
                od = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                od = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                od, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
            if irregular < 0 and (od != n + first_index or attrs):
                irregular = n + first_index
                if stop_at_irregular:
                    pos = start
                    break
            # key
            b = buf[pos]
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                klen = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                klen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
            if klen > 0:
                pos += klen
            elif klen < 0:
                if klen != -1:
                    raise InvalidRecord(f"Found invalid record structure: key length {klen}")
                null_keys += 1
            # value
            b = buf[pos]
            if b < 0x80:
                vlen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                vlen = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                vlen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
            if vlen > 0:
                pos += vlen
            elif vlen < -1:
                raise InvalidRecord(f"Found invalid record structure: value length {vlen}")
            # headers
            if buf[pos] == 0:
                pos += 1
            else:
                pos = _skip_headers(buf, pos, rend)
            if pos != rend:
                raise InvalidRecord(
                    f"Invalid record size: expected to read {length} bytes in record payload, but instead read "
                    f"{pos - (rend - length)}")
            attrs_seen |= attrs
            if tsd > max_tsd:
                max_tsd = tsd
            if tsd < min_tsd:
                min_tsd = tsd
            n += 1
    except IndexError:
        raise InvalidRecord("Found invalid record structure") from None
    if not partial and n == count and pos != end:
        raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
    if not n:
        min_tsd = max_tsd = 0
    return WalkResult(pos, n, min_tsd, max_tsd, null_keys, irregular, attrs_seen)


def walk_plain(buf: Buffer, pos: int, end: int, count: int) -> tuple[int, int, int, int]:
    """:func:`walk` for a whole uncompressed batch kept as is, the Produce hot path: the same checks,
    without the offset/attributes bookkeeping Kafka does not need there (it does not look at an
    uncompressed batch's offset deltas). Returns ``(count, min_ts_delta, max_ts_delta, null_keys)``."""
    n = 0
    min_tsd = _MASK64
    max_tsd = -_MASK64
    null_keys = 0
    try:
        while n < count:
            if pos >= end:
                raise InvalidRecord("Incorrect declared batch size, premature EOF reached")
            b = buf[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif pos + 1 < end and buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                length = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                length, pos = _varint_slow(buf, pos, end, 5, _MASK32)
            rend = pos + length
            if rend > end or length < 0:
                raise InvalidRecord(
                    f"Invalid record size: expected {length} bytes in record payload, but instead the buffer has "
                    f"only {end - pos} remaining bytes.")
            # attributes (not used), then the timestamp delta
            b = buf[pos + 1]
            if b < 0x80:
                tsd = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                tsd, pos = _varint_slow(buf, pos + 1, rend, 10, _MASK64)
            # offset delta (not used)
            b = buf[pos]
            if b < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:
                pos += 2
            else:
                pos = _varint_slow(buf, pos, rend, 5, _MASK32)[1]
            b = buf[pos]
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                klen = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                klen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
            if klen > 0:
                pos += klen
            elif klen == -1:
                null_keys += 1
            elif klen:
                raise InvalidRecord(f"Found invalid record structure: key length {klen}")
            b = buf[pos]
            if b < 0x80:
                vlen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                vlen = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                vlen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
            if vlen > 0:
                pos += vlen
            elif vlen < -1:
                raise InvalidRecord(f"Found invalid record structure: value length {vlen}")
            if buf[pos] == 0:
                pos += 1
            else:
                pos = _skip_headers(buf, pos, rend)
            if pos != rend:
                raise InvalidRecord(
                    f"Invalid record size: expected to read {length} bytes in record payload, but instead read "
                    f"{pos - (rend - length)}")
            if tsd > max_tsd:
                max_tsd = tsd
            if tsd < min_tsd:
                min_tsd = tsd
            n += 1
    except IndexError:
        raise InvalidRecord("Found invalid record structure") from None
    if pos != end:
        raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
    if not n:
        min_tsd = max_tsd = 0
    return n, min_tsd, max_tsd, null_keys


def _skip_headers(buf: Buffer, pos: int, rend: int) -> int:
    global delay_headers_seen
    count, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
    if count < 0:
        raise InvalidRecord(f"Found invalid number of record headers {count}")
    if count > rend - pos:
        raise InvalidRecord(f"Found invalid number of record headers. {count} is larger than the remaining size "
                            "of the buffer")
    for _ in range(count):
        klen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
        if klen < 0:
            raise InvalidRecord(f"Invalid negative header key size {klen}")
        if klen >= 16 and buf[pos] == 0x6B and buf[pos:pos + 16] == DELAY_HEADER_PREFIX:  # 0x6B: "k"
            delay_headers_seen += 1
        pos += klen
        vlen, pos = _varint_slow(buf, pos, rend, 5, _MASK32)
        if vlen > 0:
            pos += vlen
        elif vlen < -1:
            raise InvalidRecord(f"Found invalid record structure: header value length {vlen}")
        if pos > rend:
            raise InvalidRecord("Found invalid record structure")
    return pos


def read_record(buf: Buffer, pos: int, end: int) -> RecordFields:
    """One whole record at ``pos`` (checked as :func:`walk` checks it)."""
    start = pos
    length, pos = _varint_slow(buf, pos, end, 5, _MASK32)
    body = pos
    rend = pos + length
    if length < 0 or rend > end:
        raise InvalidRecord(f"Invalid record size: expected {length} bytes in record payload, but instead the buffer "
                            f"has only {end - pos} remaining bytes.")
    walk(buf, start, rend, 1)  # framing checks
    attrs = buf[body]
    tsd, p = _varint_slow(buf, body + 1, rend, 10, _MASK64)
    od, p = _varint_slow(buf, p, rend, 5, _MASK32)
    klen, _ = _varint_slow(buf, p, rend, 5, _MASK32)
    return RecordFields(start, body, p, rend, attrs, tsd, od, klen == -1)


def record_fields(buf: Buffer, pos: int, end: int, count: int) -> Iterator[RecordFields]:
    """Every record's :class:`RecordFields`, in order (the slow, detailed walk)."""
    for _ in range(count):
        fields = read_record(buf, pos, end)
        yield fields
        pos = fields.end
