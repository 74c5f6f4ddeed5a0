"""Partition logs on disk: segments, indexes, recovery, retention and compaction."""

from .cleaner import CleanResult, clean_log
from .config import LogConfig
from .errors import (
    InvalidOffsetError,
    LogClosedError,
    LogCorruptedError,
    LogError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
)
from .log_manager import LogManager
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
    "CleanResult",
    "clean_log",
    "LogManager",
    "EARLIEST_TIMESTAMP",
    "FileSlice",
    "InvalidOffsetError",
    "LATEST_TIMESTAMP",
    "LogClosedError",
    "LogConfig",
    "LogCorruptedError",
    "LogError",
    "MAX_TIMESTAMP",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
    "RecordBatchTooLargeError",
]
