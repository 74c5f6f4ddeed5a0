"""The values of records inside a magic-2 record batch: :class:`Record`, a decoded batch, control
records (transaction markers and KRaft's control types), timestamp types; what
:mod:`kbroker_protocol.records` decodes and :mod:`kbroker_protocol.record_build` builds."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from kbroker_protocol.record_batch import BatchHeader

NO_TIMESTAMP = -1
DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024

# A control record's key (i16 version, i16 type) and an ABORT/COMMIT marker's value (i16 version,
# i32 coordinator epoch).
CONTROL_KEY = struct.Struct(">hh")
TXN_MARKER_VALUE = struct.Struct(">hi")



class TimestampType(enum.IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class ControlType(enum.IntEnum):
    """Control record types (key ``i16 version, i16 type``), as in Kafka's ``ControlRecordType``."""

    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6


@dataclass(frozen=True, slots=True)
class Record:
    """One record. ``offset`` and ``timestamp`` are absolute.

    When decoding, ``timestamp`` is what a Kafka consumer sees: baseTimestamp + delta for
    CreateTime batches and the batch's maxTimestamp for LogAppendTime batches. When building,
    ``offset=None`` means "the next offset" and ``timestamp`` is the record's CreateTime.
    Header keys are ``str`` (bytes that are not UTF-8 survive a round trip as surrogate escapes).
    """

    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = NO_TIMESTAMP
    offset: int | None = None
    attributes: int = 0


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    header: BatchHeader
    records: list[Record]


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """A decoded control record. ``coordinator_epoch`` is set for ABORT/COMMIT markers only."""

    type: int
    version: int
    coordinator_epoch: int | None = None
    value_version: int | None = None

    @property
    def control_type(self) -> ControlType | None:
        try:
            return ControlType(self.type)
        except ValueError:
            return None
