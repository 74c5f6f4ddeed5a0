"""A topic to create as it is asked of the controller: what CreateTopics, Metadata auto-creation and
the broker's own internal topics name, and whether a name is a legal topic name (Kafka's
``Topic.validate``, which brokers check too). The controller's checks and records are in
``kbroker.controller.topic_plans``."""

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


_TOPIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def topic_name_error(name: str | None) -> str | None:
    """Why ``name`` is not a legal topic name (the message of the INVALID_TOPIC_EXCEPTION Kafka's
    ReplicationControlManager.validateNewTopicNames answers, from ``Topic.validate``), or None."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > 249:
        return f"Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
    if not set(name) <= _TOPIC_NAME_CHARS:
        return (f"Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, "
                "'.', '_' and '-'")
    return None
