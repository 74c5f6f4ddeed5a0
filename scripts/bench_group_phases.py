"""Where a consumer group's rebalance time goes, from each broker's own log (issue 23, groups curve).

Runs the groups point of ``bench_scale.py groups`` (bench_loads ``group``: N librdkafka members of a
classic group on a topic of max(16, 2N) partitions, then one member more) on a fresh kbroker and a
fresh Apache Kafka 4.4, alternating, and splits the rebalance after the extra member by the
coordinator's log lines:

- ``stable -> join``: from the group's previous stable generation (kbroker: ``CompletingRebalance ->
  Stable``; Kafka: ``Assignment received from leader``) to the extra member's JoinGroup starting the
  rebalance (kbroker ``preparing rebalance: member bench-member-N-``, Kafka ``Preparing to rebalance
  ... Adding new member bench-member-N-``): how long the benchmark's client took to see the group
  stable and add the member;
- ``join -> all rejoined``: the old members learn of the rebalance from their next heartbeat
  (``heartbeat.interval.ms`` 3 s after their last one) and rejoin (kbroker ``PreparingRebalance ->
  CompletingRebalance``, Kafka ``Stabilized group``);
- ``rejoined -> stable``: the leader's assignment and SyncGroup (kbroker ``CompletingRebalance ->
  Stable``, Kafka ``Assignment received``).

kbroker runs with the group coordinator's logger at DEBUG (its state changes); Kafka logs them at INFO.

    .venv/bin/python scripts/bench_group_phases.py --members 100 --reps 2
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import bench_scale_nodes as sn  # noqa: E402

GROUP_LOGGER = "kbroker.coordinator.group_classic"
STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


class PhaseNode(sn.KBrokerNode):
    """kbroker from this tree at INFO, its classic group coordinator at DEBUG."""

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        cmd, env, cwd = super().command()
        i = cmd.index("-m")
        cmd[i:i + 2] = ["-c", f"import logging, sys; logging.getLogger({GROUP_LOGGER!r}).setLevel(logging.DEBUG); "
                              "from kbroker.__main__ import main; sys.argv[0] = 'kbroker'; sys.exit(main())"]
        cmd[cmd.index("WARNING")] = "INFO"
        return cmd, env, cwd


def _t(line: str) -> float | None:
    m = STAMP.match(line)
    return datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def phases(kind: str, lines: list[str], members: int) -> dict[str, float]:
    """The three phases of the rebalance caused by member `members` (0-based: the extra one)."""
    extra = f"bench-member-{members}-"
    if kind == "kbroker":
        join = [i for i, ln in enumerate(lines) if "preparing rebalance: member " + extra in ln]
        stable = [i for i, ln in enumerate(lines) if "CompletingRebalance -> Stable" in ln]
        rejoined = [i for i, ln in enumerate(lines) if "PreparingRebalance -> CompletingRebalance" in ln]
    else:
        join = [i for i, ln in enumerate(lines) if "Preparing to rebalance" in ln and "Adding new member " + extra in ln]
        stable = [i for i, ln in enumerate(lines) if "Assignment received from leader" in ln]
        rejoined = [i for i, ln in enumerate(lines) if "Stabilized group" in ln]
    j = join[0]
    before = max(i for i in stable if i < j)
    after_rejoin = min(i for i in rejoined if i > j)
    after_stable = min(i for i in stable if i > after_rejoin)
    t = {k: _t(lines[i]) for k, i in (("before", before), ("join", j), ("rejoined", after_rejoin),
                                       ("stable", after_stable))}
    if any(v is None for v in t.values()):
        raise RuntimeError(f"{kind}: a log line without a time stamp")
    return {"stable_to_join_s": t["join"] - t["before"], "join_to_rejoined_s": t["rejoined"] - t["join"],
            "rejoined_to_stable_s": t["stable"] - t["rejoined"], "join_to_stable_s": t["stable"] - t["join"]}


def run(kind: str, base: Path, members: int, records: int) -> dict[str, float]:
    settings = dict(bb.BENCH_SETTINGS)
    node: sn.Node = (PhaseNode(base, settings, bb.ROOT) if kind == "kbroker"
                     else sn.make("kafka", base, settings, bb.ROOT))
    parts = max(16, 2 * members)
    try:
        node.start()
        sn.create_topic(node.bootstrap, "load", parts)
        node.wait_topic("load", parts)
        r = bl.worker(["group", "--bootstrap", node.bootstrap, "--topic", "load", "--records", str(records),
                       "--conns", str(members), "--timeout", "300"], timeout=900)
        node.stop()
        logs = sorted(node.workdir.glob("stdout-*.log")) + sorted(node.workdir.glob("server.log"))
        lines = [ln for p in logs for ln in p.read_text(errors="replace").splitlines()]
        return {"rebalance_s (client)": r["rebalance_s"], **phases(kind, lines, members)}
    finally:
        node.remove()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--records", type=int, default=10_000, help="records of the group's fetch phase (not timed)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--brokers", default="kbroker,kafka")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-group-phases-"))
    brokers = a.brokers.split(",")
    for rep in range(a.reps):
        for kind in brokers if rep % 2 == 0 else brokers[::-1]:
            la = bb_load()
            r = run(kind, base, a.members, a.records)
            print(f"{kind} [{rep + 1}/{a.reps}] load {la:.1f}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
    return 0


def bb_load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


if __name__ == "__main__":
    sys.exit(main())
