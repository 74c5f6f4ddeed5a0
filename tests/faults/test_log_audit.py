"""The partition-log audit (scripts/faults/log_audit.py) on hand-made run folders: a clean run, a
transaction's records joined by the producer's next one and committed with it, a transaction
committed on one partition and aborted on another, a transaction left open."""

from __future__ import annotations

import json
from pathlib import Path

from faults.log_audit import audit_run, main

from kbroker_protocol.record_batch import patch_base_offset
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch

PID = 1000


class Run:
    """A run folder: a history and, per node and partition, a segment file built batch by batch."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ops: list[dict] = []
        self.logs: dict[tuple[str, int], bytearray] = {}
        self.next_offset: dict[tuple[str, int], int] = {}

    def txn(self, name: str, values: list[int], outcome: str) -> Run:
        self.ops.append({"f": "txn", "type": "invoke", "txn": name, "values": values})
        for v in values:
            self.ops.append({"f": "send", "type": "invoke", "value": v, "txn": name})
        self.ops.append({"f": "txn", "type": "ok" if outcome != "unknown" else "info", "txn": name,
                         **({"outcome": outcome} if outcome != "unknown" else {"error": "fatal"})})
        return self

    def _append(self, node: str, partition: int, batch: bytes) -> None:
        key = (node, partition)
        offset = self.next_offset.get(key, 0)
        buf = bytearray(batch)
        patch_base_offset(buf, offset)
        self.logs.setdefault(key, bytearray()).extend(buf)
        self.next_offset[key] = offset + 1

    def data(self, node: str, partition: int, value: int, epoch: int = 0) -> Run:
        self._append(node, partition, build_batch([Record(key=None, value=str(value).encode(), timestamp=1)],
                                                  producer_id=PID, producer_epoch=epoch, base_sequence=0,
                                                  transactional=True))
        return self

    def marker(self, node: str, partition: int, commit: bool, epoch: int = 0) -> Run:
        self._append(node, partition, build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT,
                                                          producer_id=PID, producer_epoch=epoch, timestamp=1))
        return self

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in self.ops))
        for (node, partition), data in self.logs.items():
            d = self.root / "nodes" / node / "data" / f"queue-{partition}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{0:020d}.log").write_bytes(bytes(data))
        return self.root


def counts(problems: dict) -> dict:
    return {name: len(items) for name, items in problems.items()}


def test_a_clean_run(tmp_path):
    run = Run(tmp_path).txn("p0-t0", [1, 2], "abort").txn("p0-t1", [3, 4], "commit")
    for node in ("n1", "n2"):
        run.data(node, 0, 1).data(node, 1, 2).marker(node, 0, False).marker(node, 1, False)
        run.data(node, 0, 3).data(node, 1, 4).marker(node, 0, True).marker(node, 1, True)
    assert counts(audit_run(run.write())) == {"marker_mismatch": 0, "joined": 0, "split": 0, "open": 0}
    assert main([str(tmp_path)]) == 0


def test_an_aborted_transactions_records_joined_by_the_next_one(tmp_path):
    # p0-t0's ABORT never reached partition 1: p0-t1 (same producer, same epoch) joins its open
    # records there and commits them.
    run = Run(tmp_path).txn("p0-t0", [1, 2], "abort").txn("p0-t1", [3, 4], "commit")
    run.data("n1", 0, 1).data("n1", 1, 2).marker("n1", 0, False)
    run.data("n1", 0, 3).data("n1", 1, 4).marker("n1", 0, True).marker("n1", 1, True)
    problems = audit_run(run.write())
    assert counts(problems) == {"marker_mismatch": 1, "joined": 1, "split": 1, "open": 0}
    assert problems["marker_mismatch"][0] | {"value": 2, "transaction": "p0-t0", "outcome": "abort",
                                             "marker": "commit", "where": "n1/queue-1"} == problems["marker_mismatch"][0]
    assert problems["joined"][0]["transactions"] == ["p0-t0", "p0-t1"]
    assert problems["split"][0]["transaction"] == "p0-t0"
    assert main([str(tmp_path)]) == 1


def test_a_transaction_of_unknown_outcome_committed_on_one_partition_and_aborted_on_another(tmp_path):
    run = Run(tmp_path).txn("p0-t0", [1, 2], "unknown")
    run.data("n2", 0, 1).data("n2", 1, 2).marker("n2", 0, True).marker("n2", 1, False)
    problems = audit_run(run.write())
    assert counts(problems) == {"marker_mismatch": 0, "joined": 0, "split": 1, "open": 0}
    assert problems["split"][0] == {"node": "n2", "transaction": "p0-t0", "outcome": "unknown"}


def test_a_transaction_left_open_is_listed_but_not_a_problem(tmp_path):
    run = Run(tmp_path).txn("p0-t0", [1], "commit").data("n3", 2, 1)
    problems = audit_run(run.write())
    assert problems["open"] == [{"where": "n3/queue-2", "producer_id": PID, "values": [[0, 1, "p0-t0"]]}]
    assert main([str(tmp_path)]) == 0
