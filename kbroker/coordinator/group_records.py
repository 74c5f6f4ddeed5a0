"""Records of ``__consumer_offsets`` in Kafka's own formats, and the partition a group lives in.

A record key is ``i16 type`` (the spec's ``apiKey``: 0/1 offset commit, 2 group metadata) followed
by the key body; a value is ``i16 version`` followed by the value body; a ``None`` value is a
tombstone. The bodies are the generated codecs of ``group-coordinator/*.json``, so Kafka's
``kafka-console-consumer --formatter ...GroupMetadataMessageFormatter`` and any tool that reads
that topic can decode what this broker writes.

Written versions follow Kafka 4.x: OffsetCommitValue v3 (v1 when an explicit expire timestamp was
requested by OffsetCommit v2-4), GroupMetadataValue v3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from kbroker_protocol.messages.coordinator import (
    GroupMetadataKey,
    GroupMetadataValue,
    LegacyOffsetCommitKey,
    OffsetCommitKey,
    OffsetCommitValue,
)
from kbroker_protocol.primitives import Message

_I16 = struct.Struct(">h")

OFFSET_COMMIT_KEY_TYPES = (0, 1)  # 0: legacy (pre-0.10), 1: current
GROUP_METADATA_KEY_TYPE = 2
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_METADATA_VALUE_VERSION = 3


# -- keys and values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


def encode_offset_key(group: str, topic: str, partition: int) -> bytes:
    return _I16.pack(1) + OffsetCommitKey(group=group, topic=topic, partition=partition).encode(0)


def encode_group_key(group: str) -> bytes:
    return _I16.pack(GROUP_METADATA_KEY_TYPE) + GroupMetadataKey(group=group).encode(0)


def encode_offset_value(offset: int, leader_epoch: int, metadata: str, commit_ts: int,
                        expire_ts: int = -1) -> bytes:
    version = OFFSET_COMMIT_VALUE_VERSION if expire_ts < 0 else OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY
    value = OffsetCommitValue(offset=offset, leader_epoch=leader_epoch, metadata=metadata,
                              commit_timestamp=commit_ts, expire_timestamp=expire_ts)
    return _I16.pack(version) + value.encode(version)


def encode_group_value(value: GroupMetadataValue) -> bytes:
    return _I16.pack(GROUP_METADATA_VALUE_VERSION) + value.encode(GROUP_METADATA_VALUE_VERSION)


def decode_key(key: bytes) -> OffsetKey | GroupKey | None:
    """The key of a ``__consumer_offsets`` record; ``None`` for record types this broker ignores
    (KIP-848 and share/streams group records are decoded by their own owner)."""
    (kind,) = _I16.unpack_from(key)
    body = memoryview(key)[2:]
    if kind == 1:
        k = OffsetCommitKey.decode(body, 0)
        return OffsetKey(k.group, k.topic, k.partition)
    if kind == 0:
        legacy = LegacyOffsetCommitKey.decode(body, 0)
        return OffsetKey(legacy.group, legacy.topic, legacy.partition)
    if kind == GROUP_METADATA_KEY_TYPE:
        return GroupKey(GroupMetadataKey.decode(body, 0).group)
    return None


def record_type(key: bytes) -> int:
    kind: int = _I16.unpack_from(key)[0]
    return kind


_Value = TypeVar("_Value", bound=Message)


def decode_value(cls: type[_Value], value: bytes) -> _Value:
    """Decode a versioned value; versions newer than the codec knows are read at its newest
    (Kafka's values only ever add ignorable or tagged fields)."""
    (version,) = _I16.unpack_from(value)
    decoded: _Value = cls.decode(memoryview(value)[2:], min(version, cls.MAX_VERSION))
    return decoded


def decode_offset_value(value: bytes) -> OffsetCommitValue:
    return decode_value(OffsetCommitValue, value)


def decode_group_value(value: bytes) -> GroupMetadataValue:
    return decode_value(GroupMetadataValue, value)
