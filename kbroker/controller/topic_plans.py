"""Topic creation and partition addition as the controller plans them: Kafka's checks on a new
topic's name, partitions, replication and manual assignment (ReplicationControlManager's
createTopic and createPartitions, in Kafka's order, with Kafka's codes and messages), and the
records that make them, from the metadata image alone (``QuorumController.plan_topic`` and
``plan_partitions`` call these).

Partitions without a manual assignment are placed by Kafka's striped, rack-aware placer
(``placement.place_replicas``); a manual assignment is checked as Kafka's
validateManualPartitionAssignment (``reassignment.validate_manual_assignment``, which reassignments
use too). A new partition's ISR is its active replicas (unfenced, not in controlled shutdown), its
leader the first of them.

``plan_topic`` takes an optional ``rng`` for the placer (tests seed it; the controller's is random,
as Kafka's).
"""

from __future__ import annotations

import random
import uuid

from kbroker.controller.errors import ControllerError
from kbroker.controller.placement import (
    PlacementError,
    new_partition_record,
    partition_records,
    place_replicas,
)
from kbroker.controller.reassignment import ReassignmentError, validate_manual_assignment
from kbroker.controller.replication_control import is_active
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import RESOURCE_TOPIC, MetadataImage
from kbroker.metadata.new_topic import NewTopic
from kbroker_protocol.errors import ErrorCode

# Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH: the partitions one request may add.
# It also keeps one commit's metadata batch within the metadata log's max.message.bytes.
MAX_PARTITIONS_PER_REQUEST = 10_000
_TOPIC_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

def validate_topic_name(name: str | None) -> None:
    if not name:
        raise ControllerError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise ControllerError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or \"..\"")
    if len(name) > 249:
        raise ControllerError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name is illegal, it can't be longer than 249 characters, topic name: {name}",
        )
    if not set(name) <= _TOPIC_NAME_CHARS:
        raise ControllerError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, "
            "'.', '_' and '-'",
        )


def _manual_assignment(image: MetadataImage, partition_id: int, replicas: list[int], replication: int | None
                       ) -> list[int]:
    """Kafka's validateManualPartitionAssignment for one partition, then its ISR (the active
    replicas); INVALID_REPLICA_ASSIGNMENT when one fails."""
    try:
        validate_manual_assignment(image, replicas, replication)
    except ReassignmentError as exc:
        raise ControllerError(exc.code, exc.message) from None
    isr = [b for b in replicas if is_active(image, b)]
    if not isr:
        raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                              f"All brokers specified in the manual partition assignment for partition {partition_id} "
                              "are fenced or in controlled shutdown.")
    return isr


def _placed(image: MetadataImage, topic_id: uuid.UUID, start: int, count: int, replication: int,
            rng: random.Random | None) -> list[mr.PartitionRecord]:
    """``count`` partitions from ``start`` placed by the striped placer (PlacementError as Kafka's
    InvalidReplicationFactorException)."""
    return partition_records(image, topic_id, start, place_replicas(image, count, replication, rng))


def plan_topic(image: MetadataImage, topic: NewTopic, default_partitions: int, default_replication: int,
               rng: random.Random | None = None) -> list[mr.MetadataRecord]:
    """Validate ``topic`` and return the records that create it (raises ControllerError)."""
    validate_topic_name(topic.name)
    if topic.name in image.topics:
        raise ControllerError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists.")
    if topic.name != topic.name.replace(".", "_"):
        collided = [t for t in image.topics if t.replace(".", "_") == topic.name.replace(".", "_")]
        if collided:
            raise ControllerError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"Topic '{topic.name}' collides with existing topic: {collided[0]}",
            )
    topic_id = uuid.uuid4()
    partitions: list[mr.PartitionRecord]
    items = list(topic.assignments.items()) if isinstance(topic.assignments, dict) else list(topic.assignments)
    if items:
        if topic.replication_factor != -1:
            raise ControllerError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was specified, but "
                                  "replication factor was not set to -1.")
        if topic.num_partitions != -1:
            raise ControllerError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was specified, but "
                                  "numPartitions was not set to -1.")
        manual: dict[int, mr.PartitionRecord] = {}
        replication: int | None = None
        for partition_id, replicas in items:
            if partition_id in manual:
                raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                      f"Found multiple manual partition assignments for partition {partition_id}")
            isr = _manual_assignment(image, partition_id, list(replicas), replication)
            replication = len(replicas)
            manual[partition_id] = new_partition_record(image, topic_id, partition_id, list(replicas), isr)
        if any(i not in manual for i in range(len(manual))):
            raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                  "partitions should be a consecutive 0-based integer sequence")
        partitions = [manual[i] for i in range(len(manual))]
    elif topic.replication_factor < -1 or topic.replication_factor == 0:
        raise ControllerError(ErrorCode.INVALID_REPLICATION_FACTOR,
                              "Replication factor must be larger than 0, or -1 to use the default value.")
    elif topic.num_partitions < -1 or topic.num_partitions == 0:
        raise ControllerError(ErrorCode.INVALID_PARTITIONS,
                              "Number of partitions was set to an invalid non-positive value.")
    else:
        count = default_partitions if topic.num_partitions == -1 else topic.num_partitions
        replication = default_replication if topic.replication_factor == -1 else topic.replication_factor
        if count > MAX_PARTITIONS_PER_REQUEST:
            raise ControllerError(ErrorCode.INVALID_PARTITIONS, "Number of partitions is too large.")
        try:
            partitions = _placed(image, topic_id, 0, count, replication, rng)
        except PlacementError as exc:
            message = exc.message
            if not message.startswith("Unable to replicate"):  # the placer's own: Kafka prefixes it
                message = f"Unable to replicate the partition {replication} time(s): {message}"
            raise ControllerError(exc.code, message) from None
    records: list[mr.MetadataRecord] = [mr.TopicRecord(name=topic.name, topic_id=topic_id)]
    for key, value in sorted(topic.configs.items()):
        records.append(mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=topic.name, name=key,
                                       value=value))
    records.extend(partitions)
    return records


def validate_create_partitions(image: MetadataImage, name: str, count: int, assignments: list[list[int]] | None
                               ) -> None:
    """CreatePartitions' checks of the count and of the number of manual assignments, in Kafka's
    order (ReplicationControlManager.createPartitions); raises ControllerError."""
    topic = image.topic(name)
    if topic is None:
        raise ControllerError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)  # no message, as Kafka
    current = len(topic.partitions)
    if count == current:
        raise ControllerError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
    if count < current:
        raise ControllerError(ErrorCode.INVALID_PARTITIONS,
                              f"The topic {name} currently has {current} partition(s); {count} would not be "
                              "an increase.")
    additional = count - current
    if assignments is not None and len(assignments) != additional:
        raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                              f"Attempted to add {additional} additional partition(s), but only "
                              f"{len(assignments)} assignment(s) were specified.")


def plan_partitions(image: MetadataImage, name: str, count: int, assignments: list[list[int]] | None,
                    rng: random.Random | None = None) -> list[mr.PartitionRecord]:
    """Validate adding partitions to ``name`` up to ``count`` (Kafka's checks, in Kafka's order)
    and return the PartitionRecords of the new partitions (the existing ones are kept as they
    are); raises ControllerError."""
    validate_create_partitions(image, name, count, assignments)
    topic = image.topics[name]
    current = len(topic.partitions)
    if not topic.partitions:
        raise ControllerError(ErrorCode.UNKNOWN_SERVER_ERROR,
                              f"Invalid state: topic {name} appears to have no partitions.")
    replication = len(next(iter(topic.partitions.values())).replicas)
    if assignments is None:
        try:
            return _placed(image, topic.topic_id, current, count - current, replication, rng)
        except PlacementError as exc:  # the placer's message as is (Kafka's ApiError.fromThrowable)
            raise ControllerError(exc.code, exc.message) from None
    records: list[mr.PartitionRecord] = []
    for i, replicas in enumerate(assignments):
        isr = _manual_assignment(image, current + i, list(replicas), replication)
        records.append(new_partition_record(image, topic.topic_id, current + i, list(replicas), isr))
    return records
