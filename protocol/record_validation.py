"""Validate the records of a produced batch against its header, as Kafka's ``LogValidator`` does.

Pure functions (no I/O, no asyncio): the broker runs :func:`validate_records` inline for small
batches and in a worker process for large ones (``kbroker.replication.validation``).

What is checked, and the error Kafka 4.4 gives (each checked against a running Kafka 4.4.0 with
``scripts/probe_produce_validation.py``; code: ``LogValidator``, ``DefaultRecordBatch`` and
``DefaultRecord.readFrom``/``readPartiallyFrom``):

- record framing (length, attributes, timestamp delta, offset delta, key, value, headers ending
  exactly at the record's length), the declared count against the records present, bytes left
  after the last record: INVALID_RECORD (87), no record errors (``InvalidRecordException``);
- a compressed payload that does not decode (garbage, truncated): UNKNOWN_SERVER_ERROR (-1) -- Kafka
  wraps the codec's ``IOException`` in a plain ``KafkaException``, which ``Errors.forException``
  maps to UNKNOWN_SERVER_ERROR;
- a compacted topic and a record without a key: INVALID_RECORD with one record error per such
  record and Kafka's summary message;
- a record timestamp outside ``message.timestamp.before.max.ms``/``after.max.ms`` (CreateTime
  topics), or a LogAppendTime batch from a client: INVALID_TIMESTAMP (32) with record errors;
- when the topic's ``compression.type`` is not the producer's codec, the batch is rebuilt (Kafka's
  ``buildRecordsAndAssignOffsets``: inner offsets become 0, 1, 2..., record attributes 0); the
  rebuilt batch over ``max.message.bytes`` is MESSAGE_TOO_LARGE (10), decided as soon as the output
  passes the limit rather than after all the work;
- a compressed batch kept as is whose inner offsets are not 0, 1, 2...: UNKNOWN_SERVER_ERROR, as
  Kafka 4.4 answers (its rebuild of such a batch fails); an uncompressed batch's offset deltas are
  not checked (Kafka does not either).

Like Kafka, the header's maxTimestamp is set from the records (CRC recomputed) when it differs.

Bounds (not in Kafka): a compressed payload is decompressed piece by piece and walked without
holding more than one record plus one chunk; in total it may decompress to at most
``max_decompressed`` bytes (MESSAGE_TOO_LARGE beyond: Kafka has no such limit, and accepts a
"bomb" whose records are well-formed).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from kbroker_protocol.compression import (
    Codec,
    CorruptCompressedData,
    DecompressedSizeExceeded,
    StreamCompressor,
    decompress,
    decompress_chunks,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    CRC_OFFSET,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    Buffer,
    InvalidRecord,
    compute_crc,
)
from kbroker_protocol.record_walk import _MASK32, _varint_slow, read_record, walk, walk_plain

__all__ = ["Outcome", "Policy", "OverBudget", "validate_records", "work_estimate"]

NO_TIMESTAMP = -1
MIN_RECORD_SIZE = 7  # length, attributes, timestamp delta, offset delta, key, value, header count
DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024
_ATTRIBUTES_OFFSET = 21
_MAX_TIMESTAMP_OFFSET = 35
_HEADER_AFTER_LENGTH = struct.Struct(">ibIhiqqqhii")


@dataclass(frozen=True, slots=True)
class Policy:
    """What the topic asks of a produced batch."""

    topic_partition: str  # "topic-partition", for messages as Kafka words them
    now_ms: int
    max_message_bytes: int
    compacted: bool = False
    log_append_time: bool = False  # message.timestamp.type=LogAppendTime
    before_max_ms: int = 2**63 - 1
    after_max_ms: int = 2**63 - 1
    target_codec: int | None = None  # None: keep the producer's codec ("producer")
    compression_level: int | None = None
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED


@dataclass(slots=True)
class Outcome:
    """``error`` NONE: store ``batch`` (the input unless the records were rebuilt or maxTimestamp set)."""

    error: int = ErrorCode.NONE
    message: str | None = None
    record_errors: list[tuple[int, str]] = field(default_factory=list)
    batch: bytes | bytearray | memoryview | None = None
    records: int = 0
    delay_headers: bool = False  # set by kbroker's validation workers: a kbroker-deliver-* header seen


class OverBudget(Exception):
    """The work needed exceeds the caller's inline budget (run it elsewhere)."""


class _TooLarge(Exception):
    pass


def work_estimate(header: BatchHeader, size: int) -> int:
    """An upper bound on the records an uncompressed batch can make the walk read."""
    return min(header.records_count, max(0, size - HEADER_SIZE) // MIN_RECORD_SIZE + 1)


def validate_records(batch: bytes | bytearray | memoryview, header: BatchHeader, policy: Policy,
                     budget_records: int | None = None, budget_bytes: int | None = None) -> Outcome:
    """Check the records of ``batch`` (its header already checked) and rebuild it if the topic asks.

    With a budget, raise :class:`OverBudget` as soon as more than ``budget_records`` records or
    ``budget_bytes`` decompressed bytes would be needed (the caller then runs it without one).
    """
    try:
        return _validate(batch, header, policy, budget_records, budget_bytes)
    except InvalidRecord as exc:
        return Outcome(ErrorCode.INVALID_RECORD, str(exc))
    except CorruptCompressedData as exc:
        return Outcome(ErrorCode.UNKNOWN_SERVER_ERROR, f"Failed to decompress record stream: {exc}")
    except DecompressedSizeExceeded:
        return Outcome(ErrorCode.MESSAGE_TOO_LARGE,
                       f"The records of the batch decompress to more than {policy.max_decompressed} bytes in append "
                       f"to partition {policy.topic_partition}")
    except _TooLarge as exc:
        return Outcome(ErrorCode.MESSAGE_TOO_LARGE, str(exc))


def _validate(batch, header: BatchHeader, policy: Policy, budget_records, budget_bytes) -> Outcome:
    source = header.compression
    target = source if policy.target_codec is None else policy.target_codec
    size = header.size
    count = header.records_count
    if source == Codec.NONE:
        if budget_records is not None and work_estimate(header, size) > budget_records:
            raise OverBudget
        if target == Codec.NONE:
            n, min_tsd, max_tsd, null_keys = walk_plain(batch, HEADER_SIZE, size, count)
            return _finish_in_place(batch, header, policy, n, min_tsd, max_tsd, null_keys)
        return _rebuild(batch, header, policy, target, budget_records, budget_bytes)
    if budget_records is not None and count > budget_records:
        raise OverBudget
    if target != source:
        return _rebuild(batch, header, policy, target, budget_records, budget_bytes)
    # Compressed, kept as is: stream through the payload.
    n = 0
    min_tsd, max_tsd, null_keys = 0, 0, 0
    irregular = False
    buf = bytearray()
    need = 0
    decompressed = 0
    for chunk in decompress_chunks(source, memoryview(batch)[HEADER_SIZE:size], policy.max_decompressed):
        decompressed += len(chunk)
        if budget_bytes is not None and decompressed > budget_bytes:
            raise OverBudget
        if n == count:
            raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
        buf += chunk
        if len(buf) < need:
            continue
        r = walk(buf, 0, len(buf), count - n, partial=True, first_index=n)
        if r.records:
            min_tsd = r.min_ts_delta if not n else min(min_tsd, r.min_ts_delta)
            max_tsd = r.max_ts_delta if not n else max(max_tsd, r.max_ts_delta)
            null_keys += r.null_keys
            n += r.records
        if r.first_irregular >= 0 and r.first_irregular < n:
            irregular = True
        del buf[: r.pos]
        need = _pending_size(buf)
        if n == count and buf:
            raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
    if n < count:
        walk(buf, 0, len(buf), count - n)  # raises: the records stop short of the count
        raise InvalidRecord("Incorrect declared batch size, premature EOF reached")
    if irregular:
        # Kafka 4.4 sets out to rebuild a compressed batch whose inner offsets are not 0, 1, 2... but its
        # records, read without key and value for an in-place check, cannot be copied: the append fails
        # with UNKNOWN_SERVER_ERROR (checked). Same answer here. (A re-encode rebuilds them fine.)
        return Outcome(ErrorCode.UNKNOWN_SERVER_ERROR,
                       "Inner record offsets in the compressed record batch are not 0, 1, 2...")
    return _finish_in_place(batch, header, policy, n, min_tsd, max_tsd, null_keys)


def _pending_size(buf: bytearray) -> int:
    """Bytes the record at the start of ``buf`` needs in all (0 if its length is not readable yet)."""
    if not buf:
        return 0
    try:
        length, pos = _varint_slow(buf, 0, min(len(buf), 5), 5, _MASK32)
    except InvalidRecord:
        return 0
    return pos + max(length, 0)


def _record_timestamps_error(header: BatchHeader, policy: Policy, min_tsd: int, max_tsd: int) -> bool:
    """Whether some record may have an invalid timestamp (then the detailed walk decides)."""
    if header.is_log_append_time:
        return True
    if policy.log_append_time:
        return False
    now = policy.now_ms
    return (header.base_timestamp + max_tsd - now > policy.after_max_ms
            or now - (header.base_timestamp + min_tsd) > policy.before_max_ms)


def _finish_in_place(batch, header: BatchHeader, policy: Policy, n: int, min_tsd: int, max_tsd: int,
                     null_keys: int) -> Outcome:
    if (policy.compacted and null_keys) or _record_timestamps_error(header, policy, min_tsd, max_tsd):
        failed = _record_errors(batch, header, policy)
        if failed is not None:
            return failed
    return Outcome(batch=_with_max_timestamp(batch, header, policy, max_tsd), records=n)


def _with_max_timestamp(batch, header: BatchHeader, policy: Policy, max_tsd: int):
    """Kafka's ``setMaxTimestamp(CreateTime, max of the records)``: the batch, patched if it differs.
    (LogAppendTime topics: the log stamps the batch itself.)"""
    if policy.log_append_time:
        return batch
    if header.is_log_append_time:
        max_ts = header.max_timestamp
    else:
        max_ts = header.base_timestamp + max_tsd
    if max_ts == header.max_timestamp and not header.is_log_append_time:
        return batch
    out = bytearray(memoryview(batch)[: header.size])
    struct.pack_into(">h", out, _ATTRIBUTES_OFFSET, header.attributes & ~TIMESTAMP_TYPE_MASK)
    struct.pack_into(">q", out, _MAX_TIMESTAMP_OFFSET, max_ts)
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return out


# --- record errors (the slow, detailed path) ------------------------------------------------------


def _payload(batch, header: BatchHeader, policy: Policy) -> bytes | memoryview:
    section = memoryview(batch)[HEADER_SIZE : header.size]
    if header.compression == Codec.NONE:
        return section
    return decompress(header.compression, section, policy.max_decompressed)


def _record_errors(batch, header: BatchHeader, policy: Policy) -> Outcome | None:
    """Kafka's per-record errors (``validateKey``/``validateTimestamp``) and its summary message."""
    payload = _payload(batch, header, policy)
    pos = 0
    errors: list[tuple[int, str]] = []
    timestamp_error = False
    tp = policy.topic_partition
    now = policy.now_ms
    for index in range(header.records_count):
        f = read_record(payload, pos, len(payload))
        pos = f.end
        if policy.compacted and f.key_is_null:
            errors.append((index, f"Compacted topic cannot accept message without key in topic partition {tp}"))
            continue
        ts = header.max_timestamp if header.is_log_append_time else header.base_timestamp + f.timestamp_delta
        if not policy.log_append_time and ts != NO_TIMESTAMP:
            if now - ts > policy.before_max_ms or ts - now > policy.after_max_ms:
                timestamp_error = True
                errors.append((index, f"Timestamp {ts} of message with offset {header.base_offset + f.offset_delta} "
                                      f"is out of range. The timestamp should be within "
                                      f"[{now - policy.before_max_ms}, {now + policy.after_max_ms}]"))
        elif header.is_log_append_time:
            timestamp_error = True
            errors.append((index, "Invalid timestamp type in message. Producer should not set timestamp type to "
                                  "LogAppendTime."))
    if not errors:
        return None
    if timestamp_error:
        return Outcome(ErrorCode.INVALID_TIMESTAMP, "One or more records have been rejected due to invalid timestamp",
                       errors)
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    return Outcome(ErrorCode.INVALID_RECORD,
                   f"One or more records have been rejected due to {len(errors)} record errors in total, and only "
                   f"showing the first three errors at most: [{shown}]", errors)


# --- rebuilding -----------------------------------------------------------------------------------


def _write_varint(out: bytearray, value: int) -> None:
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def _rebuild(batch, header: BatchHeader, policy: Policy, target: int, budget_records, budget_bytes) -> Outcome:
    """Kafka's ``buildRecordsAndAssignOffsets``: the records again, offset deltas 0, 1, 2..., record
    attributes 0, compressed with ``target``. Records already in that form are copied as bytes."""
    source = header.compression
    count = header.records_count
    limit = policy.max_message_bytes - HEADER_SIZE
    sink = StreamCompressor(target, policy.compression_level)
    tp = policy.topic_partition

    def check_size() -> None:
        if sink.size > limit:
            raise _TooLarge(f"Message batch size is more than {policy.max_message_bytes} bytes in append to partition "
                            f"{tp} which exceeds the maximum configured size of {policy.max_message_bytes}.")

    n = 0
    min_tsd, max_tsd, null_keys = 0, 0, 0
    buf = bytearray()
    need = 0
    decompressed = 0
    section = memoryview(batch)[HEADER_SIZE : header.size]
    chunks: Iterable[Buffer]
    if source == Codec.NONE:
        chunks = [section]  # already in memory: walk it in place
    else:
        chunks = decompress_chunks(source, section, policy.max_decompressed)
    for chunk in chunks:
        decompressed += len(chunk)
        if budget_bytes is not None and decompressed > budget_bytes:
            raise OverBudget
        if n == count:
            raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
        if source == Codec.NONE:
            buf = chunk  # type: ignore[assignment]
        else:
            buf += chunk
            if len(buf) < need:
                continue
        pos = 0
        end = len(buf)
        while n < count:
            r = walk(buf, pos, end, count - n, partial=True, stop_at_irregular=True, first_index=n)
            if r.records:
                min_tsd = r.min_ts_delta if not n else min(min_tsd, r.min_ts_delta)
                max_tsd = r.max_ts_delta if not n else max(max_tsd, r.max_ts_delta)
                null_keys += r.null_keys
                with memoryview(buf) as view:
                    sink.write(view[pos : r.pos])
                check_size()
                n += r.records
            pos = r.pos
            if r.first_irregular != n or n == count:
                break  # the next record is incomplete, or all are read
            # rewrite one record: attributes 0, offset delta n, the rest as it is
            if _pending_size(buf[pos : pos + 5]) > end - pos:
                break
            f = read_record(buf, pos, end)
            body = bytearray(b"\x00")
            _write_varint(body, f.timestamp_delta)
            _write_varint(body, n)
            head = bytearray()
            _write_varint(head, len(body) + f.end - f.key_length_at)
            sink.write(head + body)
            with memoryview(buf) as view:
                sink.write(view[f.key_length_at : f.end])
            check_size()
            min_tsd = f.timestamp_delta if not n else min(min_tsd, f.timestamp_delta)
            max_tsd = f.timestamp_delta if not n else max(max_tsd, f.timestamp_delta)
            null_keys += f.key_is_null
            n += 1
            pos = f.end
        if source == Codec.NONE:
            if n < count or pos != end:
                walk(buf, pos, end, count - n)  # raises
            break
        del buf[:pos]
        need = _pending_size(buf)
        if n == count and buf:
            raise InvalidRecord("Incorrect declared batch size, records still remaining in file")
    if n < count:
        walk(buf, 0, len(buf), count - n)  # raises: the records stop short of the count
        raise InvalidRecord("Incorrect declared batch size, premature EOF reached")
    if (policy.compacted and null_keys) or _record_timestamps_error(header, policy, min_tsd, max_tsd):
        failed = _record_errors(batch, header, policy)
        if failed is not None:
            return failed
    payload = sink.finish()
    if len(payload) > limit:
        raise _TooLarge(f"Message batch size is {len(payload) + HEADER_SIZE} bytes in append to partition {tp} which "
                        f"exceeds the maximum configured size of {policy.max_message_bytes}.")
    if header.is_log_append_time:
        max_ts = header.max_timestamp
    else:
        max_ts = header.base_timestamp + max_tsd
    attrs = target | (header.attributes & TRANSACTIONAL_MASK)
    out = bytearray(HEADER_SIZE)
    struct.pack_into(">qi", out, 0, 0, HEADER_SIZE - LOG_OVERHEAD + len(payload))
    _HEADER_AFTER_LENGTH.pack_into(
        out, 12, header.partition_leader_epoch, 2, 0, attrs, n - 1, header.base_timestamp, max_ts,
        header.producer_id, header.producer_epoch, header.base_sequence, n)
    out += payload
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return Outcome(batch=bytes(out), records=n)
