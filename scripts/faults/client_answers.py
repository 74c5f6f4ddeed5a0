#!/usr/bin/env python3
"""What the producers were answered, set against the nodes' own logs and the nemesis:
``scripts/faults/client_answers.py not-leader|disk-full OUT/run-S ...``.

``not-leader``: each NOT_LEADER_OR_FOLLOWER episode (a producer, a partition; a gap of 1 s or more
starts a new one, as ``clientlog`` counts them), with the answering node's own leadership at that
time (kbroker's ``queue-P: leader at epoch E`` / ``follower of X at epoch E``, Kafka's ``Leader
queue-P ... starts at leader epoch E`` / ``Follower queue-P starts at leader epoch E ... Current
leader is X``) and its cause:

- ``controlled shutdown``: the node is the target of a ``restart`` fault begun at most 2 s before
  (it gave up leadership and answered the requests it still had);
- ``held connection``: the producer's connection to that node waited 1 s or more for its
  ApiVersions answer, answered at most 1 s before (the node listened while it was not serving:
  the requests queued for it meanwhile were sent, on a stale leader, once it answered);
- ``metadata ahead``: the node became the partition's leader later (Metadata named it first);
- ``stale metadata``: anything else (the node had been leader, the producer had not yet learned).

``disk-full``: per ``disk-full`` fault, when the filled node halted (``Shutdown broker because all
log dirs``), the produce requests to it that failed within 30 s of the fill, KAFKA_STORAGE_ERROR
(``Disk error when trying to access log file on disk``) against a dropped connection (``Broker
transport failure``) and NOT_LEADER (lines, and producer/partition pairs), and the write stall:
the longest gap between acknowledgements of one partition that spans the halt.

Needs a run with ``--producer-debug eos,msg,protocol,topic`` (``protocol`` for ApiVersions).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

LINE = re.compile(r"^(?P<wall>\S+ \S+) t=(?P<t>-?[\d.]+) (?P<facility>\S+) \[(?P<name>[^\]]+)\] "
                  r"\[thrd:(?P<thread>[^\]]*)\]: (?P<text>.*)$")
UNAVAILABLE = re.compile(r"^\S+ \[(?P<partition>\d+)\]: broker unavailable: produce: (?P<error>.*)$")
API_VERSIONS = re.compile(r"Received ApiVersionResponse .*rtt (?P<rtt>[\d.]+)ms")
KBROKER_ROLE = re.compile(r"^(?P<wall>\S+ \S+) INFO kbroker\.replication: \S+?-(?P<partition>\d+): "
                          r"(?:leader at epoch (?P<lepoch>\d+)|follower of (?P<leader>\d+) at epoch (?P<fepoch>\d+))")
KAFKA_ROLE = re.compile(r"^\[(?P<wall>\S+ \S+)\] INFO \[Broker id=(?P<node>\d+)\] (?P<role>Leader|Follower) "
                        r"\S+?-(?P<partition>\d+) .*?starts at leader epoch (?P<epoch>\d+)")
HALT = re.compile(r"^\[?(?P<wall>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]? .*Shutdown broker because all log dirs")
WALL_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
NOT_LEADER = "Not leader"


def _wall(text: str) -> float:
    return datetime.strptime(text, WALL_FORMAT).timestamp()


class Run:
    """A run folder read once: the producers' failed requests and ApiVersions answers, the nodes'
    leadership changes and halts (on the history's clock), the nemesis's operations, the acks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        offset: float | None = None
        # (t, process, partition, node, error)
        self.failures: list[tuple[float, str, int, int, str]] = []
        self.api_versions: list[tuple[float, str, int, float]] = []  # (t, process, node, rtt s)
        with open(folder / "clients.log", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                m = LINE.match(line.rstrip("\n"))
                if m is None:
                    continue
                t = float(m["t"])
                if offset is None:
                    offset = _wall(m["wall"]) - t
                node = m["thread"].rsplit("/", 1)[-1]
                if not node.isdigit():
                    continue
                process = m["name"].split("#", 1)[0]
                if m["facility"] == "BROKERUA" and (u := UNAVAILABLE.match(m["text"])):
                    self.failures.append((t, process, int(u["partition"]), int(node), u["error"]))
                elif m["facility"] == "RECV" and (a := API_VERSIONS.search(m["text"])):
                    self.api_versions.append((t, process, int(node), float(a["rtt"]) / 1000))
        self.offset = offset or 0.0
        # (node, partition) -> [(t, role, epoch)]
        self.roles: dict[tuple[int, int], list[tuple[float, str, int]]] = {}
        self.halts: dict[int, list[float]] = {}
        for node_dir in sorted((folder / "nodes").glob("n*")):
            node = int(node_dir.name[1:])
            for name in ("stdout.log", "server.log"):
                path = node_dir / name
                if not path.exists():
                    continue
                with open(path, encoding="utf-8", errors="replace") as lines:
                    for line in lines:
                        self._node_line(node, line)
        for changes in self.roles.values():
            changes.sort()
        self.ops = [json.loads(line) for line in open(folder / "history.jsonl", encoding="utf-8")]
        self.nemesis = [op for op in self.ops if op.get("process") == "nemesis"]

    def _node_line(self, node: int, line: str) -> None:
        if (k := KBROKER_ROLE.match(line)) is not None:
            role, epoch = ("leader", k["lepoch"]) if k["lepoch"] is not None else ("follower", k["fepoch"])
            self.roles.setdefault((node, int(k["partition"])), []).append(
                (_wall(k["wall"]) - self.offset, role, int(epoch)))
        elif (f := KAFKA_ROLE.match(line)) is not None:
            self.roles.setdefault((int(f["node"]), int(f["partition"])), []).append(
                (_wall(f["wall"]) - self.offset, f["role"].lower(), int(f["epoch"])))
        elif (h := HALT.match(line)) is not None:
            self.halts.setdefault(node, []).append(_wall(h["wall"]) - self.offset)

    def episodes(self, error: str) -> list[list[tuple[float, str, int, int, str]]]:
        """The failures whose error contains ``error``, one list per producer and partition run
        (a gap of 1 s or more starts another)."""
        out: list[list[tuple[float, str, int, int, str]]] = []
        last: dict[tuple[str, int], tuple[float, int]] = {}
        for f in sorted(x for x in self.failures if error in x[4]):
            key = (f[1], f[2])
            if key in last and f[0] - last[key][0] < 1.0:
                out[last[key][1]].append(f)
            else:
                out.append([f])
            last[key] = (f[0], len(out) - 1)
        return out


def not_leader(run: Run) -> list[dict[str, Any]]:
    rows = []
    for episode in run.episodes(NOT_LEADER):
        t, process, partition, node, _error = episode[0]
        changes = run.roles.get((node, partition), [])
        before = [c for c in changes if c[0] <= t]
        after = [c for c in changes if c[0] > t]
        state = before[-1] if before else None
        restart = [op for op in run.nemesis if op.get("f") == "fault" and op.get("kind") == "restart"
                   and f"n{node}" in op.get("nodes", []) and 0 <= t - op["time"] <= 2.0]
        held = [a for a in run.api_versions if a[1] == process and a[2] == node and 0 <= t - a[0] <= 1.0
                and a[3] >= 1.0]
        if restart:
            cause = "controlled shutdown"
        elif held:
            cause = "held connection"
        elif after and after[0][1] == "leader" and (state is None or after[0][2] > state[2]):
            cause = "metadata ahead"
        else:
            cause = "stale metadata"
        rows.append({
            "t": round(t, 3), "producer": process, "partition": partition, "node": node,
            "lines": len(episode), "cause": cause,
            "node_state": None if state is None else {"role": state[1], "epoch": state[2],
                                                       "since_s": round(t - state[0], 3)},
            "api_versions_wait_s": round(held[-1][3], 2) if held else None,
        })
    return rows


def disk_full(run: Run) -> list[dict[str, Any]]:
    acks: dict[int, list[float]] = {}
    for op in run.ops:
        if op.get("f") == "send" and op.get("type") == "ok" and op.get("partition") is not None:
            acks.setdefault(op["partition"], []).append(op["time"])
    for times in acks.values():
        times.sort()
    rows = []
    for fault in (op for op in run.nemesis if op.get("f") == "fault" and op.get("kind") == "disk-full"):
        t0 = fault["time"]
        node = int(fault["nodes"][0][1:])
        halt = next((h for h in sorted(run.halts.get(node, [])) if h >= t0 - 0.5), None)
        window = [f for f in run.failures if f[3] == node and t0 <= f[0] <= t0 + 30]

        def seen(words: str, window: list[tuple[float, str, int, int, str]] = window) -> dict[str, int]:
            hits = [f for f in window if words in f[4]]
            return {"lines": len(hits), "pairs": len({(f[1], f[2]) for f in hits})}

        ref = halt if halt is not None else t0
        stall, stalled = 0.0, None
        for partition, times in acks.items():
            earlier = [x for x in times if x <= ref]
            later = [x for x in times if x > ref]
            if earlier and later and later[0] - earlier[-1] > stall:
                stall, stalled = later[0] - earlier[-1], partition
        rows.append({
            "fault": fault["id"], "node": node, "fill_at": round(t0, 2),
            "halted_after_s": None if halt is None else round(halt - t0, 2),
            "storage_error": seen("Disk error"), "dropped_connection": seen("transport failure"),
            "not_leader": seen(NOT_LEADER), "stall_s": round(stall, 2), "stall_partition": stalled,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["not-leader", "disk-full"])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (history.jsonl, clients.log, nodes/)")
    parser.add_argument("--summary", action="store_true", help="only the totals")
    args = parser.parse_args(argv)
    causes: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    stalls: list[float] = []
    for folder in args.runs:
        if not (folder / "clients.log").exists():
            print(f"{folder}: no clients.log (run with --producer-debug eos,msg,protocol,topic)", file=sys.stderr)
            continue
        run = Run(folder)
        if args.what == "not-leader":
            rows = not_leader(run)
            causes.update(r["cause"] for r in rows)
        else:
            rows = disk_full(run)
            for r in rows:
                totals["disk-full"] += 1
                totals["halted"] += r["halted_after_s"] is not None
                for kind in ("storage_error", "dropped_connection", "not_leader"):
                    totals[f"{kind} lines"] += r[kind]["lines"]
                    totals[f"{kind} pairs"] += r[kind]["pairs"]
                    totals[f"disk-fulls with {kind}"] += r[kind]["lines"] > 0
                stalls.append(r["stall_s"])
        if not args.summary:
            for r in rows:
                print(folder, json.dumps(r))
    if args.what == "not-leader":
        print(f"episodes {sum(causes.values())}: " + ", ".join(f"{k} {v}" for k, v in causes.most_common()))
    else:
        stalls.sort()
        median = stalls[len(stalls) // 2] if stalls else 0.0
        print(", ".join(f"{k} {v}" for k, v in totals.items())
              + f"; stall at the halt: median {median:.2f} s, longest {max(stalls, default=0.0):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
