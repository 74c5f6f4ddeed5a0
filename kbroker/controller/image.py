"""The metadata image: topics, partitions, configs, brokers and features as the metadata log says.

The image is changed only by :meth:`MetadataImage.apply` of metadata records (Kafka's KRaft
record types from ``metadata/``), in log order. Brokers read it; the controller writes records.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# ConfigRecord resource types (Kafka's ConfigResource.Type ids).
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_GROUP = 32

NO_LEADER = -1
LEADER_UNCHANGED = -2


@dataclass(slots=True)
class PartitionState:
    topic_id: uuid.UUID
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int
    partition_epoch: int


# Kafka's Topic.INTERNAL_TOPICS (clients/.../common/internals/Topic.java): Metadata marks them
# internal, and clients may not Produce to them nor DeleteRecords from them. ``__cluster_metadata``
# is not among them: it is no topic at all but the controller's own log, and its name cannot be
# created (METADATA_TOPIC in kbroker.controller.quorum).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
# The metadata log's own name (kbroker.controller.quorum.METADATA_TOPIC, which imports this module).
# A metadata log written before its creation was refused may still hold a TopicRecord of that name:
# it is ignored, with its partitions, so that no client API ever reaches the metadata log as a topic
# partition.
METADATA_TOPIC = "__cluster_metadata"


@dataclass(slots=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


@dataclass(slots=True)
class BrokerRegistration:
    broker_id: int
    incarnation_id: uuid.UUID
    epoch: int
    endpoints: dict[str, tuple[str, int, int]]  # listener -> (host, port, security protocol id)
    rack: str | None
    fenced: bool


class MetadataImage:
    def __init__(self) -> None:
        self.topics: dict[str, TopicImage] = {}
        self.topics_by_id: dict[uuid.UUID, TopicImage] = {}
        self.brokers: dict[int, BrokerRegistration] = {}
        self.broker_configs: dict[str, dict[str, str]] = {}
        self.group_configs: dict[str, dict[str, str]] = {}  # GROUP (32) resources: share group configs
        self.features: dict[str, int] = {}
        self.kraft_version = 0  # from KRaftVersionRecord control records, not FeatureLevelRecords
        self.next_producer_id = 0
        self.offset = -1  # offset of the last applied record
        self.listeners: list[Any] = []

    # -- reads ----------------------------------------------------------------------------

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        return self.topics_by_id.get(topic_id)

    def partition(self, name: str, index: int) -> PartitionState | None:
        t = self.topics.get(name)
        return t.partitions.get(index) if t else None

    # -- writes: metadata records ---------------------------------------------------------

    def apply(self, record: Any, offset: int) -> None:
        handler = getattr(self, "_apply_" + type(record).__name__, None)
        if handler is not None:
            handler(record)
        self.offset = offset
        for listener in self.listeners:
            listener(record)

    def apply_kraft_version(self, level: int, offset: int) -> None:
        self.kraft_version = level
        self.offset = offset

    def _apply_TopicRecord(self, r: Any) -> None:
        if r.name == METADATA_TOPIC:
            log.warning("ignoring a topic named %s (id %s) in the metadata log: that name is the metadata "
                        "log's own and cannot be a topic", r.name, r.topic_id)
            return
        t = TopicImage(r.name, r.topic_id)
        self.topics[r.name] = t
        self.topics_by_id[r.topic_id] = t

    def _apply_PartitionRecord(self, r: Any) -> None:
        t = self.topics_by_id.get(r.topic_id)
        if t is None:  # a topic this image ignored (above)
            return
        t.partitions[r.partition_id] = PartitionState(
            r.topic_id, r.partition_id, list(r.replicas), list(r.isr), r.leader, r.leader_epoch,
            r.partition_epoch,
        )

    def _apply_PartitionChangeRecord(self, r: Any) -> None:
        t = self.topics_by_id.get(r.topic_id)
        if t is None:
            return
        p = t.partitions[r.partition_id]
        if r.isr is not None:
            p.isr = list(r.isr)
        if r.replicas is not None:
            p.replicas = list(r.replicas)
        if r.leader != LEADER_UNCHANGED:
            p.leader = r.leader
            p.leader_epoch += 1
        p.partition_epoch += 1

    def _apply_RemoveTopicRecord(self, r: Any) -> None:
        t = self.topics_by_id.pop(r.topic_id, None)
        if t is not None:
            self.topics.pop(t.name, None)

    def _apply_ConfigRecord(self, r: Any) -> None:
        if r.resource_type == RESOURCE_TOPIC:
            t = self.topics.get(r.resource_name)
            if t is None:
                return
            target = t.configs
        elif r.resource_type == RESOURCE_BROKER:
            target = self.broker_configs.setdefault(r.resource_name, {})
        elif r.resource_type == RESOURCE_GROUP:
            target = self.group_configs.setdefault(r.resource_name, {})
        else:
            return
        if r.value is None:
            target.pop(r.name, None)
        else:
            target[r.name] = r.value

    def _apply_FeatureLevelRecord(self, r: Any) -> None:
        if r.name == "kraft.version":
            return  # as Kafka's FeaturesDelta (KAFKA-18979): kraft.version lives in the Raft layer
        if r.feature_level == 0:
            self.features.pop(r.name, None)
        else:
            self.features[r.name] = r.feature_level

    def _apply_ProducerIdsRecord(self, r: Any) -> None:
        self.next_producer_id = r.next_producer_id

    def _apply_RegisterBrokerRecord(self, r: Any) -> None:
        self.brokers[r.broker_id] = BrokerRegistration(
            r.broker_id,
            r.incarnation_id,
            r.broker_epoch,
            {e.name: (e.host, e.port, e.security_protocol) for e in r.end_points},
            r.rack,
            r.fenced,
        )

    def _apply_UnfenceBrokerRecord(self, r: Any) -> None:
        b = self.brokers.get(r.id)
        if b is not None:
            b.fenced = False

    def _apply_FenceBrokerRecord(self, r: Any) -> None:
        b = self.brokers.get(r.id)
        if b is not None:
            b.fenced = True
