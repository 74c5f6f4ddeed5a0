"""The controller's side of JBOD in KRaft (KIP-858), as Kafka 4.4's ReplicationControlManager:

- ``handle_directories_offline`` (handleDirectoriesOffline): a heartbeat's ``OfflineLogDirs``
  naming dirs still online in the broker's registration takes the broker's replicas in those dirs
  out of ISR and elects other leaders, then a BrokerRegistrationChangeRecord (v2) keeps only the
  remaining dirs as the broker's ``LogDirs``;
- ``handle_directories_cordoned`` (handleDirectoriesCordoned, KIP-1066): a heartbeat's
  ``CordonedLogDirs`` (null until the broker has caught up with the metadata) that differ from the
  registration's, as sets, become a BrokerRegistrationChangeRecord (v3) with the new list;
- ``assign_replicas_to_dirs`` (handleAssignReplicasToDirs, API 73): the broker says in which dir
  each of its replicas lives; a PartitionChangeRecord sets the partition's ``Directories``, and a
  replica placed in an offline dir is moved off ISR and leadership at once.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from kbroker.controller.replication_control import ReplicationSettings, generate_leader_and_isr_updates
from kbroker.metadata.directories import is_online, replica_directory
from kbroker.metadata.image import NO_LEADER, MetadataImage, PartitionState, TopicImage
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.assign_replicas_to_dirs import (
    AssignReplicasToDirsRequest,
    AssignReplicasToDirsResponse,
)
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord, PartitionChangeRecord

if TYPE_CHECKING:
    from kbroker.metadata.metadata_records import MetadataRecord

log = logging.getLogger(__name__)


def partitions_in_directory(image: MetadataImage, broker_id: int, directory: uuid.UUID
                            ) -> list[tuple[TopicImage, PartitionState]]:
    """The partitions whose replica on ``broker_id`` lives in ``directory`` (directoriesToPartitions)."""
    return [(t, p) for t in image.topics.values() for p in t.partitions.values()
            if broker_id in p.replicas and replica_directory(p, broker_id) == directory]


def handle_directories_offline(image: MetadataImage, settings: ReplicationSettings, broker_id: int,
                               broker_epoch: int, offline_dirs: list[uuid.UUID], records: list[MetadataRecord]) -> None:
    reg = image.brokers.get(broker_id)
    if reg is None:
        return
    new_offline = [d for d in reg.log_dirs if d in offline_dirs]
    if not new_offline:
        return
    for d in new_offline:
        generate_leader_and_isr_updates(image, settings, broker_id, NO_LEADER, NO_LEADER,
                                        partitions_in_directory(image, broker_id, d), records,
                                        f"handleDirectoriesOffline[{broker_id}:{d}]")
    remaining = [d for d in reg.log_dirs if d not in offline_dirs]
    records.append(BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=broker_epoch,
                                                  log_dirs=remaining))
    log.warning("Directories %s in broker %d marked offline, remaining directories: %s",
                [str(d) for d in new_offline], broker_id, [str(d) for d in remaining])


def handle_directories_cordoned(image: MetadataImage, broker_id: int, broker_epoch: int,
                                cordoned_dirs: list[uuid.UUID] | None, records: list[MetadataRecord]) -> None:
    if cordoned_dirs is None:
        return
    reg = image.brokers.get(broker_id)
    if reg is None:
        return
    if set(reg.cordoned_log_dirs or ()) == set(cordoned_dirs):
        return  # (never reported counts as none cordoned, as Kafka's registration starts empty)
    records.append(BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=broker_epoch,
                                                  cordoned_log_dirs=list(cordoned_dirs)))
    log.debug("Directories %s in broker %d marked cordoned", [str(d) for d in cordoned_dirs], broker_id)


def assign_replicas_to_dirs(image: MetadataImage, settings: ReplicationSettings,
                            request: AssignReplicasToDirsRequest) -> tuple[AssignReplicasToDirsResponse, list[MetadataRecord]]:
    """AssignReplicasToDirs on the active controller; the caller has checked the metadata.version
    (UNSUPPORTED_VERSION below 17). STALE_BROKER_EPOCH for a broker not registered or registered
    with another epoch (Kafka's checkBrokerEpoch runs before its BROKER_ID_NOT_REGISTERED check)."""
    Resp = AssignReplicasToDirsResponse
    broker_id = request.broker_id
    reg = image.brokers.get(broker_id)
    if reg is None or reg.epoch != request.broker_epoch:
        return Resp(error_code=ErrorCode.STALE_BROKER_EPOCH), []
    records: list[MetadataRecord] = []
    to_update: dict[tuple[uuid.UUID, int], tuple[TopicImage, PartitionState]] = {}
    response = Resp(error_code=ErrorCode.NONE, directories=[])
    for req_dir in request.directories:
        offline = not is_online(req_dir.id, reg.log_dirs)
        res_dir = Resp.DirectoryData(id=req_dir.id, topics=[])
        for req_topic in req_dir.topics:
            topic = image.topics_by_id.get(req_topic.topic_id)
            topic_error = ErrorCode.NONE
            if topic is None:
                log.warning("AssignReplicasToDirsRequest from broker %d references unknown topic ID %s",
                            broker_id, req_topic.topic_id)
                topic_error = ErrorCode.UNKNOWN_TOPIC_ID
            res_topic = Resp.DirectoryData.TopicData(topic_id=req_topic.topic_id, partitions=[])
            for req_part in req_topic.partitions:
                index = req_part.partition_index
                error = topic_error
                if topic is not None:
                    p = topic.partitions.get(index)
                    if p is None:
                        error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    elif broker_id not in p.replicas:
                        error = ErrorCode.NOT_LEADER_OR_FOLLOWER
                    else:
                        if replica_directory(p, broker_id) != req_dir.id:
                            dirs = list(p.directories) if len(p.directories) == len(p.replicas) \
                                else [uuid.UUID(int=0)] * len(p.replicas)
                            dirs[p.replicas.index(broker_id)] = req_dir.id
                            records.append(PartitionChangeRecord(topic_id=topic.topic_id, partition_id=index,
                                                                 directories=dirs))
                        if offline:
                            to_update[(topic.topic_id, index)] = (topic, p)
                res_topic.partitions.append(Resp.DirectoryData.TopicData.PartitionData(
                    partition_index=index, error_code=error))
            res_dir.topics.append(res_topic)
        response.directories.append(res_dir)
    if to_update:
        generate_leader_and_isr_updates(image, settings, broker_id, NO_LEADER, NO_LEADER, to_update.values(),
                                        records, "offline-dir-assignment")
    return response, records
