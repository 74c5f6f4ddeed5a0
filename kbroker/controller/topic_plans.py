"""Topic creation and partition addition as the controller plans them: Kafka's checks on a new
topic's name, partitions, replication and manual assignment (ReplicationControlManager's
createTopic and createPartitions), and the records that make them, from the metadata image
alone (``QuorumController.plan_topic`` and ``plan_partitions`` call these)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from kbroker.controller import metadata_records as mr
from kbroker.controller.directories import new_partition_directories
from kbroker.controller.errors import ControllerError
from kbroker.controller.image import RESOURCE_TOPIC, MetadataImage
from kbroker.controller.placement import validate_create_partitions
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


@dataclass(slots=True)
class NewTopic:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    assignments: dict[int, list[int]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


def plan_topic(image: MetadataImage, topic: NewTopic, default_partitions: int, default_replication: int
               ) -> list[mr.MetadataRecord]:
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
    if topic.assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            raise ControllerError(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        assignments = dict(sorted(topic.assignments.items()))
        if list(assignments) != list(range(len(assignments))):
            raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                  "Partitions should be consecutive and start from 0.")
        for replicas in assignments.values():
            if not replicas:
                raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Empty replica assignment.")
            if len(set(replicas)) != len(replicas):
                raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                      "Duplicate brokers in replica assignment.")
            for b in replicas:
                if b not in image.brokers:
                    raise ControllerError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                          f"The manual partition assignment includes broker {b}, but "
                                          "no such broker is registered.")
    else:
        partitions = default_partitions if topic.num_partitions == -1 else topic.num_partitions
        replication = default_replication if topic.replication_factor == -1 else topic.replication_factor
        if partitions <= 0:
            raise ControllerError(ErrorCode.INVALID_PARTITIONS,
                                  "Number of partitions was set to an invalid non-positive value.")
        if partitions > MAX_PARTITIONS_PER_REQUEST:
            raise ControllerError(ErrorCode.INVALID_PARTITIONS, "Number of partitions is too large.")
        if replication <= 0:
            raise ControllerError(ErrorCode.INVALID_REPLICATION_FACTOR,
                                  "Replication factor must be larger than 0, or -1 to use the default value.")
        brokers = sorted(b for b, reg in image.brokers.items() if not reg.fenced)
        if replication > len(brokers):
            raise ControllerError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication} time(s): The target replication factor "
                f"of {replication} cannot be reached because only {len(brokers)} broker(s) are registered.",
            )
        assignments = {
            p: [brokers[(p + r) % len(brokers)] for r in range(replication)] for p in range(partitions)
        }
    topic_id = uuid.uuid4()
    records: list[mr.MetadataRecord] = [mr.TopicRecord(name=topic.name, topic_id=topic_id)]
    for key, value in sorted(topic.configs.items()):
        records.append(mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=topic.name, name=key,
                                       value=value))
    for p, replicas in assignments.items():
        records.append(
            mr.PartitionRecord(
                partition_id=p, topic_id=topic_id, replicas=list(replicas), isr=list(replicas),
                leader=replicas[0], leader_epoch=0, partition_epoch=0,
                directories=new_partition_directories(image, replicas),
            )
        )
    return records


def plan_partitions(image: MetadataImage, name: str, count: int, assignments: list[list[int]] | None
                    ) -> list[mr.PartitionRecord]:
    """Validate adding partitions to ``name`` up to ``count`` (Kafka's checks, in Kafka's order:
    ``validate_create_partitions``) and return the PartitionRecords; raises ControllerError."""
    validate_create_partitions(image, name, count, assignments)
    topic = image.topics[name]
    current = len(topic.partitions)
    replication = len(next(iter(topic.partitions.values())).replicas) if topic.partitions else 1
    brokers = sorted(b for b, reg in image.brokers.items() if not reg.fenced)
    if assignments is None and replication > len(brokers):
        raise ControllerError(ErrorCode.INVALID_REPLICATION_FACTOR,
                              "Unable to replicate the partition: not enough brokers.")
    records: list[mr.PartitionRecord] = []
    for i in range(count - current):
        p = current + i
        replicas = assignments[i] if assignments is not None else [
            brokers[(p + r) % len(brokers)] for r in range(replication)
        ]
        records.append(
            mr.PartitionRecord(partition_id=p, topic_id=topic.topic_id, replicas=list(replicas),
                               isr=list(replicas), leader=replicas[0], leader_epoch=0, partition_epoch=0,
                               directories=new_partition_directories(image, replicas))
        )
    return records
