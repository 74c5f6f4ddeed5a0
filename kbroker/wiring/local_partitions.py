"""This broker's partitions follow the metadata log, as Kafka's ``BrokerMetadataPublisher`` and
``ReplicaManager.applyDelta``: a replica assigned here is opened (its log created or recovered) and
made leader or follower by each PartitionRecord/PartitionChangeRecord; a replica reassigned away
or a deleted topic's is stopped and its log deleted; the services that follow leadership (the
group and transaction coordinators) learn of each change; dynamic broker and topic configs reach
the open logs.

During the start-up replay partitions are not opened record by record: once the log is replayed,
:meth:`LocalPartitions.open_replayed` opens them from the image the whole log leads to, and deletes
the logs the image no longer has.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from kbroker.config import BrokerConfig
from kbroker.controller.quorum import METADATA_TOPIC
from kbroker.log import LogConfig, LogManager
from kbroker.metadata.image import MetadataImage, TopicImage
from kbroker.replication.partition import Partition
from kbroker.replication.producer_snapshot import empty_log_producer_state
from kbroker.replication.replica_manager import ReplicaManager
from kbroker.server.limits import ConnectionLimits
from kbroker.wiring.cordoned import CordonHost, apply_cordoned

log = logging.getLogger("kbroker.broker")


class PartitionHost(CordonHost, Protocol):
    """The broker as its partitions' publisher uses it (:class:`kbroker.broker.Broker`), the
    cordoned log dirs it applies on a config change included."""

    node_id: int
    config: BrokerConfig
    image: MetadataImage
    partitions: dict[tuple[str, int], Partition]
    log_manager: LogManager | None
    replica_manager: ReplicaManager
    limits: ConnectionLimits

    @property
    def services(self) -> Sequence[object]: ...  # hooks looked up by name (on_partition_leadership ...)

    def close_excess_connections(self) -> None: ...

    def topic_settings(self, overrides: dict[str, str] | None = None) -> dict[str, Any]: ...

    def default_log_config(self, overrides: dict[str, str] | None = None) -> LogConfig: ...


class LocalPartitions:
    """Applies metadata records to ``broker``'s partitions (an image listener)."""

    def __init__(self, broker: PartitionHost) -> None:
        self.broker = broker
        self.replaying = False  # the start-up replay: partitions wait for open_replayed
        self._config_memo: tuple[BrokerConfig, dict[str, str], LogConfig, dict[str, Any]] | None = None

    def open_replayed(self) -> None:
        """After replay: open this broker's partitions of the image; delete the logs of partitions
        the image no longer has (their deletion was committed but not carried out)."""
        broker = self.broker
        assert broker.log_manager is not None
        for topic in broker.image.topics.values():
            for index, state in topic.partitions.items():
                if broker.node_id in state.replicas:
                    self._open_partition(topic.name, index, new=False)
        for topic_name, index in list(broker.log_manager.partitions()):
            if topic_name == METADATA_TOPIC:
                continue
            image_topic = broker.image.topic(topic_name)
            if image_topic is None or index not in image_topic.partitions:
                log.info("deleting the log of %s-%d: the partition was deleted", topic_name, index)
                broker.log_manager.delete(topic_name, index)
            elif broker.node_id not in image_topic.partitions[index].replicas:
                # a stray replica (Kafka's findStrayReplicas): reassigned away while this node was down
                log.info("deleting the log of %s-%d: this broker is no longer one of its replicas", topic_name, index)
                broker.log_manager.delete(topic_name, index)

    def on_metadata_record(self, record: Any) -> None:
        broker = self.broker
        name = type(record).__name__
        if self.replaying and name in ("PartitionRecord", "PartitionChangeRecord", "RemoveTopicRecord"):
            return  # partitions are opened from the replayed image (open_replayed)
        if name in ("PartitionRecord", "PartitionChangeRecord"):
            # Become leader or follower of a local replica (replication's applyDelta).
            topic = broker.image.topic_by_id(record.topic_id)
            state = topic.partitions.get(record.partition_id) if topic is not None else None
            if topic is not None and state is not None:
                p = broker.partitions.get((topic.name, record.partition_id))
                was_leader = p is not None and p.is_leader
                if broker.node_id in state.replicas:
                    if p is None:
                        self._open_partition(topic.name, record.partition_id)
                    else:
                        broker.replica_manager.apply_partition_state(p, state)
                elif p is not None:
                    # No longer a replica (a reassignment removed it): stop and delete the local
                    # log, as Kafka's applyDelta (stopPartitions with deletion).
                    self._remove_replica(p)
                p = broker.partitions.get((topic.name, record.partition_id))
                is_leader = p is not None and p.is_leader and broker.node_id in state.replicas
                if is_leader != was_leader:
                    self._leadership_changed(topic.name, record.partition_id, is_leader)
        elif name == "RemoveTopicRecord":
            for key in [k for k, p in broker.partitions.items() if p.topic_id == record.topic_id]:
                p = broker.partitions.pop(key)
                if p.is_leader:
                    self._leadership_changed(p.topic, p.index, False)
                broker.replica_manager.stop_replica(p)
                assert broker.log_manager is not None
                broker.log_manager.delete(p.topic, p.index)
                for service in broker.services:
                    hook = getattr(service, "on_partition_deleted", None)
                    if hook:
                        hook(p.topic, p.index)
        elif name == "ConfigRecord":
            if record.resource_type == 4:
                configs = broker.image.broker_configs
                broker.config = broker.config.with_dynamic(configs.get("", {}), configs.get(str(broker.node_id), {}))
                broker.limits.reconfigure(broker.config)  # max.connections*, max.connection.creation.rate
                apply_cordoned(broker)  # cordoned.log.dirs
                broker.close_excess_connections()
                self._refresh_topic_configs(list(broker.image.topics.values()))
            elif record.resource_type == 2:
                topic = broker.image.topic(record.resource_name)
                if topic is not None:
                    self._refresh_topic_configs([topic])

    def _remove_replica(self, p: Partition) -> None:
        broker = self.broker
        broker.partitions.pop((p.topic, p.index), None)
        broker.replica_manager.stop_replica(p)
        assert broker.log_manager is not None
        log.info("deleting the log of %s-%d: this broker is no longer one of its replicas", p.topic, p.index)
        broker.log_manager.delete(p.topic, p.index)

    def _leadership_changed(self, topic: str, index: int, leader: bool) -> None:
        """Services that follow partition leadership (the group and transaction coordinators:
        Kafka's onElection/onResignation) learn that this broker leads, or stopped leading, a partition."""
        for service in self.broker.services:
            hook = getattr(service, "on_partition_leadership", None)
            if hook is not None:
                try:
                    hook(topic, index, leader)
                except Exception:
                    log.exception("%s failed to follow the leadership of %s-%d", type(service).__name__, topic, index)

    def _refresh_topic_configs(self, topics: list[TopicImage]) -> None:
        broker = self.broker
        if broker.log_manager is None:
            return
        for topic in topics:
            settings = broker.topic_settings(topic.configs)
            config = LogConfig.from_topic_values(settings)
            for index in topic.partitions:
                p = broker.partitions.get((topic.name, index))
                if p is not None:
                    p.log.config = config
                    p.config = settings

    def _open_partition(self, topic_name: str, index: int, *, new: bool = True) -> None:
        broker = self.broker
        topic = broker.image.topic(topic_name)
        assert topic is not None and broker.log_manager is not None
        state = topic.partitions[index]
        log_config, settings = self._partition_configs(topic.configs)
        plog = broker.log_manager.get_or_create(topic_name, index, log_config, new=new)
        if plog.high_watermark < plog.log_end_offset:
            plog.high_watermark = plog.log_end_offset
        # Opened with no leader and epoch -1, then made leader or follower by the state's record.
        partition = broker.partitions[(topic_name, index)] = Partition(
            topic_name, index, topic.topic_id, plog, -1, list(state.replicas), list(state.isr),
            settings, node_id=broker.node_id, leader_id=-1, partition_epoch=-1,
        )
        if plog.offline is None and plog.log_end_offset == plog.log_start_offset:
            partition.producer_state = empty_log_producer_state(plog, new=new)
        broker.replica_manager.apply_partition_state(partition, state)

    def _partition_configs(self, overrides: dict[str, str]) -> tuple[LogConfig, dict[str, Any]]:
        """The log config and settings of a topic with these overrides; the last answer is kept,
        so the partitions of one new topic (up to 10,000 records in a row) share one computation."""
        broker = self.broker
        memo = self._config_memo
        if memo is not None and memo[0] is broker.config and memo[1] == overrides:
            return memo[2], memo[3]
        answer = (broker.default_log_config(overrides), broker.topic_settings(overrides))
        self._config_memo = (broker.config, dict(overrides), *answer)
        return answer
