"""The checks of a produced batch that need no partition state, the error they raise, and the
result of an append.

Produce (``kbroker/api/produce.py``) answers with :class:`ProduceError`'s code; the replica
manager and the producer state raise it while appending (``kbroker/replication``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    CONTROL_MASK,
    BatchHeader,
    InvalidRecordBatch,
    parse_header,
    validate_batch,
)
from kbroker_protocol.records import Buffer, check_produce_records

ZSTD = 4


@dataclass(slots=True)
class AppendResult:
    error: ErrorCode
    base_offset: int
    log_append_time: int = -1
    message: str | None = None
    last_offset: int = -1  # acks=all waits until the high watermark passes it


class ProduceError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None,
                 record_errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message
        self.record_errors = record_errors or []  # (batch index, message): Kafka's RecordError


def validate_produce_batch(records: Buffer | None, version: int,
                           max_message_bytes: int) -> tuple[BatchHeader, Buffer]:
    """Check the single batch of a v3+ Produce partition; returns ``(header, batch bytes)``.

    The request-level rules are Kafka's ``ProduceRequest.validateRecords``
    (:func:`kbroker_protocol.records.check_produce_records`); then, as Kafka's LogValidator does from the
    header alone: size against ``max.message.bytes``, CRC, control bit, codec and offset range.
    """
    code = check_produce_records(version, records)
    if code != ErrorCode.NONE:
        raise ProduceError(code, _REQUEST_ERRORS.get(code))
    if records is None:  # (only below v3, which Produce rejects before: check_produce_records checks v3+)
        raise ProduceError(ErrorCode.INVALID_RECORD, _REQUEST_ERRORS[ErrorCode.INVALID_RECORD])
    try:

        header = parse_header(records, 0)  # (a batch shorter than its header: CORRUPT_MESSAGE)
        size = header.size
        if size != len(records):
            records = records[:size]  # a trailing fragment is dropped, as Kafka's log does
        if size > max_message_bytes:
            raise ProduceError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"The record batch size {size} exceeds the maximum message size {max_message_bytes}",
            )
        validate_batch(records, 0)
    except InvalidRecordBatch as exc:
        raise ProduceError(ErrorCode.CORRUPT_MESSAGE, str(exc)) from None
    if header.attributes & CONTROL_MASK:
        raise ProduceError(ErrorCode.INVALID_RECORD, "Clients are not allowed to write control records")
    if header.compression > ZSTD:
        raise ProduceError(ErrorCode.CORRUPT_MESSAGE, f"Unknown compression type id {header.compression}")
    if header.records_count <= 0 or header.last_offset_delta != header.records_count - 1:
        raise ProduceError(ErrorCode.INVALID_RECORD, "Inconsistent record count and offset delta in batch")
    return header, records


_REQUEST_ERRORS = {
    ErrorCode.INVALID_RECORD: "Produce requests with version 3+ must carry exactly one record batch with magic 2",
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE: "Produce requests with ZStandard compression need version 7 or later",
}
