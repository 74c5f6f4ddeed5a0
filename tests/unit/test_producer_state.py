"""Per-partition producer state: sequences, duplicates, epochs, transactions, rebuild from batches."""

from __future__ import annotations

import pytest

from kbroker.log.txn_index import AbortedTxn
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch


def batch(pid: int, epoch: int, seq: int, n: int = 1, *, offset: int = 0, txn: bool = False) -> bytes:
    return build_batch([Record(value=b"v", timestamp=1000) for _ in range(n)], base_offset=offset, producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq, transactional=txn)


def marker(pid: int, epoch: int, commit: bool, offset: int) -> bytes:
    return build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=pid,
                               producer_epoch=epoch, timestamp=2000, coordinator_epoch=3, base_offset=offset)


class FakeLog:
    """The two things the rebuild reads from a PartitionLog: batches in order, with their bytes."""

    def __init__(self) -> None:
        self.batches: list[bytes] = []
        self.next_offset = 0

    def add(self, data: bytes) -> int:
        header = parse_header(data)
        header.base_offset = self.next_offset
        raw = bytearray(data)
        raw[0:8] = self.next_offset.to_bytes(8, "big")
        self.batches.append(bytes(raw))
        first = self.next_offset
        self.next_offset += header.last_offset_delta + 1
        return first

    def iter_batches(self, start_offset=None):
        for data in self.batches:
            yield parse_header(data), data


def append(state: PartitionProducerState, flog: FakeLog, data: bytes):
    header = parse_header(data)
    dup = state.check(header)
    if dup is not None:
        return dup.first_offset, True
    first = flog.add(data)
    state.update(header, first, first + header.last_offset_delta)
    return first, False


def error_of(state, data) -> ErrorCode:
    with pytest.raises(ProduceError) as info:
        state.check(parse_header(data))
    return info.value.code


def test_sequences_and_duplicates():
    state, flog = PartitionProducerState(), FakeLog()
    assert append(state, flog, batch(7, 0, 0, 3)) == (0, False)
    assert append(state, flog, batch(7, 0, 3, 2)) == (3, False)
    # A retry of either of the last batches is answered with its original offset, not appended.
    assert append(state, flog, batch(7, 0, 0, 3)) == (0, True)
    assert append(state, flog, batch(7, 0, 3, 2)) == (3, True)
    assert flog.next_offset == 5
    assert error_of(state, batch(7, 0, 9)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert append(state, flog, batch(7, 0, 5)) == (5, False)


def test_only_the_last_five_batches_are_remembered():
    state, flog = PartitionProducerState(), FakeLog()
    for seq in range(7):
        append(state, flog, batch(1, 0, seq))
    assert append(state, flog, batch(1, 0, 6)) == (6, True)
    assert append(state, flog, batch(1, 0, 2)) == (2, True)
    # Batch 1 fell out of the cache: it is no longer recognised, and it is out of order.
    assert error_of(state, batch(1, 0, 1)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_epochs():
    state, flog = PartitionProducerState(), FakeLog()
    append(state, flog, batch(1, 5, 0))
    assert error_of(state, batch(1, 4, 1)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert error_of(state, batch(1, 6, 3)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # a new epoch starts at 0
    assert append(state, flog, batch(1, 6, 0)) == (1, False)
    # Unknown producers (state lost to retention) are accepted at any sequence.
    assert append(state, flog, batch(2, 0, 42)) == (2, False)


def test_sequence_wraps_around():
    state, flog = PartitionProducerState(), FakeLog()
    append(state, flog, batch(1, 0, 2**31 - 1))
    assert append(state, flog, batch(1, 0, 0)) == (1, False)


def test_transactions_last_stable_offset_and_aborted_index():
    state, flog = PartitionProducerState(), FakeLog()
    append(state, flog, batch(1, 0, 0, 2, txn=True))         # 0-1, producer 1 opens at 0
    append(state, flog, batch(2, 0, 0, txn=True))            # 2, producer 2 opens at 2
    assert state.first_unstable_offset() == 0
    assert error_of(state, batch(1, 0, 2)) == ErrorCode.INVALID_TXN_STATE  # non-transactional while open
    # An ABORT yields the entry for the log's .txnindex; its last stable offset is the first
    # offset of the earliest transaction still open (producer 2's), else the marker + 1.
    first = state.apply_marker(1, 0, False, flog.add(marker(1, 0, False, 0)), 3, 2000)   # abort at 3
    assert first == AbortedTxn(1, 0, 3, 2)
    assert state.first_unstable_offset() == 2
    assert state.apply_marker(2, 0, True, flog.add(marker(2, 0, True, 0)), 3, 2000) is None  # commit at 4
    assert state.first_unstable_offset() is None
    append(state, flog, batch(1, 0, 2, txn=True))           # 5, producer 1 again
    second = state.apply_marker(1, 0, False, flog.add(marker(1, 0, False, 0)), 3, 2000)  # abort at 6
    assert second == AbortedTxn(1, 5, 6, 7)
    # An ABORT with no open transaction (e.g. a retried marker) aborts nothing.
    assert state.apply_marker(1, 0, False, flog.add(marker(1, 0, False, 0)), 3, 2000) is None
    assert not hasattr(state, "aborted")  # the index lives in the log's .txnindex files only


def test_marker_epochs():
    state, flog = PartitionProducerState(), FakeLog()
    append(state, flog, batch(1, 3, 0, txn=True))
    assert state.check_marker(1, 2, 0) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert state.check_marker(1, 4, 0) == ErrorCode.NONE
    # The coordinator aborts with a bumped epoch (fencing): the old epoch is rejected afterwards.
    state.apply_marker(1, 4, False, flog.add(marker(1, 4, False, 0)), 5, 2000)
    assert state.check_marker(1, 4, 4) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert error_of(state, batch(1, 3, 1, txn=True)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert append(state, flog, batch(1, 4, 0, txn=True))[1] is False


def test_rebuild_from_the_log_matches_the_live_state():
    live, flog = PartitionProducerState(), FakeLog()
    append(live, flog, batch(1, 0, 0, 2))
    append(live, flog, batch(2, 0, 0, txn=True))
    live.apply_marker(2, 0, False, flog.add(marker(2, 0, False, 0)), 3, 2000)
    append(live, flog, batch(3, 0, 0, txn=True))            # still open
    append(live, flog, batch(1, 0, 2, 3))
    rebuilt = PartitionProducerState.load(flog)
    assert rebuilt.first_unstable_offset() == live.first_unstable_offset() == 4
    assert {p: (e.epoch, e.last_seq, list(e.batches)) for p, e in rebuilt.producers.items()} == \
        {p: (e.epoch, e.last_seq, list(e.batches)) for p, e in live.producers.items()}
    assert append(rebuilt, flog, batch(1, 0, 2, 3)) == (5, True)


def test_producer_expiration_keeps_open_transactions():
    state, flog = PartitionProducerState(), FakeLog()
    append(state, flog, batch(1, 0, 0))              # timestamp 1000
    append(state, flog, batch(2, 0, 0, txn=True))
    assert state.expire_producers(now_ms=1000 + 500, expiration_ms=1000) == []
    assert state.expire_producers(now_ms=1000 + 1000, expiration_ms=1000) == [1]
    assert set(state.producers) == {2}
