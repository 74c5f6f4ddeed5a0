"""Partition reassignment in the controller (AlterPartitionReassignments 45,
ListPartitionReassignments 46), sans IO, as Kafka 4.4's
``ReplicationControlManager.alterPartitionReassignments`` and ``listPartitionReassignments``:
``PartitionReassignmentReplicas`` (the replicas while a move runs) and
``PartitionReassignmentRevert`` (a cancel). The records come from ``PartitionChangeBuilder``
(``kbroker/controller/partition_change.py``), which completes a move once the ISR holds every
adding replica (``_complete_reassignment_if_needed``); the leader/ISR rules are in
``kbroker/controller/replication_control.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kbroker.controller.partition_change import Election, PartitionChangeBuilder
from kbroker.controller.replication_control import ReplicationSettings, elr_enabled, leader_acceptor
from kbroker.controller.user_op_limits import MAX_RECORDS_PER_USER_OP, BatchTooLarge
from kbroker.metadata.directories import default_dir_provider, has_uncordoned_dirs
from kbroker.metadata.image import MetadataImage, PartitionState, TopicImage
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)
from kbroker_protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)
from kbroker_protocol.messages.metadata_records import PartitionChangeRecord

# (Kafka logs these from ReplicationControlManager; the logger keeps the name it had there.)
log = logging.getLogger("kbroker.controller.replication_control")


# -- partition reassignment (AlterPartitionReassignments 45, ListPartitionReassignments 46) -----


class ReassignmentError(Exception):
    """One partition's reassignment refused: Kafka's ApiException, as ``ApiError.fromThrowable``
    turns it into the partition's error code and message."""

    def __init__(self, code: ErrorCode, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_reassigning(p: PartitionState) -> bool:
    """Kafka's PartitionReassignmentReplicas.isReassignmentInProgress."""
    return bool(p.removing_replicas) or bool(p.adding_replicas)


@dataclass(slots=True)
class ReassignmentReplicas:
    """Kafka's PartitionReassignmentReplicas: the replicas to remove and to add (each sorted) and
    the replica list while the reassignment runs (the target, then the removed ones)."""

    removing: list[int]
    adding: list[int]
    replicas: list[int]

    @classmethod
    def of(cls, current: list[int], target: list[int]) -> ReassignmentReplicas:
        removing = sorted(set(current) - set(target))
        adding = sorted(set(target) - set(current))
        return cls(removing, adding, [*target, *removing])

    def original_replicas(self) -> list[int]:
        return [r for r in self.replicas if r not in self.adding]


@dataclass(slots=True)
class ReassignmentRevert:
    """Kafka's PartitionReassignmentRevert: the replicas and ISR a cancelled reassignment goes
    back to (the adding replicas leave, the removing ones stay). When the ISR held only adding
    replicas the first original replica becomes the ISR: an unclean election."""

    replicas: list[int]
    isr: list[int]
    unclean: bool

    @classmethod
    def of(cls, p: PartitionState) -> ReassignmentRevert:
        ongoing = ReassignmentReplicas(list(p.removing_replicas), list(p.adding_replicas), list(p.replicas))
        replicas = ongoing.original_replicas()
        isr = [r for r in p.isr if r not in ongoing.adding]
        if isr:
            return cls(replicas, isr, False)
        if not replicas:  # unreachable: the partition had replicas before the reassignment
            raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                    "Invalid replica assignment: addingReplicas contains all replicas.")
        return cls(replicas, [replicas[0]], True)


def validate_manual_assignment(image: MetadataImage, replicas: list[int], replication_factor: int | None = None
                               ) -> None:
    """Kafka's ReplicationControlManager.validateManualPartitionAssignment; raises
    ReassignmentError (INVALID_REPLICA_ASSIGNMENT) with Kafka's messages."""
    if not replicas:
        raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                "The manual partition assignment includes an empty replica list.")
    previous = None
    for broker_id in sorted(replicas):
        if broker_id not in image.brokers:
            raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                    f"The manual partition assignment includes broker {broker_id}, but no such "
                                    "broker is registered.")
        if not has_uncordoned_dirs(image.brokers[broker_id]):
            raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                    f"The manual partition assignment includes broker {broker_id}, but all its log "
                                    "directories are cordoned.")
        if broker_id == previous:
            raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                    f"The manual partition assignment includes the broker {broker_id} more than "
                                    "once.")
        previous = broker_id
    if replication_factor is not None and len(replicas) != replication_factor:
        raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                f"The manual partition assignment includes a partition with {len(replicas)} "
                                "replica(s), but this is not consistent with previous partitions, which have "
                                f"{replication_factor} replica(s).")


def _validate_replication_factor_unchanged(p: PartitionState, target: list[int]) -> None:
    """Kafka's validatePartitionReplicationFactorUnchanged (KIP-860)."""
    if is_reassigning(p):
        current = len((set(p.replicas) | set(p.adding_replicas)) - set(p.removing_replicas))
    else:
        current = len(p.replicas)
    if current != len(target):
        raise ReassignmentError(ErrorCode.INVALID_REPLICATION_FACTOR,
                                f"The replication factor is changed from {current} to {len(target)}")


def _reassignment_builder(image: MetadataImage, settings: ReplicationSettings, topic: TopicImage,
                          p: PartitionState) -> PartitionChangeBuilder:
    return PartitionChangeBuilder(p, topic.topic_id, p.partition, leader_acceptor(image, p),
                                  settings.min_isr(image, topic), elr_enabled(image),
                                  default_dir=default_dir_provider(image))


def cancel_partition_reassignment(image: MetadataImage, settings: ReplicationSettings, topic: TopicImage,
                                  p: PartitionState) -> PartitionChangeRecord | None:
    """Kafka's cancelPartitionReassignment: back to the original replicas (a null target)."""
    if not is_reassigning(p):
        # Kafka raises it with the error's default message, which ApiError.fromThrowable leaves out
        raise ReassignmentError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
    revert = ReassignmentRevert.of(p)
    unclean = settings.unclean(image, topic)
    if revert.unclean and not unclean:
        raise ReassignmentError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                f"Unable to revert partition assignment for {topic.name}:{p.partition} because "
                                "it would require an unclean leader election.")
    builder = _reassignment_builder(image, settings, topic, p)
    if unclean:
        builder.election = Election.UNCLEAN
    builder.target_isr = list(revert.isr)
    builder.target_replicas = list(revert.replicas)
    builder.target_removing = []
    builder.target_adding = []
    return builder.build()


def change_partition_reassignment(image: MetadataImage, settings: ReplicationSettings, topic: TopicImage,
                                  p: PartitionState, target: list[int], allow_rf_change: bool
                                  ) -> PartitionChangeRecord | None:
    """Kafka's changePartitionReassignment. The first record makes the replicas the union (target
    then removed ones) with adding/removing set; the builder completes the reassignment at once
    when the ISR already allows it (e.g. a reordering), else AlterPartition does once every adding
    replica joined the ISR (see ``PartitionChangeBuilder._complete_reassignment_if_needed``)."""
    validate_manual_assignment(image, target)
    if not allow_rf_change:
        _validate_replication_factor_unchanged(p, target)
    reassignment = ReassignmentReplicas.of(list(p.replicas), target)
    builder = _reassignment_builder(image, settings, topic, p)
    if reassignment.replicas != list(p.replicas):
        builder.target_replicas = list(reassignment.replicas)
    if reassignment.removing:
        builder.target_removing = list(reassignment.removing)
    if reassignment.adding:
        builder.target_adding = list(reassignment.adding)
    return builder.build()


def alter_partition_reassignments(image: MetadataImage, request: AlterPartitionReassignmentsRequest,
                                  settings: ReplicationSettings | None = None,
                                  max_records: int = MAX_RECORDS_PER_USER_OP,
                                  ) -> tuple[AlterPartitionReassignmentsResponse, list[PartitionChangeRecord]]:
    """AlterPartitionReassignments as Kafka's ReplicationControlManager.alterPartitionReassignments:
    (response, records). Each partition succeeds or fails on its own; a null replica list cancels.
    Past ``max_records`` records (Kafka's BoundedList, caught per partition) a partition needing a
    record gets UNKNOWN_SERVER_ERROR without a message."""
    R = AlterPartitionReassignmentsResponse
    settings = settings or ReplicationSettings()
    allow_rf_change = bool(request.allow_replication_factor_change)
    response = R(throttle_time_ms=0, allow_replication_factor_change=allow_rf_change, error_code=ErrorCode.NONE,
                 error_message=None, responses=[])
    records: list[PartitionChangeRecord] = []
    done = total = 0
    for t in request.topics:
        out = R.ReassignableTopicResponse(name=t.name, partitions=[])
        response.responses.append(out)
        for target in t.partitions:
            code, message = ErrorCode.NONE, None
            try:
                record = _alter_partition_reassignment(image, settings, t.name, target, allow_rf_change)
                if record is not None:
                    if len(records) >= max_records:
                        raise BatchTooLarge(max_records)
                    records.append(record)
                done += 1
            except ReassignmentError as exc:
                log.info("Unable to alter partition reassignment for %s:%d because of an %s error: %s", t.name,
                         target.partition_index, exc.code.name, exc.message)
                code, message = exc.code, exc.message
            except BatchTooLarge as exc:
                log.info("Unable to alter partition reassignment for %s:%d: %s", t.name, target.partition_index, exc)
                code = ErrorCode.UNKNOWN_SERVER_ERROR
            total += 1
            out.partitions.append(R.ReassignableTopicResponse.ReassignablePartitionResponse(
                partition_index=target.partition_index, error_code=code, error_message=message))
    log.info("Successfully altered %d out of %d partition reassignment(s).", done, total)
    return response, records


def _alter_partition_reassignment(image: MetadataImage, settings: ReplicationSettings, name: str,
                                  target: AlterPartitionReassignmentsRequest.ReassignableTopic.ReassignablePartition,
                                  allow_rf_change: bool) -> PartitionChangeRecord | None:
    topic = image.topics.get(name)
    if topic is None:
        raise ReassignmentError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {name}.")
    p = topic.partitions.get(target.partition_index)
    if p is None:
        raise ReassignmentError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                f"Unable to find partition {name}:{target.partition_index}.")
    if target.replicas is None:
        return cancel_partition_reassignment(image, settings, topic, p)
    return change_partition_reassignment(image, settings, topic, p, list(target.replicas), allow_rf_change)


def list_partition_reassignments(
        image: MetadataImage,
        topics: list[ListPartitionReassignmentsRequest.ListPartitionReassignmentsTopics] | None,
) -> ListPartitionReassignmentsResponse:
    """ListPartitionReassignments as Kafka's listPartitionReassignments: every reassigning
    partition (``topics`` null), or those of the named partitions that are reassigning; unknown
    topics and partitions are left out."""
    R = ListPartitionReassignmentsResponse
    response = R(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, topics=[])
    if topics is None:
        wanted = [(t, sorted(t.partitions)) for _, t in sorted(image.topics.items())]
    else:
        wanted = [(image.topics[t.name], list(t.partition_indexes)) for t in topics if t.name in image.topics]
    for topic, indexes in wanted:
        out = R.OngoingTopicReassignment(name=topic.name, partitions=[])
        for index in indexes:
            p = topic.partitions.get(index)
            if p is None or not is_reassigning(p):
                continue
            out.partitions.append(R.OngoingTopicReassignment.OngoingPartitionReassignment(
                partition_index=index, replicas=list(p.replicas), adding_replicas=list(p.adding_replicas),
                removing_replicas=list(p.removing_replicas)))
        if out.partitions:
            response.topics.append(out)
    return response
