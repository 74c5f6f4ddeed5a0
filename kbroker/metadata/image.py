"""The metadata image: topics, partitions, configs, brokers and features as the metadata log says.

The image is changed only by :meth:`MetadataImage.apply` of metadata records (Kafka's KRaft
record types from ``metadata/``), in log order. A node holds two: the broker-side image of the
committed records (``kbroker.metadata.loader.MetadataLoader``, Kafka's MetadataLoader), which
the broker reads, and the controller's (``QuorumController.image``), to which the active
controller applies its records as it appends them (Kafka's QuorumController state).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker_protocol.messages import metadata_records as mrec

log = logging.getLogger(__name__)

# ConfigRecord resource types (Kafka's ConfigResource.Type ids).
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_GROUP = 32

NO_LEADER = -1
LEADER_UNCHANGED = -2
LEADER_RECOVERY_UNCHANGED = -1  # PartitionChangeRecord.LeaderRecoveryState's default: no change
# BrokerRegistrationChangeRecord's Fenced / InControlledShutdown values (Kafka's
# BrokerRegistrationFencingChange and BrokerRegistrationInControlledShutdownChange).
FENCING_NONE, FENCING_FENCE, FENCING_UNFENCE = 0, 1, -1
SHUTDOWN_CHANGE_NONE, SHUTDOWN_CHANGE_IN_CONTROLLED_SHUTDOWN = 0, 1


@dataclass(slots=True)
class PartitionState:
    topic_id: uuid.UUID
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int
    partition_epoch: int
    # KIP-966 eligible leader replicas and the last known ELR (or last known leader) as Kafka's
    # PartitionRegistration keeps them; reassignment state; LeaderRecoveryState (0 RECOVERED,
    # 1 RECOVERING after an unclean election).
    elr: list[int] = field(default_factory=list)
    last_known_elr: list[int] = field(default_factory=list)
    removing_replicas: list[int] = field(default_factory=list)
    adding_replicas: list[int] = field(default_factory=list)
    leader_recovery_state: int = 0
    # KIP-858: the log dir (its ``directory.id``) of each replica, in ``replicas`` order; empty
    # before metadata.version 17 (IBP_3_7_IV2). UNASSIGNED (all zero) until the broker says which.
    directories: list[uuid.UUID] = field(default_factory=list)


def copy_partition(p: PartitionState) -> PartitionState:
    """A copy of ``p`` sharing no list with it."""
    return PartitionState(p.topic_id, p.partition, list(p.replicas), list(p.isr), p.leader, p.leader_epoch,
                          p.partition_epoch, elr=list(p.elr), last_known_elr=list(p.last_known_elr),
                          removing_replicas=list(p.removing_replicas), adding_replicas=list(p.adding_replicas),
                          leader_recovery_state=p.leader_recovery_state, directories=list(p.directories))


# Kafka's DirectoryId.UNASSIGNED: a replica whose log dir the broker has not yet reported.
DIR_UNASSIGNED = uuid.UUID(int=0)


# PartitionChangeRecord's replica-list fields (null: unchanged) and the PartitionState fields they set.
_PARTITION_CHANGE_LISTS = (("isr", "isr"), ("replicas", "replicas"), ("removing_replicas", "removing_replicas"),
                           ("adding_replicas", "adding_replicas"), ("eligible_leader_replicas", "elr"),
                           ("last_known_elr", "last_known_elr"))


def apply_partition_change(p: PartitionState, r: mrec.PartitionChangeRecord) -> None:
    """Change ``p`` in place as ``r`` says: the one place a PartitionChangeRecord becomes partition
    state (the image applies it; the controller previews it with ``partition_change.merge``).

    As Kafka's PartitionRegistration.merge: a leader field (even the same leader) bumps the leader
    epoch; every change record bumps the partition epoch."""
    old_replicas = p.replicas
    for record_field, state_field in _PARTITION_CHANGE_LISTS:
        value = getattr(r, record_field)
        if value is not None:
            setattr(p, state_field, list(value))
    if r.directories is not None:
        p.directories = list(r.directories)
    elif r.replicas is not None and p.directories:
        # new replicas without their directories: the kept ones keep theirs, the others are
        # UNASSIGNED (what Kafka's PartitionChangeBuilder writes for them)
        kept = dict(zip(old_replicas, p.directories, strict=False))
        p.directories = [kept.get(b, DIR_UNASSIGNED) for b in p.replicas]
    if r.leader_recovery_state != LEADER_RECOVERY_UNCHANGED:
        p.leader_recovery_state = r.leader_recovery_state
    if r.leader != LEADER_UNCHANGED:
        p.leader = r.leader
        p.leader_epoch += 1
    p.partition_epoch += 1


# Kafka's Topic.INTERNAL_TOPICS (clients/.../common/internals/Topic.java): Metadata marks them
# internal, and clients may not Produce to them nor DeleteRecords from them. ``__cluster_metadata``
# is not among them: it is no topic at all but the controller's own log, and its name cannot be
# created (kbroker.controller.operations.topic_logs.plan_create).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state",
                             "__kbroker_delayed"})  # the last: kbroker/delayed.py
# The metadata log's own name (as kbroker.controller.quorum.METADATA_TOPIC, which imports this module).
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
    # feature -> (min, max supported version), from the RegisterBrokerRecord (kept for snapshots)
    supported_features: dict[str, tuple[int, int]] = field(default_factory=dict)
    in_controlled_shutdown: bool = False
    log_dirs: list[uuid.UUID] = field(default_factory=list)
    # KIP-1066: the broker's cordoned log dirs (``cordoned.log.dirs``) as its heartbeats report
    # them; None until the broker has sent them (Kafka's BrokerRegistration.cordonedDirectories).
    cordoned_log_dirs: list[uuid.UUID] | None = None
    # Offset of the RegisterBrokerRecord this registration came from: a broker is caught up (may be
    # unfenced) once its metadata offset reaches it, as Kafka's registerBrokerRecordOffsets.
    register_offset: int = -1


QuotaEntity = tuple[tuple[str, str | None], ...]
"""A client quota entity: its (entity type, name or None for the default) pairs, sorted by type."""


def quota_entity(parts: Iterable[tuple[str, str | None]]) -> QuotaEntity:
    """A client quota entity as the image keys it: its (type, name) pairs sorted by type."""
    return tuple(sorted(parts, key=lambda part: part[0]))


class MetadataImage:
    def __init__(self) -> None:
        self.topics: dict[str, TopicImage] = {}
        self.topics_by_id: dict[uuid.UUID, TopicImage] = {}
        self.brokers: dict[int, BrokerRegistration] = {}
        self.broker_configs: dict[str, dict[str, str]] = {}
        self.group_configs: dict[str, dict[str, str]] = {}  # GROUP (32) resources: share group configs
        # SCRAM credentials and ACLs as their records hold them (kbroker/security reads them through
        # the image listeners; the image keeps them so that a snapshot carries them)
        self.scram_credentials: dict[tuple[str, int], mrec.UserScramCredentialRecord] = {}  # by (user, mechanism)
        self.acls: dict[uuid.UUID, mrec.AccessControlEntryRecord] = {}  # by id
        # controller registrations (Kafka's ClusterImage.controllers): id -> RegisterControllerRecord
        self.controllers: dict[int, mrec.RegisterControllerRecord] = {}
        # Client quotas (ClientQuotaRecords): entity ((type, name or None for <default>), ... sorted by
        # type) -> key -> value, as Kafka's ClientQuotasImage (kbroker/security/quotas.py enforces them)
        self.client_quotas: dict[QuotaEntity, dict[str, float]] = {}
        self.delegation_tokens: dict[str, mrec.DelegationTokenRecord] = {}  # by token id
        self.features: dict[str, int] = {}
        self.kraft_version = 0  # from KRaftVersionRecord control records, not FeatureLevelRecords
        self.next_producer_id = 0
        self.offset = -1  # offset of the last applied record
        self.listeners: list[Callable[[object], None]] = []
        # Answers computed from this image (e.g. a topic's Metadata partitions, see
        # kbroker/api/metadata.py), dropped whenever a record is applied.
        self.derived: dict[object, object] = {}

    def copy(self) -> MetadataImage:
        """A copy sharing no mutable state with this image (the records it keeps, which nothing
        changes, are shared); no listeners. The controller reverts to a copy of the committed
        image when it stops being active (Kafka's revert to the last committed offset)."""
        other = MetadataImage()
        for name, t in self.topics.items():
            copied = TopicImage(t.name, t.topic_id, {i: copy_partition(p) for i, p in t.partitions.items()},
                                dict(t.configs))
            other.topics[name] = copied
            other.topics_by_id[t.topic_id] = copied
        other.brokers = {i: replace(b, endpoints=dict(b.endpoints), supported_features=dict(b.supported_features),
                                    log_dirs=list(b.log_dirs),
                                    cordoned_log_dirs=None if b.cordoned_log_dirs is None else list(b.cordoned_log_dirs))
                         for i, b in self.brokers.items()}
        other.broker_configs = {k: dict(v) for k, v in self.broker_configs.items()}
        other.group_configs = {k: dict(v) for k, v in self.group_configs.items()}
        other.scram_credentials = dict(self.scram_credentials)
        other.acls = dict(self.acls)
        other.controllers = dict(self.controllers)
        other.client_quotas = {k: dict(v) for k, v in self.client_quotas.items()}
        other.delegation_tokens = dict(self.delegation_tokens)
        other.features = dict(self.features)
        other.kraft_version = self.kraft_version
        other.next_producer_id = self.next_producer_id
        other.offset = self.offset
        return other

    def replace_with(self, other: MetadataImage) -> None:
        """Take ``other``'s state in place (who holds this image keeps it), keeping the listeners."""
        listeners = self.listeners
        self.__dict__.update(other.__dict__)
        self.listeners = listeners
        self.derived = {}

    # -- reads ----------------------------------------------------------------------------

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        return self.topics_by_id.get(topic_id)

    def partition(self, name: str, index: int) -> PartitionState | None:
        t = self.topics.get(name)
        return t.partitions.get(index) if t else None

    def finalized_features(self) -> dict[str, int]:
        """Finalized levels as Kafka's metadata cache reports them: the FeatureLevelRecords plus
        kraft.version from the Raft layer when above 0."""
        features = dict(self.features)
        if self.kraft_version > 0:
            features["kraft.version"] = self.kraft_version
        return features

    # -- writes: metadata records ---------------------------------------------------------

    def apply(self, record: object, offset: int) -> None:
        handler = getattr(self, "_apply_" + type(record).__name__, None)
        self.offset = offset  # before the handler: RegisterBrokerRecord keeps its own offset
        if self.derived:
            self.derived.clear()
        if handler is not None:
            handler(record)
        for listener in self.listeners:
            # Kafka's MetadataLoader: a publisher that fails is a fault logged (FaultHandler); the
            # image and the other publishers still get the record
            try:
                listener(record)
            except Exception:
                log.exception("metadata listener %r failed on %s at offset %d",
                              listener, type(record).__name__, offset)

    def _apply_UserScramCredentialRecord(self, r: mrec.UserScramCredentialRecord) -> None:
        self.scram_credentials[(r.name, r.mechanism)] = r

    def _apply_RemoveUserScramCredentialRecord(self, r: mrec.RemoveUserScramCredentialRecord) -> None:
        self.scram_credentials.pop((r.name, r.mechanism), None)

    def _apply_ClientQuotaRecord(self, r: mrec.ClientQuotaRecord) -> None:
        entity = quota_entity((e.entity_type, e.entity_name) for e in r.entity)
        if r.remove:
            values = self.client_quotas.get(entity)
            if values is not None:
                values.pop(r.key, None)
                if not values:
                    del self.client_quotas[entity]
        else:
            self.client_quotas.setdefault(entity, {})[r.key] = r.value

    def _apply_AccessControlEntryRecord(self, r: mrec.AccessControlEntryRecord) -> None:
        self.acls[r.id] = r

    def _apply_RemoveAccessControlEntryRecord(self, r: mrec.RemoveAccessControlEntryRecord) -> None:
        self.acls.pop(r.id, None)

    def _apply_RegisterControllerRecord(self, r: mrec.RegisterControllerRecord) -> None:
        self.controllers[r.controller_id] = r

    def _apply_UnregisterControllerRecord(self, r: mrec.UnregisterControllerRecord) -> None:
        self.controllers.pop(r.controller_id, None)

    def _apply_DelegationTokenRecord(self, r: mrec.DelegationTokenRecord) -> None:
        self.delegation_tokens[r.token_id] = r

    def _apply_RemoveDelegationTokenRecord(self, r: mrec.RemoveDelegationTokenRecord) -> None:
        self.delegation_tokens.pop(r.token_id, None)

    def apply_kraft_version(self, level: int, offset: int) -> None:
        self.kraft_version = level
        self.offset = offset

    def _apply_TopicRecord(self, r: mrec.TopicRecord) -> None:
        if r.name == METADATA_TOPIC:
            log.warning("ignoring a topic named %s (id %s) in the metadata log: that name is the metadata "
                        "log's own and cannot be a topic", r.name, r.topic_id)
            return
        t = TopicImage(r.name, r.topic_id)
        self.topics[r.name] = t
        self.topics_by_id[r.topic_id] = t

    def _apply_PartitionRecord(self, r: mrec.PartitionRecord) -> None:
        t = self.topics_by_id.get(r.topic_id)
        if t is None:  # a topic this image ignored (above)
            return
        t.partitions[r.partition_id] = PartitionState(
            r.topic_id, r.partition_id, list(r.replicas), list(r.isr), r.leader, r.leader_epoch,
            r.partition_epoch,
            elr=list(r.eligible_leader_replicas or ()), last_known_elr=list(r.last_known_elr or ()),
            removing_replicas=list(r.removing_replicas or ()), adding_replicas=list(r.adding_replicas or ()),
            leader_recovery_state=r.leader_recovery_state, directories=list(r.directories or ()),
        )

    def _apply_PartitionChangeRecord(self, r: mrec.PartitionChangeRecord) -> None:
        t = self.topics_by_id.get(r.topic_id)
        if t is None:
            return
        p = t.partitions.get(r.partition_id)
        if p is None:
            log.warning("ignoring a PartitionChangeRecord for unknown partition %s-%d", t.name, r.partition_id)
            return
        apply_partition_change(p, r)

    def _apply_ClearElrRecord(self, r: mrec.ClearElrRecord) -> None:
        """Kafka's TopicsDelta/ReplicationControlManager replay of a ClearElrRecord (written when
        ``min.insync.replicas`` changes): every partition of the named topic, or of all topics when
        the name is empty, that has an ELR or a last known ELR loses both, as a PartitionChangeRecord
        setting them empty would (its partition epoch goes up; the others are unchanged)."""
        if r.topic_name:
            t = self.topics.get(r.topic_name)
            if t is None:
                # Kafka fails the replay here; a log written by Kafka never holds such a record
                log.warning("ignoring %s: no topic of that name", r)
                return
            topics: Iterable[TopicImage] = (t,)
        else:
            topics = self.topics.values()
        for topic in topics:
            for p in topic.partitions.values():
                if p.elr or p.last_known_elr:
                    p.elr = []
                    p.last_known_elr = []
                    p.partition_epoch += 1

    def _apply_RemoveTopicRecord(self, r: mrec.RemoveTopicRecord) -> None:
        t = self.topics_by_id.pop(r.topic_id, None)
        if t is not None:
            self.topics.pop(t.name, None)

    def _apply_ConfigRecord(self, r: mrec.ConfigRecord) -> None:
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
            if not target and r.resource_type != RESOURCE_TOPIC:
                # as Kafka's ConfigurationsDelta.apply: a resource left with no config is no more
                (self.broker_configs if r.resource_type == RESOURCE_BROKER else self.group_configs).pop(
                    r.resource_name, None)
        else:
            target[r.name] = r.value

    def _apply_FeatureLevelRecord(self, r: mrec.FeatureLevelRecord) -> None:
        if r.name == "kraft.version":
            return  # as Kafka's FeaturesDelta (KAFKA-18979): kraft.version lives in the Raft layer
        if r.feature_level == 0:
            self.features.pop(r.name, None)
        else:
            self.features[r.name] = r.feature_level

    def _apply_ProducerIdsRecord(self, r: mrec.ProducerIdsRecord) -> None:
        self.next_producer_id = r.next_producer_id

    def _apply_RegisterBrokerRecord(self, r: mrec.RegisterBrokerRecord) -> None:
        self.brokers[r.broker_id] = BrokerRegistration(
            r.broker_id,
            r.incarnation_id,
            r.broker_epoch,
            {e.name: (e.host, e.port, e.security_protocol) for e in r.end_points},
            r.rack,
            r.fenced,
            {f.name: (f.min_supported_version, f.max_supported_version) for f in r.features},
            in_controlled_shutdown=r.in_controlled_shutdown,
            log_dirs=list(r.log_dirs or ()),
            cordoned_log_dirs=None if r.cordoned_log_dirs is None else list(r.cordoned_log_dirs),
            register_offset=self.offset,
        )

    def _registration(self, record: object, broker_id: int, epoch: int) -> BrokerRegistration | None:
        b = self.brokers.get(broker_id)
        if b is None or b.epoch != epoch:
            # Kafka's ClusterControlManager fails the replay here; a log written by Kafka never
            # holds such a record, so it is skipped, loudly.
            log.warning("ignoring %s: no registration of broker %d at epoch %d", record, broker_id, epoch)
            return None
        return b

    def _apply_UnfenceBrokerRecord(self, r: mrec.UnfenceBrokerRecord) -> None:
        b = self._registration(r, r.id, r.epoch)
        if b is not None:
            b.fenced = False

    def _apply_FenceBrokerRecord(self, r: mrec.FenceBrokerRecord) -> None:
        b = self._registration(r, r.id, r.epoch)
        if b is not None:
            b.fenced = True

    def _apply_BrokerRegistrationChangeRecord(self, r: mrec.BrokerRegistrationChangeRecord) -> None:
        if r.fenced not in (FENCING_NONE, FENCING_FENCE, FENCING_UNFENCE) or \
                r.in_controlled_shutdown not in (SHUTDOWN_CHANGE_NONE, SHUTDOWN_CHANGE_IN_CONTROLLED_SHUTDOWN):
            log.warning("ignoring %s: unknown fenced or inControlledShutdown value", r)
            return
        b = self._registration(r, r.broker_id, r.broker_epoch)
        if b is None:
            return
        if r.fenced == FENCING_FENCE:
            b.fenced = True
        elif r.fenced == FENCING_UNFENCE:
            b.fenced = False
        if r.in_controlled_shutdown == SHUTDOWN_CHANGE_IN_CONTROLLED_SHUTDOWN:
            b.in_controlled_shutdown = True
        if r.log_dirs:
            b.log_dirs = list(r.log_dirs)
        if r.cordoned_log_dirs is not None:  # null: no change
            b.cordoned_log_dirs = list(r.cordoned_log_dirs)

    def _apply_UnregisterBrokerRecord(self, r: mrec.UnregisterBrokerRecord) -> None:
        b = self._registration(r, r.broker_id, r.broker_epoch)
        if b is not None:
            del self.brokers[r.broker_id]
