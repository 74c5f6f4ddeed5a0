"""A topic to create as it is asked of the controller: what CreateTopics, Metadata auto-creation and
the broker's own internal topics name (the controller's checks and records are in
``kbroker.controller.topic_plans``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class NewTopic:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    # partition -> replicas; or (partition, replicas) pairs in request order, which may name a
    # partition twice (Kafka refuses that: "Found multiple manual partition assignments ...")
    assignments: dict[int, list[int]] | Sequence[tuple[int, list[int]]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
