"""A metadata log in memory for the controller's sans-IO logic: records committed get the next
offsets and are applied to the image, as the quorum controller's ``write`` does."""

from __future__ import annotations

import uuid
from typing import Any

from kbroker.controller.cluster_control import ClusterControl
from kbroker.controller.replication_control import alter_partition
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.features import SUPPORTED_FEATURES, bootstrap_levels
from kbroker.metadata.image import FENCING_UNFENCE, RESOURCE_TOPIC, MetadataImage, PartitionState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kbroker_protocol.messages.broker_registration import BrokerRegistrationRequest
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"


class MemoryLog:
    def __init__(self, features: dict[str, int] | None = None) -> None:
        self.image = MetadataImage()
        self.next_offset = 0
        self.batches: list[list[Any]] = []
        levels = bootstrap_levels() if features is None else features
        self.commit([mr.FeatureLevelRecord(name=n, feature_level=v) for n, v in levels.items()])

    def commit(self, records: list[Any]) -> int:
        """Apply ``records`` at the next offsets; returns the batch's last offset."""
        for r in records:
            self.image.apply(r, self.next_offset)
            self.next_offset += 1
        if records:
            self.batches.append(list(records))
        return self.next_offset - 1

    def topic(self, name: str, assignments: list[list[int]], configs: dict[str, str] | None = None,
              isr: list[list[int]] | None = None, leaders: list[int] | None = None) -> uuid.UUID:
        topic_id = uuid.uuid4()
        records: list[Any] = [mr.TopicRecord(name=name, topic_id=topic_id)]
        for k, v in (configs or {}).items():
            records.append(mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=name, name=k, value=v))
        for p, replicas in enumerate(assignments):
            in_sync = isr[p] if isr is not None else replicas
            leader = leaders[p] if leaders is not None else in_sync[0]
            records.append(mr.PartitionRecord(partition_id=p, topic_id=topic_id, replicas=replicas, isr=in_sync,
                                              leader=leader, leader_epoch=0, partition_epoch=0))
        self.commit(records)
        return topic_id


def registration(broker_id: int, incarnation: uuid.UUID | None = None, *, cluster_id: str = CLUSTER_ID,
                 features: dict[str, tuple[int, int]] | None = None, rack: str | None = None,
                 log_dirs: list[uuid.UUID] | None = None, previous_broker_epoch: int = -1) -> Any:
    R = BrokerRegistrationRequest
    return R(
        broker_id=broker_id, cluster_id=cluster_id, incarnation_id=incarnation or uuid.uuid4(),
        listeners=[R.Listener(name="PLAINTEXT", host="localhost", port=9092 + broker_id, security_protocol=0)],
        features=[R.Feature(name=n, min_supported_version=lo, max_supported_version=hi)
                  for n, (lo, hi) in (SUPPORTED_FEATURES if features is None else features).items()],
        rack=rack, log_dirs=[uuid.uuid4()] if log_dirs is None else log_dirs,
        previous_broker_epoch=previous_broker_epoch,
    )


def heartbeat(broker_id: int, epoch: int, offset: int, *, want_fence: bool = False,
              want_shut_down: bool = False) -> Any:
    return BrokerHeartbeatRequest(broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=offset,
                                  want_fence=want_fence, want_shut_down=want_shut_down)


# -- a controller over the log (registration, heartbeats) ------------------------------------------

V = 4  # BrokerRegistration version


def register(cc: ClusterControl, log: MemoryLog, broker_id: int, now: int = 0, **kw) -> int:
    resp, records = cc.register_broker(log.image, registration(broker_id, **kw), V, now, log.next_offset)
    assert resp.error_code == ErrorCode.NONE
    log.commit(records)
    return resp.broker_epoch


def running(cc: ClusterControl, log: MemoryLog, broker_id: int, now: int = 0) -> int:
    """Register and unfence ``broker_id``; returns its epoch."""
    epoch = register(cc, log, broker_id, now)
    resp, records = cc.heartbeat(log.image, heartbeat(broker_id, epoch, log.image.offset), now)
    assert resp.error_code == ErrorCode.NONE and not resp.is_fenced
    log.commit(records)
    assert not log.image.brokers[broker_id].fenced
    return epoch


def new_cc(log: MemoryLog, now: int = 0) -> ClusterControl:
    cc = ClusterControl(CLUSTER_ID)
    cc.attach(log.image)
    cc.activate(log.image, now)
    return cc


def running_cluster(features: dict[str, int] | None = None,
                    brokers: tuple[int, ...] = (1, 2, 3)) -> tuple[MemoryLog, ClusterControl]:
    """A log and a controller with ``brokers`` registered and unfenced."""
    log = MemoryLog(features)
    cc = ClusterControl(CLUSTER_ID)
    cc.attach(log.image)
    cc.activate(log.image, 0)
    for b in brokers:
        _, records = cc.register_broker(log.image, registration(b), 4, 0, log.next_offset)
        log.commit(records)
        _, records = cc.heartbeat(log.image, heartbeat(b, log.image.brokers[b].epoch, log.image.offset), 0)
        log.commit(records)
    return log, cc


# -- partitions and AlterPartition ---------------------------------------------------------------

TID = uuid.UUID(int=7)


def part(replicas, isr, leader, *, elr=(), last_known_elr=(), leader_epoch=5, partition_epoch=9, recovery=0):
    return PartitionState(TID, 0, list(replicas), list(isr), leader, leader_epoch, partition_epoch,
                          elr=list(elr), last_known_elr=list(last_known_elr), leader_recovery_state=recovery)


APD = AlterPartitionRequest.TopicData.PartitionData
BS = APD.BrokerState


def alter_isr(log, broker, topic_id, *, isr, leader_epoch=0, partition_epoch=0, epochs=None, version=3, index=0,
           broker_epoch=None, recovery=0):
    image = log.image
    if epochs is None:
        epochs = [image.brokers[b].epoch if b in image.brokers else -1 for b in isr]
    data = APD(partition_index=index, leader_epoch=leader_epoch, partition_epoch=partition_epoch,
               leader_recovery_state=recovery,
               new_isr=isr if version < 3 else [],
               new_isr_with_epochs=[BS(broker_id=b, broker_epoch=e) for b, e in zip(isr, epochs, strict=True)]
               if version >= 3 else [])
    req = AlterPartitionRequest(broker_id=broker, broker_epoch=image.brokers[broker].epoch
                                if broker_epoch is None else broker_epoch,
                                topics=[AlterPartitionRequest.TopicData(topic_id=topic_id, partitions=[data])])
    return alter_partition(image, req, version)


def partition_error(resp: Any) -> int:
    """The error code of an AlterPartition answer's first partition."""
    return resp.topics[0].partitions[0].error_code


# -- an image of registered brokers (placement) ---------------------------------------------------


def image_with_brokers(brokers: dict[int, str | None], fenced: set[int] = frozenset(),
                       shutting_down: set[int] = frozenset()) -> MetadataImage:
    """An image with ``brokers`` (id: rack) registered, unfenced unless in ``fenced``."""
    image = MetadataImage()
    offset = 0
    image.apply(mr.FeatureLevelRecord(name="metadata.version", feature_level=33), offset)
    for b, rack in brokers.items():
        offset += 1
        image.apply(mr.RegisterBrokerRecord(
            broker_id=b, incarnation_id=uuid.uuid4(), broker_epoch=offset, rack=rack,
            features=[mr.RegisterBrokerRecord.BrokerFeature(name=n, min_supported_version=lo, max_supported_version=hi)
                      for n, (lo, hi) in SUPPORTED_FEATURES.items()]), offset)
        if b not in fenced:
            image.apply(BrokerRegistrationChangeRecord(broker_id=b, broker_epoch=offset, fenced=FENCING_UNFENCE),
                        offset + 1)
        if b in shutting_down:
            image.apply(BrokerRegistrationChangeRecord(broker_id=b, broker_epoch=offset, in_controlled_shutdown=1),
                        offset + 1)
        offset += 1
    return image
