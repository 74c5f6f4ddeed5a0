"""A cluster fault run: three nodes (Kafka or kbroker) in namespaces behind proxies, the queue
workload (``workload.py``) throughout, a seeded schedule of faults each followed by a healing period,
then a final drain, the checker and a report (``report.json``, ``report.txt``, ``report.png``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import clientlog, pressure
from .checker import transaction_figures
from .cluster import TARGETS, Cluster
from .explain import score
from .history import History
from .report import build, plot, text
from .runner import _wait_progress
from .schedule import KINDS, NEMESIS, Nemesis, generate
from .stall import StallProbe, describe_partitions, producer_brief
from .workload import Workload, create_topic, drain

log = logging.getLogger("faults.cluster_runner")


@dataclass
class ClusterRunConfig:
    out: Path
    target: str = "kafka"
    faults: int = 10
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    partitions: int = 3
    producers: int = 2
    rate: float = 100.0  # sends per second per producer
    duration_min: float = 2.0
    duration_max: float = 8.0
    heal_min: float = 2.0
    heal_max: float = 5.0
    progress_timeout: float = 90.0  # after each heal, wait this long at most for every producer to get an ack
    disk_node: str | None = "n3"  # the node whose log dir is a small tmpfs (disk-full faults)
    disk_mb: int = 64
    transactional: bool = False  # the read_committed variant (workload.py)
    producer_debug: str = ""  # librdkafka debug contexts for the producers (e.g. "eos,msg,protocol"), to clients.log
    stall_probe_s: float = pressure.SLOW_PHASE_S  # a wait for acks this long gets one snapshot (stall.py)


def run(config: ClusterRunConfig) -> dict[str, Any]:
    config.out.mkdir(parents=True, exist_ok=True)
    schedule = generate(config.seed, config.faults, ["n1", "n2", "n3"], config.kinds,
                        (config.duration_min, config.duration_max), (config.heal_min, config.heal_max),
                        config.disk_node if "disk-full" in config.kinds else None)
    uses_disk = any(f.kind == "disk-full" for f in schedule)
    cluster = Cluster(TARGETS[config.target](), config.out / "nodes", seed=config.seed,
                      small_disk_node=config.disk_node if uses_disk else None, small_disk_mb=config.disk_mb)
    history = History(config.out / "history.jsonl")
    nemesis = Nemesis(cluster, history)
    workload: Workload | None = None
    first_acks = False  # every producer had an acknowledgement after the workload's start
    progress: list[bool] = []  # the same after each heal
    stalls: list[dict[str, Any]] = []  # what a long wait for acknowledgements waited on (stall.py)
    applied: list[dict[str, Any]] = []
    drain_complete = False
    topic = "queue"
    started = time.monotonic()
    handler: logging.Handler | None = None
    clients = logging.getLogger("faults.clients")
    if config.producer_debug:
        handler = logging.FileHandler(config.out / "clients.log")
        handler.setFormatter(logging.Formatter(clientlog.FORMAT))
        handler.addFilter(clientlog.history_time_filter(history.now))
        clients.addHandler(handler)
        clients.setLevel(logging.DEBUG)
        clients.propagate = False
    phases = Phases(lambda: cluster.hub.take_lag() if cluster.hub is not None else None)
    try:
        cluster.setup()
        phases.mark("setup")
        cluster.start_all()
        for name in cluster.names:
            cluster.wait_ready(name)
        phases.mark("start")
        history.record(NEMESIS, "info", "start", nodes=cluster.names)
        create_topic(cluster.bootstrap, topic, config.partitions, replication_factor=3,
                     config={"min.insync.replicas": "2", "unclean.leader.election.enable": "false"})
        workload = Workload(history, cluster.bootstrap, topic, config.partitions, config.producers, config.rate,
                            transactional=config.transactional, seed=config.seed,
                            producer_debug=config.producer_debug)
        phases.mark("topic")
        workload.start()

        def snapshot(w: Workload = workload) -> dict[str, Any]:
            return {"acked": list(w.acked), "producers": {p: producer_brief(s) for p, s in sorted(w.stats.items())},
                    "topic": describe_partitions(cluster.bootstrap, topic), "nodes": cluster.snapshot_nodes()}

        since = list(workload.acked)
        with StallProbe("first-acks", snapshot, stalls, config.stall_probe_s):
            first_acks = _wait_progress(workload, since, config.progress_timeout)
        phases.mark("first-acks")
        if not first_acks:
            log.warning("no acknowledgement for every producer %.0f s after the workload's start", config.progress_timeout)
        for fault in schedule:
            log.info("fault %d/%d: %s on %s for %.1fs", fault.id + 1, len(schedule), fault.kind, fault.nodes,
                     fault.duration)
            nemesis.apply(fault)
            time.sleep(fault.duration)  # the fault lasts this long, the clients running
            phases.mark(f"fault-{fault.id}")
            nemesis.heal(fault)
            phases.mark(f"heal-{fault.id}")
            applied.append(Nemesis.describe(fault))
            since = list(workload.acked)
            time.sleep(fault.heal)  # the healing period
            with StallProbe(f"progress-{fault.id}", snapshot, stalls, config.stall_probe_s):
                progress.append(_wait_progress(workload, since, config.progress_timeout))
            phases.mark(f"progress-{fault.id}")
            if not progress[-1]:
                log.warning("no progress after healing fault %d (%s)", fault.id, fault.kind)
            if nemesis.failed:
                log.warning("nodes %s did not come back after fault %d: the schedule stops", nemesis.failed, fault.id)
                break
        workload.stop()
        phases.mark("workload-stop")
        drain_complete = drain(history, cluster.bootstrap, topic, config.partitions, timeout=120.0,
                               read_committed=config.transactional)
        phases.mark("drain")
    finally:
        if workload is not None:
            workload.stop()
        try:
            cluster.close()
            history.close()
            phases.mark("close")
        finally:
            phases.close()
            if handler is not None:
                clients.removeHandler(handler)
                handler.close()
    kinds: dict[str, int] = {}
    for fault in applied:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    crashes = [op for op in history.ops if op["process"] == NEMESIS and op["f"] == "crashed"]
    report = build(history.ops, {
        "target": config.target, "seed": config.seed, "transactional": config.transactional,
        "faults_applied": len(applied), "fault_kinds": kinds,
        "schedule": applied, "crashes": [{"node": op["node"], "exit": op["exit"], "during": op.get("during")} for op in crashes],
        "first_acks": first_acks, "progress_after_each_heal": all(progress), "nodes_not_back": nemesis.failed, "heals_without_progress": progress.count(False),
        "drain_complete": drain_complete, "wall_s": round(time.monotonic() - started, 1), "phase_s": phases.seconds,
        "phase_pressure": phases.pressure, "slow_phases": pressure.slow_phases(phases.seconds, phases.pressure),
        "stalls": stalls,
        "node_starts": {n.name: n.starts for n in cluster.nodes.values()},
        "slow_starts": {n.name: n.slow_starts for n in cluster.nodes.values() if n.slow_starts},
        "config": {k: str(v) for k, v in asdict(config).items()}})
    if config.transactional:
        report["transactions"] = transaction_figures(history.ops)
    # A duplicate that librdkafka's epoch bump after a message timeout explains is the client's, and so
    # is the reorder its second copy makes: counted apart; broker_valid ignores them (valid stays strict).
    score(report, history.ops, healthy(report), clientlog.load(config.out / "clients.log", history.ops))
    (config.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (config.out / "report.txt").write_text(text(report))
    report["plot"] = plot(history.ops, config.out / "report.png")
    return report


class Phases:
    """The run's wall time by phase (report.json's ``phase_s``, one log line each): where a slow run spent
    it; and the machine's pressure in each phase (``phase_pressure``, ``pressure.summary``): what it
    waited on (CPU, I/O, memory, dirty pages written back) and, in a phase of 20 s or more, which
    processes used the CPU."""

    def __init__(self, hub_lag: Callable[[], dict[str, float] | None] = lambda: None) -> None:
        """``hub_lag``: the proxies' loop lag since the last call (``ProxyHub.take_lag``), if any yet."""
        self.hub_lag = hub_lag
        self.seconds: dict[str, float] = {}
        self.pressure: dict[str, dict[str, Any]] = {}
        self._last = time.monotonic()
        self._snapshot = pressure.take()
        self._gc = pressure.GcPauses()

    def mark(self, name: str) -> None:
        """The phase ``name`` ends now (it began at the previous mark)."""
        now = time.monotonic()
        snapshot = pressure.take()
        self.seconds[name] = round(now - self._last, 2)
        self.pressure[name] = pressure.summary(self._snapshot, snapshot)
        self.pressure[name]["harness_gc"] = self._gc.take()
        lag = self.hub_lag()
        if lag is not None:
            self.pressure[name]["proxy_loop_lag"] = lag
        self._last, self._snapshot = now, snapshot
        log.info("phase %s: %.2fs (%s)", name, self.seconds[name], pressure.brief(self.pressure[name]))

    def close(self) -> None:
        self._gc.close()


def healthy(report: dict[str, Any]) -> bool:
    """The run's verdict besides its history: drain complete, acknowledgements after the start (reports
    before ``first_acks`` counted that wait among the heals) and after every heal, every node back."""
    return bool(report["drain_complete"] and report.get("first_acks", True) and report["heals_without_progress"] == 0
                and not report["nodes_not_back"])


def rescore(run_dir: Path) -> dict[str, Any]:
    """Re-check a finished run from its history.jsonl and report.json (rewritten)."""
    from .history import load

    report = json.loads((run_dir / "report.json").read_text())
    ops = load(run_dir / "history.jsonl")
    fresh = build(ops, {})
    for key in ("anomaly_counts", "anomalies", "ops", "operations", "sends_invoked", "sends_acknowledged",
                "values_read", "ack_latency_ms", "longest_write_stall"):
        report[key] = fresh[key]
    report.setdefault("nodes_not_back", [])
    report["crashes"] = []
    last_heal = None
    for op in ops:
        if op["process"] == NEMESIS and op["f"] == "heal":
            last_heal = op["kind"]
        elif op["process"] == NEMESIS and op["f"] == "crashed":
            report["crashes"].append({"node": op["node"], "exit": op["exit"], "during": op.get("during", last_heal)})
    if report.get("transactional"):
        report["transactions"] = transaction_figures(ops)
    score(report, ops, healthy(report), clientlog.load(run_dir / "clients.log", ops))
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (run_dir / "report.txt").write_text(text(report))
    return report
