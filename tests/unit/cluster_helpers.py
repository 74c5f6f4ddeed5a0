"""A metadata log in memory for the controller's sans-IO logic: records committed get the next
offsets and are applied to the image, as the quorum controller's ``write`` does."""

from __future__ import annotations

import uuid
from typing import Any

from kbroker.controller import metadata_records as mr
from kbroker.controller.features import SUPPORTED_FEATURES, bootstrap_levels
from kbroker.controller.image import RESOURCE_TOPIC, MetadataImage
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kbroker_protocol.messages.broker_registration import BrokerRegistrationRequest

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
