"""The nemesis after a heal (runs without root: a stand-in cluster): a node still halting when the
nemesis looks (alive), which exits while it waits for it to answer, is a crash, started again;
only a node that does not come back is ``unavailable`` (Kafka run of seed 354, docs/faults.md:
n3 halting on its full disk was alive at the heal and exited a moment later)."""

from __future__ import annotations

from dataclasses import dataclass, field

from faults.history import History
from faults.schedule import Fault, Nemesis


@dataclass
class Proc:
    returncode: int | None = None


@dataclass
class StandInNode:
    alive: bool = True
    expected_down: bool = False
    proc: Proc = field(default_factory=Proc)


class StandInCluster:
    """Node n3 exits (code 1) while the first wait for it runs; ``comes_back``: its start makes it
    answer."""

    def __init__(self, comes_back: bool = True) -> None:
        self.nodes = {name: StandInNode() for name in ("n1", "n2", "n3")}
        self.names = list(self.nodes)
        self.comes_back = comes_back
        self.started: list[str] = []
        self.waits: list[str] = []

    def wait_ready(self, name: str, timeout: float = 120.0) -> None:
        self.waits.append(name)
        node = self.nodes[name]
        if name == "n3" and (self.waits.count("n3") == 1 or not self.comes_back):
            node.alive = False
            node.proc.returncode = 1
            raise RuntimeError("broker exited with code 1 before it was ready")

    def start(self, name: str) -> None:
        self.started.append(name)
        self.nodes[name].alive = True
        self.nodes[name].proc = Proc()


def _nemesis_ops(history: History) -> list[tuple[str, str | None]]:
    return [(op["f"], op.get("node")) for op in history.ops]


def test_a_node_that_exits_while_waited_for_is_a_crash_started_again():
    cluster = StandInCluster()
    history = History()
    nemesis = Nemesis(cluster, history)  # type: ignore[arg-type]
    restarted = nemesis.revive(Fault(id=8, kind="disk-full", nodes=["n3"], duration=1.5, heal=2.0))
    assert restarted == ["n3"] and cluster.started == ["n3"]
    assert nemesis.failed == []
    assert _nemesis_ops(history) == [("crashed", "n3"), ("start", "n3")]
    crashed = history.ops[0]
    assert (crashed["exit"], crashed["during"]) == (1, "disk-full")


def test_a_node_that_does_not_come_back_is_unavailable():
    cluster = StandInCluster(comes_back=False)
    history = History()
    nemesis = Nemesis(cluster, history)  # type: ignore[arg-type]
    nemesis.revive(Fault(id=8, kind="disk-full", nodes=["n3"], duration=1.5, heal=2.0))
    assert nemesis.failed == ["n3"]
    assert _nemesis_ops(history) == [("crashed", "n3"), ("unavailable", "n3")]
