#!/usr/bin/env python3
"""Re-check a recorded history: ``scripts/faults/check_history.py history.jsonl [--json]``.

Prints the report (anomaly counts, operations, figures); exits 1 if any anomaly was found, 2 if the
file is not a history.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.history import load  # noqa: E402
from faults.report import build, text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("history", type=Path)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        ops = load(args.history)
    except (OSError, ValueError) as exc:
        print(f"check_history: {exc}", file=sys.stderr)
        return 2
    report = build(ops, {"history": str(args.history)})
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n" if args.json else text(report))
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
