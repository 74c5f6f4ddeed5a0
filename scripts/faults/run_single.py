#!/usr/bin/env python3
"""Single-node fault run: ``scripts/faults/run_single.py --cycles N --seed S --flush {every,default}``.

Writes history.jsonl, report.json, report.txt (and report.png with matplotlib) under --out; exits 1
if the checker found any anomaly (or a cycle made no progress, or the final drain was incomplete).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.report import text  # noqa: E402
from faults.runner import RunConfig, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10, help="kill -9 / restart cycles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flush", choices=["every", "default"], default="default",
                        help="every: log.flush.interval.messages=1; default: the broker's default flush policy")
    parser.add_argument("--out", type=Path, help="output directory (default: a new temporary directory)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0, help="sends per second per producer")
    parser.add_argument("--heal-min", type=float, default=0.3)
    parser.add_argument("--heal-max", type=float, default=1.5)
    parser.add_argument("--pause-probability", type=float, default=0.2)
    parser.add_argument("--pause-max", type=float, default=1.0, help="longest SIGSTOP pause, seconds")
    parser.add_argument("--after-resume", type=float, default=0.0, metavar="SECONDS",
                        help="let the broker run this long after a pause before the kill (it serves the requests "
                             "that queued up, some of them timed out by the clients)")
    parser.add_argument("--message-timeout-ms", type=int, default=60000,
                        help="the producers' message.timeout.ms (a pause longer than it times messages out)")
    parser.add_argument("--producer-debug", default="", metavar="CONTEXTS",
                        help="librdkafka debug contexts for the producers (e.g. eos,msg), logged to clients.log")
    parser.add_argument("--truncate-after-kill", type=int, default=0, metavar="BYTES",
                        help="simulate losing the page cache: cut BYTES off each partition's newest segment after "
                             "every kill (the run must then report lost writes)")
    args = parser.parse_args(argv)
    if (args.cycles < 0 or args.partitions < 1 or args.producers < 1 or not 0 <= args.heal_min <= args.heal_max
            or args.pause_max < 0.05 or args.after_resume < 0 or args.message_timeout_ms < 1):
        parser.error("--cycles >= 0, --partitions >= 1, --producers >= 1, 0 <= --heal-min <= --heal-max, "
                     "--pause-max >= 0.05, --after-resume >= 0, --message-timeout-ms >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix=f"kbroker-faults-{args.flush}-{args.seed}-"))
    report = run(RunConfig(out=out, cycles=args.cycles, seed=args.seed, flush=args.flush,
                           partitions=args.partitions, producers=args.producers, rate=args.rate,
                           heal_min=args.heal_min, heal_max=args.heal_max,
                           pause_probability=args.pause_probability, pause_max=args.pause_max,
                           after_resume=args.after_resume,
                           producer_debug=args.producer_debug, message_timeout_ms=args.message_timeout_ms,
                           truncate_after_kill=args.truncate_after_kill))
    sys.stdout.write(text(report))
    sys.stdout.write(f"output: {out}\n")
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
