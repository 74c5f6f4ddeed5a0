"""Partition leadership and ISR changes, as the leader/ISR parts of Kafka 4.4's
``ReplicationControlManager`` (metadata/.../controller/), sans IO; each partition's next state comes
from ``PartitionChangeBuilder`` (``kbroker/controller/partition_change.py``).

Everything here reads a :class:`MetadataImage` and returns ``PartitionChangeRecord``s; nothing is
applied. The controller commits the records, then the image applies them (the leader epoch moves
when a record sets the leader field, the partition epoch on every record: ``image.py``).

Epoch rules (Kafka >= 3.6, metadata.version >= 12): a change of leader, and a reassignment that
drops a replica, bump the leader epoch (the record carries the leader field); any other change
(ISR shrink or expansion, ELR, recovery state) bumps only the partition epoch. A build that
changes nothing returns no record.

Eligible leader replicas (KIP-966) follow Kafka when the ``eligible.leader.replicas.version``
feature is finalized at >= 1 (the default for new clusters): when the ISR falls below the
effective ``min.insync.replicas`` the replicas leaving it join the ELR and may be elected
(cleanly) once the ISR is empty; a partition that loses every leader remembers its last leader in
``LastKnownElr``. A replica whose log dir is offline is never elected (``directories.has_online_dir``,
Kafka's LeaderAcceptor); offline dirs and directory assignment are in ``dir_control``.

Partition reassignment (AlterPartitionReassignments / ListPartitionReassignments) is in
``kbroker/controller/reassignment.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kbroker.config import BROKER_DEFAULTS
from kbroker.controller.partition_change import (
    RECOVERED,
    RECOVERING,
    Election,
    PartitionChangeBuilder,
    merge,
)
from kbroker.metadata.directories import default_dir_provider, has_online_dir
from kbroker.metadata.image import (
    LEADER_UNCHANGED,
    NO_LEADER,
    MetadataImage,
    PartitionState,
    TopicImage,
)
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest, AlterPartitionResponse
from kbroker_protocol.messages.metadata_records import PartitionChangeRecord

log = logging.getLogger(__name__)

ELR_FEATURE = "eligible.leader.replicas.version"
MIN_ISR_KEY = "min.insync.replicas"
UNCLEAN_KEY = "unclean.leader.election.enable"

# -- cluster-wide reads ---------------------------------------------------------------------


def is_active(image: MetadataImage, broker_id: int) -> bool:
    """Registered, unfenced and not in controlled shutdown (ClusterControlManager.isActive)."""
    reg = image.brokers.get(broker_id)
    return reg is not None and not reg.fenced and not reg.in_controlled_shutdown


def leader_acceptor(image: MetadataImage, p: PartitionState) -> Callable[[int], bool]:
    """Kafka's LeaderAcceptor: an active broker whose replica of ``p`` is in an online log dir."""
    return lambda r: is_active(image, r) and has_online_dir(image, r, p)


def elr_enabled(image: MetadataImage) -> bool:
    return image.features.get(ELR_FEATURE, 0) >= 1


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() == "true"


@dataclass(slots=True)
class ReplicationSettings:
    """The controller's cluster defaults for what topics may override."""

    min_insync_replicas: int = BROKER_DEFAULTS["min.insync.replicas"]
    unclean_leader_election_enable: bool = BROKER_DEFAULTS["unclean.leader.election.enable"]

    # Cluster-wide dynamic configs are the broker resource named "" (kafka-configs --entity-default).

    def min_isr(self, image: MetadataImage, topic: TopicImage) -> int:
        """Kafka's getTopicEffectiveMinIsr: the topic's (or cluster's) min.insync.replicas, at most
        the replication factor."""
        value = topic.configs.get(MIN_ISR_KEY) or image.broker_configs.get("", {}).get(MIN_ISR_KEY)
        try:
            min_isr = int(value) if value is not None else self.min_insync_replicas
        except ValueError:
            min_isr = self.min_insync_replicas
        first = topic.partitions.get(0) or next(iter(topic.partitions.values()), None)
        rf = len(first.replicas) if first is not None else min_isr
        return min(min_isr, rf)

    def unclean(self, image: MetadataImage, topic: TopicImage) -> bool:
        topic_value = _bool(topic.configs.get(UNCLEAN_KEY))
        if topic_value is not None:
            return topic_value
        cluster_value = _bool(image.broker_configs.get("", {}).get(UNCLEAN_KEY))
        return self.unclean_leader_election_enable if cluster_value is None else cluster_value


def _partitions(image: MetadataImage, pred: Callable[[PartitionState], bool]
                ) -> Iterator[tuple[TopicImage, PartitionState]]:
    for topic in image.topics_by_id.values():
        for index in sorted(topic.partitions):
            p = topic.partitions[index]
            if pred(p):
                yield topic, p


def partitions_with_broker_in_isr(image: MetadataImage, broker_id: int) -> list[tuple[TopicImage, PartitionState]]:
    return list(_partitions(image, lambda p: broker_id in p.isr))


def partitions_with_broker_in_elr(image: MetadataImage, broker_id: int) -> list[tuple[TopicImage, PartitionState]]:
    return list(_partitions(image, lambda p: broker_id in p.elr))


def partitions_with_no_leader(image: MetadataImage) -> list[tuple[TopicImage, PartitionState]]:
    return list(_partitions(image, lambda p: p.leader == NO_LEADER))


def has_leaderships(image: MetadataImage, broker_id: int) -> bool:
    return any(True for _ in _partitions(image, lambda p: p.leader == broker_id))


def generate_leader_and_isr_updates(image: MetadataImage, settings: ReplicationSettings, broker_to_remove: int,
                                    broker_to_add: int, broker_with_unclean_shutdown: int,
                                    partitions: Iterable[tuple[TopicImage, PartitionState]],
                                    records: list[MetadataRecord], context: str = "") -> None:
    """Kafka's generateLeaderAndIsrUpdates: take ``broker_to_remove`` out of each partition's ISR
    (and never elect it), treat ``broker_to_add`` as electable even though the image still shows it
    fenced, and keep each partition online if a leader may be found."""
    elr = elr_enabled(image)
    before = len(records)

    for topic, p in partitions:
        def acceptable(r: int, p: PartitionState = p) -> bool:
            return (r not in (broker_to_remove, broker_with_unclean_shutdown)
                    and (r == broker_to_add or is_active(image, r)) and has_online_dir(image, r, p))

        builder = PartitionChangeBuilder(p, topic.topic_id, p.partition, acceptable,
                                         settings.min_isr(image, topic), elr,
                                         default_dir=default_dir_provider(image))
        if settings.unclean(image, topic):
            builder.election = Election.UNCLEAN
        if broker_with_unclean_shutdown != NO_LEADER:
            builder.unclean_shutdown_replicas = [broker_with_unclean_shutdown]
        builder.target_isr = [r for r in p.isr if r not in (broker_to_remove, broker_with_unclean_shutdown)]
        record = builder.build()
        if record is not None:
            records.append(record)
    if len(records) != before:
        log.info("%s: changing %d partition(s)", context or "leader/ISR update", len(records) - before)


# -- AlterPartition (56) --------------------------------------------------------------------


def _valid_isr(replicas: list[int], isr: list[int]) -> bool:
    """Kafka's Replicas.validateIsr: no negative or duplicate ids, all among the replicas."""
    if not isr:
        return True
    if any(r < 0 for r in isr) or len(set(isr)) != len(isr):
        return False
    return set(isr) <= set(replicas)


def _ineligible(image: MetadataImage, states: list[tuple[int, int]]) -> list[str]:
    out = []
    for broker_id, broker_epoch in states:
        reg = image.brokers.get(broker_id)
        if reg is None:
            out.append(f"{broker_id} (not registered)")
        elif reg.in_controlled_shutdown:
            out.append(f"{broker_id} (shutting down)")
        elif reg.fenced:
            out.append(f"{broker_id} (fenced)")
        elif broker_epoch != -1 and reg.epoch != broker_epoch:
            out.append(f"{broker_id} (broker epoch mismatch: requested={broker_epoch} VS expected={reg.epoch})")
    return out


def _validate(image: MetadataImage, broker_id: int, topic: TopicImage, index: int, p: PartitionState | None,
              data: AlterPartitionRequest.TopicData.PartitionData, new_isr: list[tuple[int, int]]) -> ErrorCode:
    if p is None:
        log.info("Rejecting AlterPartition request for unknown partition %s-%d.", topic.name, index)
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # An epoch above ours: the requester saw a newer controller; it should look for it.
    if data.leader_epoch > p.leader_epoch or data.partition_epoch > p.partition_epoch:
        return ErrorCode.NOT_CONTROLLER
    if data.leader_epoch < p.leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if broker_id != p.leader:
        log.info("Rejecting AlterPartition request from node %d for %s-%d because the current leader is %d.",
                 broker_id, topic.name, index, p.leader)
        return ErrorCode.INVALID_REQUEST
    if data.partition_epoch < p.partition_epoch:
        log.info("Rejecting AlterPartition request from node %d for %s-%d because the current partition epoch "
                 "is %d, not %d.", broker_id, topic.name, index, p.partition_epoch, data.partition_epoch)
        return ErrorCode.INVALID_UPDATE_VERSION
    isr = [b for b, _ in new_isr]
    if not _valid_isr(p.replicas, isr):
        log.error("Rejecting AlterPartition request from node %d for %s-%d because it specified an invalid ISR %s.",
                  broker_id, topic.name, index, isr)
        return ErrorCode.INVALID_REQUEST
    if p.leader not in isr:
        log.error("Rejecting AlterPartition request from node %d for %s-%d because it specified an invalid ISR "
                  "that doesn't include itself.", broker_id, topic.name, index)
        return ErrorCode.INVALID_REQUEST
    if data.leader_recovery_state == RECOVERING and len(isr) > 1:
        return ErrorCode.INVALID_REQUEST
    if p.leader_recovery_state == RECOVERED and data.leader_recovery_state == RECOVERING:
        return ErrorCode.INVALID_REQUEST
    ineligible = _ineligible(image, new_isr)
    if ineligible:
        log.info("Rejecting AlterPartition request from node %d for %s-%d because it specified ineligible "
                 "replicas %s in the new ISR.", broker_id, topic.name, index, ineligible)
        return ErrorCode.INELIGIBLE_REPLICA
    return ErrorCode.NONE


def alter_partition(image: MetadataImage, request: AlterPartitionRequest, api_version: int,
                    settings: ReplicationSettings | None = None) -> tuple[AlterPartitionResponse, list[PartitionChangeRecord]]:
    """AlterPartition as Kafka's ReplicationControlManager.alterPartition: (response, records).

    A broker epoch that does not match the registration fails the whole request with
    STALE_BROKER_EPOCH; each partition is then checked on its own (see ``_validate``)."""
    settings = settings or ReplicationSettings()
    Topic = AlterPartitionResponse.TopicData
    Part = AlterPartitionResponse.TopicData.PartitionData
    reg = image.brokers.get(request.broker_id)
    if reg is None or reg.epoch != request.broker_epoch:
        return AlterPartitionResponse(error_code=ErrorCode.STALE_BROKER_EPOCH, topics=[]), []
    response = AlterPartitionResponse(error_code=ErrorCode.NONE, topics=[])
    records: list[PartitionChangeRecord] = []
    pending: dict[tuple[uuid.UUID, int], PartitionState] = {}
    for t in request.topics:
        out = Topic(topic_id=t.topic_id, partitions=[])
        response.topics.append(out)
        topic = image.topics_by_id.get(t.topic_id) if t.topic_id is not None else None
        if topic is None or t.topic_id == uuid.UUID(int=0):
            for d in t.partitions:
                out.partitions.append(Part(partition_index=d.partition_index, error_code=ErrorCode.UNKNOWN_TOPIC_ID))
            log.info("Rejecting AlterPartition request for unknown topic ID %s.", t.topic_id)
            continue
        for d in t.partitions:
            index = d.partition_index
            if api_version < 3:
                new_isr = [(b, -1) for b in d.new_isr]
            else:
                new_isr = [(s.broker_id, s.broker_epoch) for s in d.new_isr_with_epochs]
            p = pending.get((topic.topic_id, index)) or topic.partitions.get(index)
            error = _validate(image, request.broker_id, topic, index, p, d, new_isr)
            if error != ErrorCode.NONE:
                out.partitions.append(Part(partition_index=index, error_code=error))
                continue
            assert p is not None
            builder = PartitionChangeBuilder(p, topic.topic_id, index, leader_acceptor(image, p),
                                             settings.min_isr(image, topic), elr_enabled(image),
                                             default_dir=default_dir_provider(image))
            if settings.unclean(image, topic):
                builder.election = Election.UNCLEAN
            builder.target_isr = [b for b, _ in new_isr]
            builder.target_leader_recovery_state = d.leader_recovery_state
            record = builder.build()
            if record is not None:
                records.append(record)
                p = merge(p, record)
                pending[(topic.topic_id, index)] = p
                if record.leader not in (request.broker_id, LEADER_UNCHANGED):
                    # Only a completed reassignment moves the leader here: the leader must
                    # refresh its metadata (the change is written all the same).
                    out.partitions.append(Part(partition_index=index, error_code=ErrorCode.NEW_LEADER_ELECTED))
                    continue
            out.partitions.append(Part(
                partition_index=index, error_code=ErrorCode.NONE, leader_id=p.leader, leader_epoch=p.leader_epoch,
                isr=list(p.isr), leader_recovery_state=p.leader_recovery_state, partition_epoch=p.partition_epoch,
            ))
    return response, records


# -- elections ----------------------------------------------------------------------------


def preferred_leader_elections(image: MetadataImage, settings: ReplicationSettings | None = None,
                               max_elections: int = 1000) -> list[PartitionChangeRecord]:
    """Kafka's maybeBalancePartitionLeaders (``auto.leader.rebalance.enable``, Kafka's default):
    a preferred election for each partition not led by its first replica, at most
    ``max_elections`` records (the controller calls it again at once when it got that many). The
    controller runs it every ``leader.imbalance.check.interval.seconds``."""
    settings = settings or ReplicationSettings()
    records: list[PartitionChangeRecord] = []
    elr = elr_enabled(image)
    for topic, p in _partitions(image, lambda p: bool(p.replicas) and p.leader != p.replicas[0]):
        if len(records) >= max_elections:
            break
        builder = PartitionChangeBuilder(p, topic.topic_id, p.partition, leader_acceptor(image, p),
                                         settings.min_isr(image, topic), elr,
                                         default_dir=default_dir_provider(image))
        builder.election = Election.PREFERRED
        record = builder.build()
        if record is not None:
            records.append(record)
    return records


ELECTION_PREFERRED, ELECTION_UNCLEAN = 0, 1  # ElectLeaders' ElectionType


def elect_leader(image: MetadataImage, topic_name: str, partition_id: int, election_type: int,
                 records: list[PartitionChangeRecord], settings: ReplicationSettings | None = None) -> tuple[ErrorCode, str | None]:
    """One partition of ElectLeaders, as Kafka's ReplicationControlManager.electLeader: appends the
    PartitionChangeRecord to ``records`` and answers (error, message)."""
    settings = settings or ReplicationSettings()
    topic = image.topics.get(topic_name)
    if topic is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {topic_name}"
    p = topic.partitions.get(partition_id)
    if p is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic_name}-{partition_id}"
    has_preferred = bool(p.replicas) and p.leader == p.replicas[0]
    if (election_type == ELECTION_PREFERRED and has_preferred) or \
            (election_type == ELECTION_UNCLEAN and p.leader != NO_LEADER):
        return ErrorCode.ELECTION_NOT_NEEDED, ErrorCode.ELECTION_NOT_NEEDED.message
    builder = PartitionChangeBuilder(p, topic.topic_id, partition_id, leader_acceptor(image, p),
                                     settings.min_isr(image, topic), elr_enabled(image),
                                     default_dir=default_dir_provider(image))
    builder.election = Election.UNCLEAN if election_type == ELECTION_UNCLEAN else Election.PREFERRED
    record = builder.build()
    if record is None:
        error = (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE if election_type == ELECTION_PREFERRED
                 else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)
        return error, error.message
    records.append(record)
    return ErrorCode.NONE, None


def unclean_leader_elections(image: MetadataImage, settings: ReplicationSettings | None = None,
                             max_elections: int = 1000) -> list[PartitionChangeRecord]:
    """Kafka's maybeElectUncleanLeaders: an unclean election for each leaderless partition of a
    topic with ``unclean.leader.election.enable`` (the controller runs it periodically, so turning
    the setting on brings offline partitions back)."""
    settings = settings or ReplicationSettings()
    records: list[PartitionChangeRecord] = []
    for topic, p in _partitions(image, lambda p: p.leader == NO_LEADER):
        if len(records) >= max_elections:
            break
        if not settings.unclean(image, topic):
            continue
        error, _ = elect_leader(image, topic.name, p.partition, ELECTION_UNCLEAN, records, settings)
        if error == ErrorCode.NONE:
            log.info("Triggering unclean leader election for offline partition %s-%d.", topic.name, p.partition)
        else:
            log.warning("Cannot trigger unclean leader election for offline partition %s-%d: %s.", topic.name,
                        p.partition, error.name)
    return records
