"""__transaction_state records: partitioning by Java's String.hashCode and the key/value formats."""

from __future__ import annotations

import struct

from kbroker.coordinator.partitioning import java_string_hash, partition_for
from kbroker.coordinator.txn_log import (
    TxnMetadata,
    TxnState,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)


def test_java_string_hash():
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00  # a surrogate pair counts as two chars


def test_partition_for_matches_kafka_abs():
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    assert all(0 <= partition_for(f"id-{i}", 7) < 7 for i in range(200))


def test_key_layout():
    key = encode_key("tx")
    assert key == struct.pack(">hh", 0, 2) + b"tx"
    assert decode_key(key) == "tx"


def test_value_round_trip_v0_and_v1():
    txn = TxnMetadata("tx", producer_id=42, producer_epoch=3, timeout_ms=60000, state=TxnState.ONGOING,
                      partitions={("a", 0), ("a", 2), ("b", 1)}, start_ms=1000, last_update_ms=2000)
    raw = encode_value(txn)
    assert raw[:2] == b"\x00\x00"
    assert decode_value("tx", raw) == txn
    v2 = txn.copy(client_txn_version=2, previous_producer_id=41, next_producer_id=43, next_producer_epoch=0)
    raw = encode_value(v2)
    assert raw[:2] == b"\x00\x01"
    assert decode_value("tx", raw) == v2


def test_empty_transactions_have_no_partition_list():
    txn = TxnMetadata("tx", 1, 0, 1000, TxnState.EMPTY, set(), -1, 5)
    raw = encode_value(txn)
    # producerId i64, epoch i16, timeout i32, status i8, then a null array (-1).
    assert struct.unpack_from(">i", raw, 2 + 8 + 2 + 4 + 1)[0] == -1
    assert decode_value("tx", raw) == txn
