"""The controller's side of topic creation on the node it runs in: a new topic's checks and records
(``plan_create``), and the partition logs of this node's replicas, created before the records are
committed (CreateTopics and CreatePartitions, kbroker/controller/operations/create_topics.py and
create_partitions.py).

The broker's side (asking the controller for a topic, the internal topics' defaults) is
kbroker/replication/topics.py, below the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kbroker.config import ConfigError, validate_topic_configs
from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import ControllerHolder, local_controller
from kbroker.metadata.image import METADATA_TOPIC
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker.metadata.new_topic import NewTopic
from kbroker.replication.topics import CreateResult
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import PartitionRecord

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.log import LogConfig, LogManager

_log = logging.getLogger(__name__)


class TopicLogsHost(ControllerHolder, Protocol):
    """A new topic's checks and its partition logs as they use the node: its controller, its
    configuration (the topic configs' validation and defaults), its id (the replicas it hosts), its
    log manager and default log config (those replicas' logs), and the names being created there."""

    @property
    def config(self) -> BrokerConfig: ...

    @property
    def node_id(self) -> int: ...

    @property
    def log_manager(self) -> LogManager | None: ...

    @property
    def creating_topics(self) -> dict[str, str]: ...

    def default_log_config(self, overrides: dict[str, str] | None = None) -> LogConfig: ...

METADATA_TOPIC_PROHIBITED = f"Creation of internal topic {METADATA_TOPIC} is prohibited."


def plan_create(broker: TopicLogsHost, topic: NewTopic) -> CreateResult:
    """Validate a topic creation; returns the records to commit or the error.

    The metadata log's name is refused first, whatever else the request says, as Kafka's
    ControllerApis.createTopics refuses it for every creation path (CreateTopics and the brokers'
    auto-creation, which sends CreateTopics to the controller): its partition 0 would be the
    controller's own log.
    """
    if topic.name == METADATA_TOPIC:
        return CreateResult(topic.name, ErrorCode.INVALID_REQUEST, METADATA_TOPIC_PROHIBITED)
    pending = _creating(broker)
    other = pending.get(topic.name.replace(".", "_"))
    if other == topic.name:
        return CreateResult(topic.name, ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists.")
    if other is not None:
        return CreateResult(topic.name, ErrorCode.INVALID_TOPIC_EXCEPTION,
                            f"Topic '{topic.name}' collides with existing topic: {other}")
    try:
        configs = validate_topic_configs(topic.configs, broker.config)
    except ConfigError as exc:
        return CreateResult(topic.name, ErrorCode.INVALID_CONFIG, str(exc))
    topic.configs = configs
    try:
        records = local_controller(broker).plan_topic(
            topic, broker.config["num.partitions"], broker.config["default.replication.factor"]
        )
    except ControllerError as exc:
        return CreateResult(topic.name, exc.code, exc.message)
    return CreateResult(topic.name, ErrorCode.NONE, None, records)


# -- partition logs of new partitions: created before the records are committed ---------------
#
# A topic (or new partitions) is committed to the metadata log only once every partition log it
# needs on this broker exists in memory; if one cannot be created, those created are removed
# again, nothing is committed and the topic gets KAFKA_STORAGE_ERROR. Their directories are made
# after the commit (`LogManager.make_dirs`, on the log manager's worker), as Kafka's broker makes
# its logs when it applies the partition records, or by a first write that comes sooner. A crash
# between the commit and the directories leaves committed partitions without one: the broker
# makes it when it opens the partitions of the replayed metadata at start. CreateTopics and
# CreatePartitions create the logs on a worker thread, so other clients are served meanwhile; the
# topic names being created are reserved in ``broker.creating_topics`` until then.


def _creating(broker: TopicLogsHost) -> dict[str, str]:
    """Topics being created: name with '.' as '_' -> name (``TopicLogsHost.creating_topics``)."""
    return broker.creating_topics


def reserve_topic(broker: TopicLogsHost, name: str) -> None:
    _creating(broker)[name.replace(".", "_")] = name


def release_topic(broker: TopicLogsHost, name: str) -> None:
    _creating(broker).pop(name.replace(".", "_"), None)


def partition_keys(broker: TopicLogsHost, name: str, records: Sequence[MetadataRecord]) -> list[tuple[str, int]]:
    """The partitions among ``records`` that have a replica on this broker."""
    return [
        (name, r.partition_id) for r in records
        if isinstance(r, PartitionRecord) and broker.node_id in r.replicas
    ]


def create_partition_logs(
    broker: TopicLogsHost, name: str, records: Sequence[MetadataRecord], configs: dict[str, str] | None
) -> list[tuple[str, int]]:
    """Create the logs the records' partitions need here, all or none (raises `OSError`).
    Runs on any thread. Returns the partitions whose logs were created."""
    keys = partition_keys(broker, name, records)
    if not keys:
        return []
    assert broker.log_manager is not None
    try:
        return broker.log_manager.create_logs(keys, broker.default_log_config(configs))
    except OSError as exc:
        _log.error("cannot create the logs of %d partitions of %s: %s", len(keys), name, exc)
        raise


def storage_error(name: str, exc: OSError) -> CreateResult:
    return CreateResult(name, ErrorCode.KAFKA_STORAGE_ERROR, f"Cannot create the partition logs of {name}: {exc}")


async def write_created(
    broker: TopicLogsHost, name: str, records: Sequence[MetadataRecord], keys: list[tuple[str, int]], batch: list[bytes] | bytes | None = None
) -> CreateResult | None:
    """Write the records whose logs `create_partition_logs` created through the controller
    (``batch``: the records already encoded by the controller's ``build``); if the write fails
    before the records are in the metadata log, the logs are removed again and the error returned
    (None: committed and applied)."""
    assert broker.controller is not None and broker.log_manager is not None
    before = broker.controller.log.log_end_offset
    try:
        await broker.controller.write(records, batch)
    except OSError as exc:
        return _not_written(broker, name, keys, before, exc)
    broker.log_manager.make_dirs(keys)  # committed: the directories now, off the loop
    return None


def _not_written(broker: TopicLogsHost, name: str, keys: list[tuple[str, int]], before: int,
                 exc: OSError) -> CreateResult:
    assert broker.controller is not None and broker.log_manager is not None
    if broker.controller.log.log_end_offset != before:
        raise exc
    _log.error("cannot commit the creation of %s: %s", name, exc)
    broker.log_manager.remove_new_logs(keys)
    return CreateResult(name, ErrorCode.KAFKA_STORAGE_ERROR, f"Cannot commit the creation of {name}: {exc}")
