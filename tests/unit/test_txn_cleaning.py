"""The transaction facts log compaction needs (kbroker/log/txn_cleaning.py)."""

from __future__ import annotations

from kbroker.log.txn_cleaning import ABORT, COMMIT, DROP, KEEP, scan
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch


def data(offset: int, pid: int = -1, txn: bool = False, n: int = 1, epoch: int = 0):
    return parse_header(build_batch([Record(key=b"k", value=b"v", timestamp=0)] * n, base_offset=offset,
                                    producer_id=pid, producer_epoch=epoch if pid >= 0 else -1,
                                    base_sequence=0 if pid >= 0 else -1, transactional=txn)), None


def marker(offset: int, pid: int, commit: bool, epoch: int = 0):
    header = parse_header(build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=pid,
                                              producer_epoch=epoch, timestamp=0, base_offset=offset))
    return header, COMMIT if commit else ABORT


def test_aborted_committed_and_open_transactions():
    result = scan([
        data(0),                            # plain record
        data(1, pid=7, txn=True),           # txn of 7: aborted
        data(2, pid=8, txn=True),           # txn of 8: committed
        data(3, pid=7, txn=True),
        marker(4, pid=7, commit=False),
        marker(5, pid=8, commit=True),
        data(6, pid=9),                     # idempotent, not transactional
        data(7, pid=8, txn=True),           # txn of 8: still open
        data(8, pid=9),
    ])
    assert result.aborted_batches == {1, 3}
    assert result.discard(3) and not result.discard(2) and not result.discard(0)
    assert result.marker_txn == {4: (7, 1), 5: (8, 2)}
    assert result.batch_marker == {1: 4, 3: 4, 2: 5}
    assert result.first_unstable_offset == 7
    assert result.cleanable_end(9) == 7 and result.cleanable_end(5) == 5
    assert result.last_batch_of_producer == {7: 3, 8: 7, 9: 8}
    assert result.keep_empty(8, 9) and not result.keep_empty(6, 9) and not result.keep_empty(0, -1)


def test_markers_get_a_delete_horizon_once_their_data_is_gone_and_go_after_it():
    result = scan([
        data(0, pid=1, txn=True), marker(1, 1, commit=True),   # data still in the log
        data(2, pid=2, txn=True), marker(3, 2, commit=False),  # data in the log, discarded by this pass
        marker(4, 1, commit=False),                            # data cleaned away by an earlier pass
        data(5, pid=1), data(6, pid=2),
    ])
    # A marker with data in the scanned log stays, whatever its horizon or age.
    assert result.marker_action(1, None, now_ms=10**9, delete_retention_ms=1000) == KEEP
    assert result.marker_action(1, 5, now_ms=10**9, delete_retention_ms=1000) == KEEP
    # Data discarded by the asking pass still counts: its marker outlives it by one pass at least.
    assert result.marker_action(3, None, now_ms=10**9, delete_retention_ms=1000) == KEEP
    # No data left: first a horizon (now + delete.retention.ms), then gone once it has passed.
    assert result.marker_action(4, None, now_ms=5000, delete_retention_ms=1000) == 6000
    assert result.marker_action(4, 6000, now_ms=5999, delete_retention_ms=1000) == KEEP
    assert result.marker_action(4, 6000, now_ms=6000, delete_retention_ms=1000) == DROP
    assert result.marker_action(5, None, now_ms=10**9, delete_retention_ms=0) == KEEP  # not a marker
    assert result.empty_marker(4) and not result.empty_marker(1) and not result.empty_marker(3)


def test_a_producers_last_marker_with_a_newer_epoch_is_kept():
    result = scan([
        data(0, pid=1, txn=True), marker(1, 1, commit=True),
        marker(2, 1, commit=False, epoch=1),  # coordinator abort after an epoch bump: the epoch lives here
        data(3, pid=2, txn=True), marker(4, 2, commit=True),
        marker(5, 2, commit=False),           # same epoch as its producer's last data: may go
        marker(6, 3, commit=True),            # a producer with no data batch left: keeps its epoch
    ])
    assert result.epoch_markers == {2, 6}
    assert result.marker_action(2, None, now_ms=5000, delete_retention_ms=0) == KEEP
    assert result.marker_action(6, 0, now_ms=5000, delete_retention_ms=0) == KEEP
    assert result.marker_action(5, None, now_ms=5000, delete_retention_ms=0) == 5000
    assert result.marker_action(5, 5000, now_ms=5000, delete_retention_ms=0) == DROP


def test_a_marker_without_data_in_range_and_no_transactions():
    assert scan([data(0), data(1, pid=3)]).first_unstable_offset is None
    result = scan([marker(0, 5, commit=False)])  # its data was cleaned away earlier
    assert result.marker_txn == {0: (5, 0)} and result.aborted_batches == set()
