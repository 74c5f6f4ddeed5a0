"""Run many seeds of the deterministic KRaft quorum simulation (kbroker/raft/simulation.py).

Each seed runs every scenario (3 and 5 voters with observers, a lossy network, crash-heavy runs,
a single voter, and KIP-853 voter changes: voters added and removed under faults) under message drop, delay, reordering, duplication, partitions, crashes that lose
unflushed writes, graceful shutdowns and restarts, checking Raft's invariants after every event and
liveness after the faults stop. Prints the number of runs and every failing (scenario, seed) with
what went wrong; exits 1 if any failed. A failing seed replays exactly:
``scripts/raft_sim.py --start SEED --seeds 1 --scenario NAME``.

Usage: ``.venv/bin/python scripts/raft_sim.py [--seeds 10000] [--start 0] [--scenario NAME ...]``
(the test suite runs seeds below 1,000,000 of each scenario; start above it to explore new ones).
"""

from __future__ import annotations

import argparse
import sys
import time

from kbroker.raft.simulation import SCENARIOS, run_seed_with_stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1000, help="how many seeds per scenario (default 1000)")
    ap.add_argument("--start", type=int, default=1_000_000, help="first seed (default 1000000)")
    ap.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="scenario to run (default: all)"
    )
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.start < 0:
        ap.error("--seeds must be positive and --start non-negative")
    names = args.scenario or list(SCENARIOS)
    runs = 0
    failures: list[tuple[str, int, str]] = []
    t0 = time.monotonic()
    for name in names:
        t = time.monotonic()
        before = len(failures)
        recovery: list[int] = []
        leaders = committed = stops = partitions = loads = adds = removals = 0
        for seed in range(args.start, args.start + args.seeds):
            problem, sim = run_seed_with_stats(seed, name)
            runs += 1
            if problem is not None:
                failures.append((name, seed, problem))
                print(f"FAIL scenario={name} seed={seed}: {problem}", flush=True)
            if sim.recovery_ms is not None:
                recovery.append(sim.recovery_ms)
            leaders += len(sim.leader_of_epoch)
            committed += len(sim.committed)
            stops += sim.stops
            partitions += sim.partitions
            loads += sim.snapshot_loads
            adds += sim.voter_adds
            removals += sim.voter_removals
        n = args.seeds
        recovery.sort()
        rec = (
            f"recovery after the faults (simulated ms) median {recovery[len(recovery) // 2]}, "
            f"max {recovery[-1]}"
            if recovery
            else "no recovery measured"
        )
        print(
            f"{name}: {n} seeds from {args.start}, {len(failures) - before} failed, "
            f"{time.monotonic() - t:.1f} s; per run: {leaders / n:.1f} leaders, {committed / n:.0f} "
            f"committed entries, {stops / n:.1f} crashes or shutdowns, {partitions / n:.1f} partitions, "
            f"{loads / n:.1f} snapshot loads"
            + (f", {adds / n:.2f} voters added, {removals / n:.2f} removed" if adds or removals else "")
            + f"; {rec}",
            flush=True,
        )
    print(f"runs: {runs}  failures: {len(failures)}  elapsed: {time.monotonic() - t0:.1f} s")
    for name, seed, _ in failures:
        print(f"failing seed: --scenario {name} --start {seed} --seeds 1")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
