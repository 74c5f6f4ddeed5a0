#!/usr/bin/env python3
"""Check a transactional run's partition logs, on every node, against its history.

The checker (checker.py) sees what the readers returned; this looks at what the brokers wrote:
for each node's copy of each workload partition it replays the batches, groups each producer's
transactional values by the COMMIT/ABORT marker that closed them, and reports

- ``marker_mismatch``: a value closed by a COMMIT although the client's abort of its transaction
  returned, or by an ABORT although its commit returned;
- ``joined``: one marker closed values of two client transactions (a transaction's records still
  open on a partition, joined by the producer's next transaction: with Transactions V1 the epoch is
  the same, so only the coordinator's "every marker written before the transaction completes"
  keeps them apart);
- ``split``: the values of one transaction closed by a COMMIT on one partition and an ABORT on
  another (a torn transaction, whatever the readers saw);
- ``open``: values still in an open transaction at the end of a log copy (on the leader a hanging
  transaction, which the last stable offset cannot pass; on a follower possibly only its lag when
  the run stopped, so it is listed but does not count as a problem).

Usage: ``scripts/faults/log_audit.py RUN_DIR...`` (a run's folder: ``history.jsonl`` and
``nodes/n*/data``); exit status 1 if a marker_mismatch, joined or split was found. Logs are read from their segment files
(``*.log``), so a node's folder is enough, whether its broker still runs or not.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker_protocol.record_batch import BatchHeader, parse_header
from kbroker_protocol.records import ControlType, Record, iter_records, parse_control_record

PROBLEMS = ("marker_mismatch", "joined", "split", "open")


def read_batches(partition_dir: Path) -> Iterator[tuple[BatchHeader, list[Record]]]:
    """The batches of a partition's segment files, in offset order (a torn batch at a segment's
    end, as a kill -9 can leave, ends that segment)."""
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while len(data) - pos >= 61:
            header = parse_header(data, pos)
            if header.size <= 0 or pos + header.size > len(data):
                break
            yield header, list(iter_records(data[pos:pos + header.size]))
            pos += header.size


def transactions(ops: Iterable[dict[str, Any]]) -> tuple[dict[Any, Any], dict[Any, str]]:
    """(value -> its transaction, transaction -> "commit"/"abort"/"unknown") from a history."""
    txn_of: dict[Any, Any] = {}
    outcome: dict[Any, str] = {}
    for op in ops:
        if op["f"] == "send" and op["type"] == "invoke" and "txn" in op:
            txn_of[op["value"]] = op["txn"]
        elif op["f"] == "txn" and op["type"] in ("ok", "info"):
            outcome[op["txn"]] = op.get("outcome") or "unknown"
    return txn_of, outcome


def _value(record: Record) -> Any:
    raw = (record.value or b"").decode(errors="replace")
    return int(raw) if raw.lstrip("-").isdigit() else raw


def audit_partition(where: str, batches: Iterable[tuple[BatchHeader, list[Record]]], txn_of: dict[Any, Any],
                    outcome: dict[Any, str], problems: dict[str, list[dict[str, Any]]],
                    closed_by: dict[Any, set[str]]) -> None:
    """Replay one partition copy; add what is wrong to ``problems`` and each transaction's marker
    kinds to ``closed_by``."""
    open_values: dict[int, list[tuple[int, Any, int]]] = defaultdict(list)  # producer -> (offset, value, epoch)
    for header, records in batches:
        if header.producer_id < 0 or not header.is_transactional:
            continue
        if not header.is_control:
            open_values[header.producer_id] += [(header.base_offset if r.offset is None else r.offset, _value(r),
                                                 header.producer_epoch) for r in records]
            continue
        ctrl = parse_control_record(records[0]) if records else None
        if ctrl is None or ctrl.type not in (ControlType.ABORT, ControlType.COMMIT):
            continue
        result = "commit" if ctrl.type == ControlType.COMMIT else "abort"
        group = open_values.pop(header.producer_id, [])
        marker = {"where": where, "marker_offset": header.base_offset, "marker": result,
                  "marker_epoch": header.producer_epoch, "coordinator_epoch": ctrl.coordinator_epoch}
        txns = sorted({str(txn_of.get(v)) for _o, v, _e in group})
        if len(txns) > 1:
            problems["joined"].append({**marker, "transactions": txns, "values": [[o, v] for o, v, _e in group]})
        for offset, value, epoch in group:
            txn = txn_of.get(value)
            closed_by[txn].add(result)
            if outcome.get(txn) in ("commit", "abort") and outcome[txn] != result:
                problems["marker_mismatch"].append({**marker, "value": value, "offset": offset, "epoch": epoch,
                                                    "transaction": txn, "outcome": outcome[txn]})
    for pid, group in sorted(open_values.items()):
        problems["open"].append({"where": where, "producer_id": pid,
                                 "values": [[o, v, str(txn_of.get(v))] for o, v, _e in group]})


def audit_run(run: Path, topic: str = "queue") -> dict[str, list[dict[str, Any]]]:
    """Every problem of a run's folder (see the module docstring), by kind."""
    with open(run / "history.jsonl") as f:
        txn_of, outcome = transactions(json.loads(line) for line in f if line.strip())
    problems: dict[str, list[dict[str, Any]]] = {name: [] for name in PROBLEMS}
    for node in sorted((run / "nodes").glob("n*")):
        closed_by: dict[Any, set[str]] = defaultdict(set)
        for partition_dir in sorted((node / "data").glob(f"{topic}-*")):
            audit_partition(f"{node.name}/{partition_dir.name}", read_batches(partition_dir), txn_of, outcome,
                            problems, closed_by)
        for txn, results in sorted(closed_by.items(), key=lambda kv: str(kv[0])):
            if len(results) > 1:
                problems["split"].append({"node": node.name, "transaction": txn, "outcome": outcome.get(txn)})
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: log_audit.py RUN_DIR...", file=sys.stderr)
        return 2
    found = False
    for arg in argv:
        problems = audit_run(Path(arg))
        counts = {name: len(items) for name, items in problems.items()}
        print(f"{arg}: {counts}")
        for name, items in problems.items():
            for item in items[:20]:
                print(f"  {name}: {json.dumps(item, default=str)}")
        found = found or any(counts[name] for name in PROBLEMS if name != "open")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
