"""Partition logs on disk: segments, indexes, recovery, retention and compaction."""

from .config import LogConfig, LogConfigError
from .errors import (
    InvalidOffsetError,
    LogClosedError,
    LogCorruptedError,
    LogError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
)
from .partition_log import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    AppendInfo,
    FileSlice,
    PartitionLog,
    ReadResult,
)

__all__ = [
    "AppendInfo",
    "EARLIEST_TIMESTAMP",
    "FileSlice",
    "InvalidOffsetError",
    "LATEST_TIMESTAMP",
    "LogClosedError",
    "LogConfig",
    "LogConfigError",
    "LogCorruptedError",
    "LogError",
    "MAX_TIMESTAMP",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
    "RecordBatchTooLargeError",
]
