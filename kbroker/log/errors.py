"""Errors raised by the partition log; the broker maps each to a Kafka error code."""

from __future__ import annotations

from pathlib import Path


class LogError(Exception):
    """Base class for partition log errors."""


class OffsetOutOfRangeError(LogError):
    """The requested offset is outside [log start, log end] (OFFSET_OUT_OF_RANGE)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(
            f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class LogCorruptedError(LogError):
    """Stored data failed validation in the middle of the log (KAFKA_STORAGE_ERROR).

    The partition is offline: every operation on it raises this error until an operator repairs
    or deletes the files. ``path`` is the damaged segment file, ``offset`` the first offset that
    could not be read, ``position`` its byte position in that file.
    """

    def __init__(self, path: Path, offset: int, position: int, reason: str) -> None:
        super().__init__(f"corrupt log segment {path} at offset {offset} (position {position}): {reason}")
        self.path = path
        self.offset = offset
        self.position = position
        self.reason = reason


class RecordBatchTooLargeError(LogError):
    """A batch is larger than max.message.bytes (MESSAGE_TOO_LARGE)."""


class InvalidOffsetError(LogError):
    """Batches given with their own offsets (replication) do not follow the log end."""


class LogClosedError(LogError):
    """The log was closed or deleted."""
