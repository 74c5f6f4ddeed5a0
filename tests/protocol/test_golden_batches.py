"""Record batches built by Apache Kafka's kafka-clients 4.4.0 (scripts/record_golden.py --java).

We must read every codec Kafka writes (xerial snappy, Kafka's lz4 frames, zstd-jni streams), and
where the bytes are deterministic (uncompressed batches, transaction markers, the LogAppendTime
patch) we must write exactly what Kafka writes. The recorder also had Kafka's library validate
and read our batches for every codec; batches.json lists what it verified.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbroker_protocol.compression import Codec, is_xerial_snappy
from kbroker_protocol.record_batch import CONTROL_MASK, HEADER_SIZE, TRANSACTIONAL_MASK, validate_batch
from kbroker_protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    decode_batch,
    parse_control_record,
    set_log_append_time,
)

JAVA = Path(__file__).parent / "golden" / "java"
DOC = json.loads((JAVA / "batches.json").read_text())
CODECS = {
    "none": Codec.NONE,
    "gzip": Codec.GZIP,
    "snappy": Codec.SNAPPY,
    "lz4": Codec.LZ4,
    "zstd": Codec.ZSTD,
}


def _records() -> list[Record]:
    return [
        Record(
            key=None if r["key"] is None else r["key"].encode(),
            value=None if r["value"] is None else r["value"].encode(),
            headers=tuple((k, None if v is None else v.encode()) for k, v in r["headers"]),
            timestamp=r["timestamp"],
        )
        for r in DOC["records"]
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_batches(codec: str) -> None:
    blob = (JAVA / f"batch_{codec}.bin").read_bytes()
    batch = decode_batch(blob)
    h = batch.header
    params = DOC["batch"]
    assert h.size == len(blob)
    assert h.compression == CODECS[codec]
    assert h.base_offset == params["base_offset"]
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (
        params["producer_id"],
        params["producer_epoch"],
        params["base_sequence"],
    )
    assert h.partition_leader_epoch == params["partition_leader_epoch"]
    assert h.base_timestamp == DOC["records"][0]["timestamp"]
    assert h.max_timestamp == max(r["timestamp"] for r in DOC["records"])
    assert h.last_offset_delta == len(DOC["records"]) - 1
    assert not h.is_transactional and not h.is_control and not h.is_log_append_time
    expected = [
        Record(r.key, r.value, r.headers, r.timestamp, params["base_offset"] + i)
        for i, r in enumerate(_records())
    ]
    assert batch.records == expected


def test_kafka_writes_xerial_snappy_independent_lz4_blocks_and_unsized_zstd() -> None:
    snappy = (JAVA / "batch_snappy.bin").read_bytes()
    assert is_xerial_snappy(snappy[HEADER_SIZE:])
    lz4 = (JAVA / "batch_lz4.bin").read_bytes()[HEADER_SIZE:]
    assert lz4[:4] == b"\x04\x22\x4d\x18" and lz4[4] & 0x20
    zstd = (JAVA / "batch_zstd.bin").read_bytes()[HEADER_SIZE:]
    assert zstd[:4] == b"\x28\xb5\x2f\xfd"
    assert zstd[4] >> 6 == 0 and not zstd[4] & 0x20  # no content size: must be decoded as a stream


def test_uncompressed_batch_is_byte_identical_to_kafka() -> None:
    ours = build_batch(_records(), **DOC["batch"])
    assert ours == (JAVA / "batch_none.bin").read_bytes()


@pytest.mark.parametrize("codec", CODECS)
def test_our_compressed_batches_decode_like_kafkas(codec: str) -> None:
    ours = decode_batch(build_batch(_records(), compression=CODECS[codec], **DOC["batch"]))
    theirs = decode_batch((JAVA / f"batch_{codec}.bin").read_bytes())
    assert ours.records == theirs.records
    assert ours.header.attributes == theirs.header.attributes
    assert (ours.header.base_timestamp, ours.header.max_timestamp) == (
        theirs.header.base_timestamp,
        theirs.header.max_timestamp,
    )


def test_kafka_verified_our_batches_for_every_codec() -> None:
    verified = DOC["verified_by_kafka_clients"]
    assert sorted(verified.values()) == sorted([*CODECS, "snappy"])
    assert verified["ours_snappy_raw.bin"] == "snappy"


def test_log_append_time_patch_is_byte_identical_to_kafkas_set_max_timestamp() -> None:
    buf = bytearray((JAVA / "batch_none.bin").read_bytes())
    set_log_append_time(buf, DOC["log_append_time"])
    assert bytes(buf) == (JAVA / "batch_none_log_append_time.bin").read_bytes()
    assert validate_batch(buf).is_log_append_time


@pytest.mark.parametrize(("name", "ctype"), [("commit", ControlType.COMMIT), ("abort", ControlType.ABORT)])
def test_transaction_markers_are_byte_identical_to_kafkas(name: str, ctype: ControlType) -> None:
    blob = (JAVA / f"control_{name}.bin").read_bytes()
    ctl = DOC["control"]
    params = DOC["batch"]
    ours = build_control_batch(
        ctype,
        producer_id=params["producer_id"],
        producer_epoch=params["producer_epoch"],
        timestamp=ctl["timestamp"],
        coordinator_epoch=ctl["coordinator_epoch"],
        base_offset=ctl["base_offset"][name],
        partition_leader_epoch=params["partition_leader_epoch"],
    )
    assert ours == blob
    batch = decode_batch(blob)
    assert batch.header.attributes == TRANSACTIONAL_MASK | CONTROL_MASK
    (record,) = batch.records
    marker = parse_control_record(record)
    assert marker.control_type is ctype
    assert marker.coordinator_epoch == ctl["coordinator_epoch"]
