"""Figures of a run: checker results, operation counts, write throughput and latency over time, and
(when matplotlib is installed) a plot with the fault intervals shaded."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checker import check

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Op = dict[str, Any]
SHADES = {"kill": "red", "pause": "orange", "restart": "purple", "partition": "blue", "one-way": "cyan",
          "bridge": "teal", "delay": "gold", "loss": "brown", "cut": "magenta", "disk-full": "black"}


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def fault_intervals(ops: list[Op]) -> list[tuple[str, float, float]]:
    """(kind, start, end) of every kill (until the broker was ready again) and pause; and of every
    ``fault`` op (cluster runs) until the ``heal`` op with its ``id``."""
    intervals = []
    open_at: dict[str, float] = {}
    faults: dict[int, Op] = {}
    for op in ops:
        if op["process"] != "nemesis":
            continue
        if op["f"] == "fault":
            faults[op["id"]] = op
        elif op["f"] == "heal" and op.get("id") in faults:
            fault = faults.pop(op["id"])
            intervals.append((fault["kind"], fault["time"], op["time"]))
        elif op["f"] in ("kill", "pause"):
            open_at[op["f"]] = op["time"]
        elif op["f"] == "start" and "kill" in open_at:
            intervals.append(("kill", open_at.pop("kill"), op["time"]))
        elif op["f"] == "resume" and "pause" in open_at:
            intervals.append(("pause", open_at.pop("pause"), op["time"]))
    return intervals


def latencies(ops: list[Op]) -> list[tuple[float, float]]:
    """(completion time, latency seconds) of every acknowledged send."""
    invoked: dict[Any, float] = {}
    out = []
    for op in ops:
        if op["f"] != "send":
            continue
        if op["type"] == "invoke":
            invoked[op["value"]] = op["time"]
        elif op["type"] == "ok" and op["value"] in invoked:
            out.append((op["time"], op["time"] - invoked[op["value"]]))
    return out


def longest_write_stall(ops: list[Op]) -> dict[str, Any]:
    """The longest time a partition had sends going on and none acknowledged: ``{"s", "partition",
    "from"}`` (seconds; from the previous acknowledgement in that partition, or from its first send,
    to the next acknowledgement, or to the last send of the history)."""
    sends: dict[Any, list[float]] = defaultdict(list)
    acks: dict[Any, list[float]] = defaultdict(list)
    last_send = 0.0
    for op in ops:
        if op["f"] == "send" and op["type"] == "invoke":
            sends[op["partition"]].append(op["time"])
            last_send = max(last_send, op["time"])
        elif op["f"] == "send" and op["type"] == "ok":
            acks[op["partition"]].append(op["time"])
    worst: dict[str, Any] = {"s": 0.0, "partition": None, "from": None}
    for partition, sent in sends.items():
        times = [sent[0], *acks.get(partition, []), last_send]
        for a, b in zip(times, times[1:], strict=False):
            if b - a > worst["s"]:
                worst = {"s": round(b - a, 1), "partition": partition, "from": round(a, 1)}
    return worst


def build(ops: list[Op], meta: dict[str, Any]) -> dict[str, Any]:
    result = check(ops)
    lat = sorted(latency for _, latency in latencies(ops))
    nemesis: defaultdict[str, int] = defaultdict(int)
    for op in ops:
        if op["process"] == "nemesis":
            nemesis[op["f"]] += 1
    duration = ops[-1]["time"] if ops else 0.0
    return {
        **meta,
        "valid": result["valid"],
        "anomaly_counts": result["anomaly_counts"],
        "anomalies": {name: found[:20] for name, found in result["anomalies"].items()},
        "faults": dict(nemesis),
        "ops": result["ops"],
        "operations": len(ops),
        "sends_invoked": result["sends_invoked"],
        "sends_acknowledged": result["sends_acknowledged"],
        "values_read": result["values_read"],
        "duration_s": round(duration, 3),
        "ack_latency_ms": {name: (round(v * 1000, 2) if v is not None else None)
                           for name, v in (("p50", _percentile(lat, 0.5)), ("p99", _percentile(lat, 0.99)),
                                           ("max", lat[-1] if lat else None))},
        "longest_write_stall": longest_write_stall(ops),
    }


def text(report: dict[str, Any]) -> str:
    lines = [f"valid: {report['valid']}"]
    for key in ("target", "flush", "seed", "cycles", "faults", "faults_applied", "fault_kinds", "crashes",
                "first_acks", "heals_without_progress", "nodes_not_back", "duplicates_after_client_timeout",
                "duplicates_after_epoch_bump", "reorders_of_those_duplicates", "broker_anomaly_counts", "broker_valid", "operations", "sends_invoked", "sends_acknowledged",
                "values_read", "duration_s", "ack_latency_ms", "drain_complete", "wall_s", "phase_s", "slow_phases"):
        if key in report:
            lines.append(f"{key}: {report[key]}")
    lines.append("anomalies: " + ", ".join(f"{k}={v}" for k, v in report["anomaly_counts"].items()))
    lines.append("ops: " + ", ".join(f"{k}={v}" for k, v in report["ops"].items()))
    for name, found in report["anomalies"].items():
        for example in found[:5]:
            lines.append(f"  {name}: {json.dumps(example)}")
    for line in report.get("explanations", []):
        lines.append(f"  explained: {line}")
    return "\n".join(lines) + "\n"


def figure(ops: list[Op]) -> Figure:
    """The plot of :func:`plot` as a matplotlib figure (two axes sharing the time axis: acknowledged
    writes per second above, ack latency below, every fault interval shaded on both); the caller closes
    it. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    lat = latencies(ops)
    per_second: dict[int, int] = defaultdict(int)
    for t, _ in lat:
        per_second[int(t)] += 1
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(12, 6))
    seconds = list(range(min(per_second), max(per_second) + 1)) if per_second else []
    top.plot(seconds, [per_second.get(s, 0) for s in seconds], lw=0.8)  # a second without an ack is a 0
    top.set_ylabel("acked sends/s")
    bottom.scatter([t for t, _ in lat], [v * 1000 for _, v in lat], s=1)
    bottom.set_yscale("log")
    bottom.set_ylabel("ack latency (ms)")
    bottom.set_xlabel("time (s)")
    intervals = fault_intervals(ops)
    for kind, start, end in intervals:
        for ax in (top, bottom):
            ax.axvspan(start, end, color=SHADES.get(kind, "grey"), alpha=0.2, lw=0, label=f"_{kind}")
    handles = [matplotlib.patches.Patch(color=SHADES.get(k, "grey"), alpha=0.3, label=k)
               for k in sorted({k for k, _, _ in intervals})]
    if handles:
        top.legend(handles=handles, loc="upper right", fontsize="small", ncol=len(handles))
    fig.tight_layout()
    return fig


def plot(ops: list[Op], path: Path) -> bool:
    """Write :func:`figure` as a PNG at ``path``; False (and no file) if matplotlib is not installed."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig = figure(ops)
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True
