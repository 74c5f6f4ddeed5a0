"""Review findings on ``.txnstate`` records (2026-11-25)."""

from __future__ import annotations

from kbroker.log import PartitionLog
from kbroker.log.segment import LogSegment
from tests.log.txn_index_helpers import CONFIG, Writer, reference


def test_a_transaction_begun_before_the_log_start_keeps_its_abort_entry_after_a_crash(tmp_path):
    """Producer 1's transaction begins in the first segment and has another batch in the second;
    retention deletes the first segment; the ABORT lands in the (recovered) active segment. The
    rebuilt index must still list the transaction, or a read_committed fetch from the log start
    returns its aborted batch in the second segment."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    w = Writer(log)
    w.data(1, txn=True)
    w.fill(3)
    log.roll()
    second = w.data(1, txn=True)  # the transaction's batch that stays in the log
    w.fill(3)
    log.roll()
    w.fill(2)
    log.roll()
    log.flush()
    log.high_watermark = log.log_end_offset
    log.advance_log_start(log.segments[1].base_offset)
    log.checkpoint()
    abort = w.end(1, commit=False)
    w.fill(1)
    start = log.log_start_offset
    assert start <= second
    before = log.collect_aborted_transactions(start, log.log_end_offset)
    assert [(t.producer_id, t.last_offset) for t in before] == [(1, abort)]
    log.close(clean=False)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    after = reopened.collect_aborted_transactions(reopened.log_start_offset, reopened.log_end_offset)
    assert [(t.producer_id, t.last_offset) for t in after] == [(1, abort)]
    assert after[0].first_offset <= second
    reopened.close()


class _Killed(BaseException):
    """Stands for a kill -9: nothing after it runs."""


def test_a_kill_during_truncation_leaves_no_record_for_another_history(tmp_path, monkeypatch):
    """truncate_to cuts the new active segment and deletes the later ones: killed in between, the
    later segment must not survive beside the cut one with a .txnstate computed from the data
    that was cut (here: producer 5's COMMIT, so its transaction is open again)."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    w = Writer(log)
    w.fill(1)
    w.data(5, txn=True)
    w.fill(1)
    commit = w.end(5, commit=True)
    log.roll()
    log.checkpoint()  # the recovery point (the roll) is on disk: only the active segment is recovered
    w.data(5, txn=True)
    w.fill(1)
    w.end(5, commit=False)
    log.flush()

    def killed(self):
        raise _Killed

    monkeypatch.setattr(LogSegment, "delete_files", killed)
    try:
        log.truncate_to(commit)
    except _Killed:
        pass
    monkeypatch.undo()
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == reference(reopened)
    reopened.close()
