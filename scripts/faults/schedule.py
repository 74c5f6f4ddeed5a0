"""A seeded schedule of cluster faults, each followed by a healing period, and the nemesis that
applies and heals them (recording ``fault``/``heal`` ops in the history)."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from .cluster import Cluster
from .history import History

log = logging.getLogger("faults.schedule")
NEMESIS = "nemesis"

# partition: one node isolated both ways; one-way: one node cannot reach another; bridge: two nodes
# cannot reach each other but both reach the third; kill: kill -9, restarted at the heal; pause:
# SIGSTOP, SIGCONT at the heal; restart: SIGTERM then start; delay / loss: on every proxied link from
# and to one node; cut: that node's proxied connections aborted every half second; disk-full: the
# node with the small filesystem gets it filled (freed, and the node restarted if it died, at the heal).
KINDS = ("partition", "one-way", "bridge", "kill", "pause", "restart", "delay", "loss", "cut", "disk-full")


@dataclass
class Fault:
    id: int
    kind: str
    nodes: list[str]
    duration: float  # seconds the fault lasts
    heal: float  # seconds of calm after it
    delay: float = 0.0
    loss: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def generate(seed: int, count: int, nodes: list[str], kinds: tuple[str, ...] = KINDS, duration: tuple[float, float] = (2.0, 8.0),
             heal: tuple[float, float] = (2.0, 5.0), disk_node: str | None = None) -> list[Fault]:
    """``count`` faults drawn from ``kinds`` with a ``Random(seed)``: the same seed, the same schedule."""
    rng = random.Random(seed)
    usable = [k for k in kinds if k != "disk-full" or disk_node is not None]
    if not usable:
        raise ValueError("no fault kind to draw from")
    out = []
    for i in range(count):
        kind = rng.choice(usable)
        if kind in ("one-way", "bridge"):
            targets = rng.sample(nodes, 2)
        elif kind == "disk-full":
            targets = [disk_node]  # type: ignore[list-item]
        else:
            targets = [rng.choice(nodes)]
        fault = Fault(i, kind, targets, round(rng.uniform(*duration), 2), round(rng.uniform(*heal), 2))
        if kind == "delay":
            fault.delay = round(rng.uniform(0.05, 0.5), 3)
        elif kind == "loss":
            fault.loss = round(rng.uniform(0.01, 0.2), 3)
        out.append(fault)
    return out


class Nemesis:
    def __init__(self, cluster: Cluster, history: History, ready_timeout: float = 180.0) -> None:
        self.cluster = cluster
        self.history = history
        self.ready_timeout = ready_timeout
        self._stop_cutting = threading.Event()
        self._cutter: threading.Thread | None = None
        self.failed: list[str] = []  # nodes that did not answer again after a heal

    def _proxies_of(self, node: str):
        """Every proxy on a link from or to ``node``, with the source to set on it (None: all)."""
        c = self.cluster
        for name, n in c.nodes.items():
            for proxy in (n.broker_proxy, n.controller_proxy):
                yield proxy, (None if name == node else node)

    def apply(self, fault: Fault) -> None:
        c, net = self.cluster, self.cluster.net
        assert net is not None
        self.history.record(NEMESIS, "info", "fault", id=fault.id, kind=fault.kind, nodes=fault.nodes,
                            **({"delay": fault.delay} if fault.delay else {}),
                            **({"loss": fault.loss} if fault.loss else {}))
        a = fault.nodes[0]
        if fault.kind == "partition":
            net.partition([a], [n for n in c.names if n != a])
        elif fault.kind == "one-way":
            net.block(fault.nodes[0], fault.nodes[1])
        elif fault.kind == "bridge":
            net.partition([fault.nodes[0]], [fault.nodes[1]])
        elif fault.kind == "kill":
            c.kill(a)
        elif fault.kind == "pause":
            c.pause(a)
        elif fault.kind == "restart":
            c.stop(a)
            c.start(a)
        elif fault.kind in ("delay", "loss"):
            for proxy, source in self._proxies_of(a):
                proxy.set(source, delay=fault.delay or None, loss=fault.loss or None)
        elif fault.kind == "cut":
            self._stop_cutting.clear()
            self._cutter = threading.Thread(target=self._cut_loop, args=(a,), name="cutter", daemon=True)
            self._cutter.start()
        elif fault.kind == "disk-full":
            fault.extra["filled"] = c.fill_disk(a)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _cut_loop(self, node: str) -> None:
        while True:
            for proxy, source in self._proxies_of(node):
                proxy.cut(source)
            if self._stop_cutting.wait(0.5):
                return

    def heal(self, fault: Fault) -> None:
        c, net = self.cluster, self.cluster.net
        assert net is not None
        a = fault.nodes[0]
        if fault.kind in ("partition", "one-way", "bridge"):
            net.heal()
        elif fault.kind == "kill":
            c.start(a)
        elif fault.kind == "pause":
            c.resume(a)
        elif fault.kind in ("delay", "loss"):
            for proxy in c.proxies():
                proxy.clear()
        elif fault.kind == "cut":
            self._stop_cutting.set()
            if self._cutter is not None:
                self._cutter.join(10)
        elif fault.kind == "disk-full":
            c.free_disk(a)
        self.history.record(NEMESIS, "info", "heal", id=fault.id, kind=fault.kind, nodes=fault.nodes)
        self.revive(fault)

    def revive(self, after: Fault | None = None) -> list[str]:
        """Start every node that is not running (a crash, or a node that stopped on a full disk) and
        wait until all answer; the names of the nodes restarted."""
        c = self.cluster
        restarted = []
        for name, node in c.nodes.items():
            if not node.alive:
                if not node.expected_down:
                    code = node.proc.returncode if node.proc is not None else None
                    self.history.record(NEMESIS, "info", "crashed", node=name, exit=code,
                                        during=after.kind if after is not None else None)
                c.start(name)
                restarted.append(name)
        for name in c.names:
            try:
                try:
                    c.wait_ready(name, self.ready_timeout)
                except (RuntimeError, TimeoutError):
                    node = c.nodes[name]
                    if node.alive or node.expected_down:
                        raise
                    # It exited while we waited: a halt begun during the fault (a node stopping on
                    # its full disk takes a while) that had not ended when we looked. A crash, as
                    # above; started again and waited for once more.
                    code = node.proc.returncode if node.proc is not None else None
                    self.history.record(NEMESIS, "info", "crashed", node=name, exit=code,
                                        during=after.kind if after is not None else None)
                    c.start(name)
                    if name not in restarted:
                        restarted.append(name)
                    c.wait_ready(name, self.ready_timeout)
            except (RuntimeError, TimeoutError) as exc:  # a node that does not come back is a finding
                self.history.record(NEMESIS, "info", "unavailable", node=name, error=str(exc)[:300])
                self.failed.append(name)
                continue
            if name in restarted:
                self.history.record(NEMESIS, "info", "start", node=name)
        return restarted

    @staticmethod
    def describe(fault: Fault) -> dict[str, Any]:
        return asdict(fault)
