"""Metadata records as stored in the metadata log, in Kafka's frame format.

A record value is ``uvarint frameVersion (1) | uvarint apiKey | uvarint version | body`` (Kafka's
``MetadataRecordSerde``), so tools that read ``__cluster_metadata`` can decode ours.
"""

from __future__ import annotations

from typing import Any

from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages.metadata_records import (
    CLASSES,
    AccessControlEntryRecord,
    ClientQuotaRecord,
    ConfigRecord,
    DelegationTokenRecord,
    FeatureLevelRecord,
    FenceBrokerRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveAccessControlEntryRecord,
    RemoveDelegationTokenRecord,
    RemoveTopicRecord,
    RemoveUserScramCredentialRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UserScramCredentialRecord,
)
from kbroker_protocol.primitives import Message, read_uvarint, write_uvarint

# Any metadata record: every generated record class derives from the codec's Message.
MetadataRecord = Message

__all__ = [
    "AccessControlEntryRecord",
    "ClientQuotaRecord",
    "ConfigRecord",
    "DelegationTokenRecord",
    "FeatureLevelRecord",
    "FenceBrokerRecord",
    "PartitionChangeRecord",
    "PartitionRecord",
    "ProducerIdsRecord",
    "RegisterBrokerRecord",
    "RemoveAccessControlEntryRecord",
    "RemoveDelegationTokenRecord",
    "RemoveTopicRecord",
    "RemoveUserScramCredentialRecord",
    "TopicRecord",
    "UnfenceBrokerRecord",
    "UserScramCredentialRecord",
    "MetadataRecord",
    "decode_frame",
    "encode_frame",
]

FRAME_VERSION = 1
BY_API_KEY: dict[int, type[Message]] = {
    cls.API_KEY: cls for cls in CLASSES.values() if issubclass(cls, Message) and cls.API_KEY is not None
}


def encode_frame(record: object) -> bytes:
    api_key = record.API_KEY if isinstance(record, Message) else None
    if api_key is None or not isinstance(record, Message):
        raise TypeError(f"{type(record).__name__} is not a metadata record")
    version = type(record).MAX_VERSION
    out = bytearray()
    write_uvarint(out, FRAME_VERSION)
    write_uvarint(out, api_key)
    write_uvarint(out, version)
    out += record.encode(version)
    return bytes(out)


def decode_frame(data: bytes | bytearray | memoryview) -> Any:
    buf = memoryview(data)
    frame_version, pos = read_uvarint(buf, 0)
    if frame_version != FRAME_VERSION:
        raise ProtocolError(f"unknown metadata frame version {frame_version}")
    api_key, pos = read_uvarint(buf, pos)
    version, pos = read_uvarint(buf, pos)
    cls = BY_API_KEY.get(api_key)
    if cls is None:
        raise ProtocolError(f"unknown metadata record type {api_key}")
    return cls.decode(buf[pos:], version)
