"""The bytes of the KRaft metadata log (``kbroker/metadata/metadata_log.py``): its record batches
(entries <-> Kafka record batches, LeaderChangeMessage and other control records included) and its
``.checkpoint`` snapshot files (SnapshotHeaderRecord, the records, SnapshotFooterRecord), as Kafka
writes them.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kbroker.raft.log import ControlRecord, Entry
from kbroker.raft.wire import leader_change_message, leader_change_value
from kbroker_protocol.messages.data.leader_change_message import LeaderChangeMessage
from kbroker_protocol.messages.data.snapshot_footer_record import SnapshotFooterRecord
from kbroker_protocol.messages.data.snapshot_header_record import SnapshotHeaderRecord
from kbroker_protocol.record_batch import InvalidRecordBatch, iter_batch_headers
from kbroker_protocol.records import ControlType, Record, build_batch, decode_batch

CHECKPOINT_SUFFIX = ".checkpoint"
PARTIAL_SUFFIX = CHECKPOINT_SUFFIX + ".part"
DELETE_SUFFIX = CHECKPOINT_SUFFIX + ".deleted"
# the kept records of a batch being cut (see MetadataLog._truncate_stored)
TRUNCATION_FILE = "kbroker-truncation.batch"
SNAPSHOT_NAME = re.compile(r"^(\d{20})-(\d{10})\.checkpoint$")
_CONTROL_KEY = struct.Struct(">hh")  # control record key: version, type
# Kafka's KafkaRaftClient.MAX_BATCH_SIZE_BYTES: the largest batch the metadata log writes.
MAX_BATCH_BYTES = 8 * 1024 * 1024
# Data records per snapshot batch; Kafka's snapshot writer uses the same 8 MiB batch limit.
SNAPSHOT_BATCH_BYTES = MAX_BATCH_BYTES


class MetadataLogError(Exception):
    """A metadata log directory or snapshot that cannot be used (the reason says which and why)."""


# ------------------------------------------------------------------ batches


def _now_ms() -> int:
    return int(time.time() * 1000)


def _record_of(entry: Entry, voters: Sequence[int], now: int) -> Record:
    if entry.control:
        if isinstance(entry.value, ControlRecord):
            key = _CONTROL_KEY.pack(entry.value.key_version, entry.value.type)
            return Record(key=key, value=bytes(entry.value.value), timestamp=now)
        msg = leader_change_message(entry.value, voters)
        return Record(key=_CONTROL_KEY.pack(0, ControlType.LEADER_CHANGE), value=bytes(msg.encode(0)), timestamp=now)
    return Record(value=bytes(entry.value), timestamp=now)


def check_entry(entry: Entry) -> None:
    if entry.control:
        if isinstance(entry.value, bool) or not isinstance(entry.value, int | ControlRecord):
            raise TypeError(
                f"a control entry's value must be the leader id or a ControlRecord, not {type(entry.value).__name__}"
            )
    elif not isinstance(entry.value, bytes | bytearray):
        raise TypeError(f"a record value must be bytes, not {type(entry.value).__name__}")
    if entry.epoch < 0:
        raise ValueError(f"an entry's epoch must not be negative ({entry.epoch})")


def encode_batches(base_offset: int, entries: Sequence[Entry], voters: Sequence[int] = (), now: int | None = None) -> bytes:
    """Record batches for ``entries`` from ``base_offset``: one per proposal (a run of one epoch
    and kind ending at an entry whose ``batch_end`` is True), as Kafka's leader writes one batch
    per proposal and its followers keep them. A proposal is never split: a batch is written whole
    or, torn, cut whole on recovery, so a crash never leaves part of a proposal."""
    now = _now_ms() if now is None else now
    out = bytearray()
    i = 0
    while i < len(entries):
        first = entries[i]
        records: list[Record] = []
        j = i
        while j < len(entries) and entries[j].epoch == first.epoch and entries[j].control == first.control:
            records.append(_record_of(entries[j], voters, now))
            j += 1
            if entries[j - 1].batch_end:
                break
        out += build_batch(records, base_offset=base_offset + i, control=first.control, partition_leader_epoch=first.epoch)
        i = j
    return bytes(out)


def decode_batch_entries(data: bytes | memoryview, pos: int) -> list[tuple[int, Entry]]:
    """``(offset, entry)`` for each record of the (validated) batch at ``pos``."""
    batch = decode_batch(data, pos)
    header = batch.header
    epoch = max(header.partition_leader_epoch, 0)
    out: list[tuple[int, Entry]] = []
    for rec in batch.records:
        assert rec.offset is not None
        if header.is_control:
            if rec.key is None or len(rec.key) < _CONTROL_KEY.size:
                raise InvalidRecordBatch(f"control record at offset {rec.offset} without a key")
            key_version, ctype = _CONTROL_KEY.unpack_from(rec.key)
            if ctype == ControlType.LEADER_CHANGE:
                lcm = LeaderChangeMessage.decode(memoryview(rec.value or b""), 0)
                out.append((rec.offset, Entry(epoch, leader_change_value(lcm), control=True)))
            else:
                out.append((rec.offset, Entry(epoch, ControlRecord(ctype, bytes(rec.value or b""), key_version), control=True)))
        else:
            out.append((rec.offset, Entry(epoch, bytes(rec.value) if rec.value is not None else b"")))
    # a batch is one proposal (or, written by an older kbroker, several whole ones): only its
    # last record ends one
    for k in range(len(out) - 1):
        o, e = out[k]
        out[k] = (o, Entry(e.epoch, e.value, e.control, batch_end=False))
    return out


# ------------------------------------------------------------------ snapshot files


def snapshot_file_name(end_offset: int, epoch: int) -> str:
    return f"{end_offset:020d}-{epoch:010d}{CHECKPOINT_SUFFIX}"


def encode_snapshot(records: Iterable[bytes | ControlRecord], epoch: int, last_contained_log_timestamp: int = 0,
                    now: int | None = None) -> bytes:
    """The content of a ``.checkpoint`` file holding ``records`` (framed metadata records), as
    Kafka's ``RecordsSnapshotWriter`` lays it out: a control batch at offset 0 with the
    SnapshotHeaderRecord, followed in that batch by the ``ControlRecord`` items of ``records``
    (Kafka puts its KRaftVersionRecord and VotersRecord there); the data records in batches of at
    most ``SNAPSHOT_BATCH_BYTES``; a control batch with the SnapshotFooterRecord. Every batch has
    ``partitionLeaderEpoch`` = ``epoch``."""
    now = _now_ms() if now is None else now
    header = SnapshotHeaderRecord(version=0, last_contained_log_timestamp=last_contained_log_timestamp)
    controls = [Record(key=_CONTROL_KEY.pack(0, ControlType.SNAPSHOT_HEADER), value=bytes(header.encode(0)), timestamp=now)]
    data: list[bytes] = []
    for item in records:
        if isinstance(item, ControlRecord):
            controls.append(Record(key=_CONTROL_KEY.pack(item.key_version, item.type), value=bytes(item.value),
                                   timestamp=now))
        elif isinstance(item, bytes | bytearray):
            data.append(bytes(item))
        else:
            raise TypeError(f"a snapshot record must be bytes or a ControlRecord, not {type(item).__name__}")
    out = bytearray(build_batch(controls, base_offset=0, control=True, partition_leader_epoch=epoch))
    offset = len(controls)
    batch: list[Record] = []
    size = 0
    for value in data:
        if batch and size + len(value) + 32 > SNAPSHOT_BATCH_BYTES:
            out += build_batch(batch, base_offset=offset, partition_leader_epoch=epoch)
            offset += len(batch)
            batch, size = [], 0
        batch.append(Record(value=value, timestamp=now))
        size += len(value) + 32
    if batch:
        out += build_batch(batch, base_offset=offset, partition_leader_epoch=epoch)
        offset += len(batch)
    footer = SnapshotFooterRecord(version=0)
    out += build_batch(
        [Record(key=_CONTROL_KEY.pack(0, ControlType.SNAPSHOT_FOOTER), value=bytes(footer.encode(0)), timestamp=now)],
        base_offset=offset, control=True, partition_leader_epoch=epoch,
    )
    return bytes(out)


@dataclass(frozen=True, slots=True)
class SnapshotContent:
    """A decoded ``.checkpoint``: the header's last contained log timestamp, the data records, and
    the other control records between header and footer (KRaftVersionRecord, VotersRecord)."""

    last_contained_log_timestamp: int
    records: list[bytes]
    control_records: list[ControlRecord]


def decode_snapshot(data: bytes | bytearray | memoryview) -> SnapshotContent:
    """Read a ``.checkpoint`` content; raises ``MetadataLogError`` unless it is complete: batches
    with valid CRCs and contiguous offsets from 0, a SnapshotHeaderRecord first and a
    SnapshotFooterRecord last (Kafka's ``RecordsSnapshotReader`` checks the same)."""
    view = memoryview(data)
    records: list[bytes] = []
    controls: list[ControlRecord] = []
    header_ts: int | None = None
    footer = False
    expected = 0
    pos = 0
    try:
        for pos, header in iter_batch_headers(view, validate=True):
            if footer:
                raise MetadataLogError(f"snapshot: a batch at offset {header.base_offset} after the footer")
            if header.base_offset != expected:
                raise MetadataLogError(f"snapshot: batch at offset {header.base_offset}, expected {expected}")
            batch = decode_batch(view, pos)
            for rec in batch.records:
                if header.is_control:
                    if rec.key is None or len(rec.key) < _CONTROL_KEY.size:
                        raise MetadataLogError(f"snapshot: control record at offset {rec.offset} without a key")
                    key_version, ctype = _CONTROL_KEY.unpack_from(rec.key)
                    if header_ts is None:
                        if ctype != ControlType.SNAPSHOT_HEADER:
                            raise MetadataLogError(f"snapshot: the first record is control type {ctype}, not a SnapshotHeaderRecord")
                        header_ts = SnapshotHeaderRecord.decode(memoryview(rec.value or b""), 0).last_contained_log_timestamp
                    elif ctype == ControlType.SNAPSHOT_FOOTER:
                        footer = True
                    elif ctype == ControlType.SNAPSHOT_HEADER:
                        raise MetadataLogError(f"snapshot: a second SnapshotHeaderRecord at offset {rec.offset}")
                    else:
                        controls.append(ControlRecord(ctype, bytes(rec.value or b""), key_version))
                else:
                    if header_ts is None:
                        raise MetadataLogError("snapshot: data records before the SnapshotHeaderRecord")
                    records.append(bytes(rec.value or b""))
                if footer and rec is not batch.records[-1]:
                    raise MetadataLogError("snapshot: records after the SnapshotFooterRecord")
            expected = header.next_offset
    except InvalidRecordBatch as e:
        raise MetadataLogError(f"snapshot: damaged record batch at position {pos}: {e}") from None
    consumed = 0
    for p, h in iter_batch_headers(view, validate=False):
        consumed = p + h.size
    if consumed != len(view):
        raise MetadataLogError(f"snapshot: {len(view) - consumed} bytes after the last complete batch")
    if header_ts is None:
        raise MetadataLogError("snapshot: no SnapshotHeaderRecord (empty or not a snapshot)")
    if not footer:
        raise MetadataLogError("snapshot: no SnapshotFooterRecord (incomplete)")
    return SnapshotContent(header_ts, records, controls)


def snapshot_records(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The framed metadata records of a snapshot's content (``Snapshot.data`` of a ``MetadataLog``)."""
    return decode_snapshot(data).records
