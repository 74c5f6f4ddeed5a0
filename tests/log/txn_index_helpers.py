"""Writer and reference model shared by the transaction index log tests (moved from test_txn_index_log)."""

from __future__ import annotations

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.batch_records import iter_records
from kbroker.log.txn_index import AbortedTxn
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    parse_control_record,
)

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=100)


class Writer:
    """Appends data and markers as the broker does: the producer state says which ABORT closes
    which transaction, and the aborted transaction goes into the log's index."""

    def __init__(self, log: PartitionLog) -> None:
        self.log = log
        self.state = PartitionProducerState()
        self.seq: dict[int, int] = {}

    def data(self, pid: int = -1, txn: bool = False, key: bytes = b"k", value: bytes = b"v") -> int:
        seq = self.seq.get(pid, 0)
        batch = build_batch([Record(key=key, value=value, timestamp=1000)], producer_id=pid,
                            producer_epoch=0 if pid >= 0 else -1, base_sequence=seq if pid >= 0 else -1,
                            transactional=txn)
        info = self.log.append(batch)
        if pid >= 0:
            self.seq[pid] = seq + 1
            self.state.update(parse_header(batch), info.first_offset, info.last_offset)
        return info.first_offset

    def end(self, pid: int, commit: bool) -> int:
        batch = build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=pid,
                                    producer_epoch=0, timestamp=2000)
        offset = self.log.append(batch).first_offset
        aborted = self.state.apply_marker(pid, 0, commit, offset, 0, 2000)
        if aborted is not None:
            self.log.record_aborted_txn(aborted.producer_id, aborted.first_offset, aborted.last_offset,
                                        aborted.last_stable_offset)
        return offset

    def fill(self, n: int) -> None:
        for _ in range(n):
            self.data()


def reference(log: PartitionLog) -> list[AbortedTxn]:
    """The aborted transactions of the log, found by reading every batch."""
    open_txns: dict[int, int] = {}
    out = []
    for header, data in log.iter_batches():
        pid = header.producer_id
        if pid < 0:
            continue
        if header.is_control:
            kind = parse_control_record(next(iter(iter_records(data)))).type
            first = open_txns.pop(pid, None)
            if kind == ControlType.ABORT and first is not None:
                out.append(AbortedTxn(pid, first, header.base_offset,
                                      min(open_txns.values(), default=header.base_offset + 1)))
        elif header.is_transactional:
            open_txns.setdefault(pid, header.base_offset)
    return out


def open_at(log: PartitionLog, offset: int) -> dict[int, int]:
    """The transactions open at ``offset``, from reading every batch before it."""
    open_txns: dict[int, int] = {}
    for header, _ in log.iter_batches():
        if header.base_offset >= offset:
            break
        if header.producer_id < 0:
            continue
        if header.is_control:
            open_txns.pop(header.producer_id, None)  # (only ABORT/COMMIT markers here)
        elif header.is_transactional:
            open_txns.setdefault(header.producer_id, header.base_offset)
    return open_txns


def on_disk(log: PartitionLog) -> dict[int, bytes]:
    """base offset -> bytes of the segment's .txnindex, for the segments with entries (a file
    left empty by a truncation is an empty index, as in Kafka)."""
    out = {}
    for seg in log.segments:
        path = log.directory / f"{seg.base_offset:020d}.txnindex"
        if path.exists() and path.stat().st_size:
            out[seg.base_offset] = path.read_bytes()
    return out


def expected_files(log: PartitionLog) -> dict[int, bytes]:
    """What on_disk must be: each reference entry in the segment holding its marker."""
    out: dict[int, bytes] = {}
    for txn in reference(log):
        seg = next(s for s in reversed(log.segments) if s.base_offset <= txn.last_offset)
        out[seg.base_offset] = out.get(seg.base_offset, b"") + txn.encode()
    return out
