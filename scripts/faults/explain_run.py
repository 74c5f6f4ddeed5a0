#!/usr/bin/env python3
"""Explain a finished run's lost and duplicated values from its history and its producers' log:
``scripts/faults/explain_run.py OUT/run-S [--limit N] [--events]``.

Reads ``history.jsonl`` and ``clients.log`` (a run with ``--producer-debug``; ``eos`` for the epoch
bumps, ``topic`` for the leader epochs) and prints, one line each, every lost or duplicated value:
which producer epoch bump re-sent it (librdkafka's reason) and which election of its partition it
follows (``explain.explain``). ``--events`` first prints the events read from the log (elections,
bumps, timeouts, fencing) on the history's clock.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults import clientlog  # noqa: E402
from faults.checker import check  # noqa: E402
from faults.explain import describe, explain  # noqa: E402
from faults.history import load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run's folder (history.jsonl, clients.log)")
    parser.add_argument("--limit", type=int, default=None, help="explain at most this many values")
    parser.add_argument("--events", action="store_true", help="print the events read from clients.log first")
    args = parser.parse_args(argv)
    ops = load(args.run / "history.jsonl")
    events = clientlog.load(args.run / "clients.log", ops)
    if not (args.run / "clients.log").exists():
        print(f"{args.run}: no clients.log (run with --producer-debug eos,msg,topic): the history alone")
    if args.events:
        for e in events:
            where = "" if e.partition is None else f" partition {e.partition}"
            print(f"{e.time:10.3f} {e.process or '?'} {e.kind}{where} {e.detail}")
    anomalies = check(ops)["anomalies"]
    records = explain(ops, anomalies, events, args.limit)
    for record in records:
        print(describe(record))
    print(f"{len(records)} lost or duplicated values explained; {len(events)} client events "
          f"({sum(e.kind == 'leader' for e in events)} elections, {sum(e.kind == 'bump' for e in events)} "
          "epoch bumps or PID resets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
