"""Three kbroker nodes or three reference Apache Kafka 4.4 nodes behind one interface, for the tests
that run the same scenario on both (test_client_failover.py, test_topic_tools_cluster.py): start
with each side's settings, bootstrap addresses of some or all nodes, kill and restart a node, the
servers' logs, stop everything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from cluster_fixture import Cluster


def reference_kafka() -> ModuleType:
    """scripts/reference_kafka.py, imported when a test first needs Kafka's side."""
    import reference_kafka as module
    return module


class KbrokerNodes:
    def __init__(self, tmp: Path, settings: dict[str, str]) -> None:
        self.cluster = Cluster(tmp / "kbroker", 3, settings).start()
        self.ids: list[int] = self.cluster.node_ids

    def bootstrap(self, nodes: list[int] | None = None) -> str:
        return ",".join(self.cluster.bootstrap(n) for n in (nodes or self.ids))

    def kill(self, node: int) -> None:
        self.cluster.kill(node)

    def restart(self, node: int) -> None:
        self.cluster.start_node(node)

    def logs(self) -> str:
        return self.cluster.logs()

    def stop(self) -> None:
        self.cluster.kill_all()


class KafkaNodes:
    def __init__(self, tmp: Path, settings: dict[str, str]) -> None:
        self.cluster = reference_kafka().start_reference_kafka_cluster(3, tmp / "kafka", overrides=settings)
        self.ids: list[int] = sorted(self.cluster.ports)

    def bootstrap(self, nodes: list[int] | None = None) -> str:
        return ",".join(f"127.0.0.1:{self.cluster.ports[n][0]}" for n in (nodes or self.ids))

    def kill(self, node: int) -> None:
        self.cluster.kill(node)

    def restart(self, node: int) -> None:
        self.cluster.start_node(node)
        self.cluster.wait_ready(node)

    def logs(self) -> str:
        return "\n".join(f"--- node {n}\n" + (self.cluster.workdir / f"node-{n}" / "server.log").read_text(
            errors="replace")[-3000:] for n in self.ids)

    def stop(self) -> None:
        self.cluster.stop()


def started(kind: str, tmp: Path, settings: dict[str, str]) -> Iterator[KbrokerNodes | KafkaNodes]:
    """The nodes of ``kind`` ("kbroker" or "kafka"), stopped on the way out (a fixture's body)."""
    nodes = KbrokerNodes(tmp, settings) if kind == "kbroker" else KafkaNodes(tmp, settings)
    try:
        yield nodes
    finally:
        nodes.stop()
