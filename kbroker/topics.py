"""Topic administration shared by CreateTopics, Metadata auto-creation and the coordinators."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.config import ConfigError, validate_topic_configs
from kbroker.controller.quorum import ControllerError, NewTopic
from protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import Broker

_log = logging.getLogger(__name__)

INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")


@dataclass(slots=True)
class CreateResult:
    name: str
    error: ErrorCode
    message: str | None = None
    records: list[Any] | None = None


def plan_create(broker: Broker, topic: NewTopic) -> CreateResult:
    """Validate a topic creation; returns the records to commit or the error."""
    try:
        configs = validate_topic_configs(topic.configs, broker.config)
    except ConfigError as exc:
        return CreateResult(topic.name, ErrorCode.INVALID_CONFIG, str(exc))
    topic.configs = configs
    assert broker.controller is not None
    try:
        records = broker.controller.plan_topic(
            topic, broker.config["num.partitions"], broker.config["default.replication.factor"]
        )
    except ControllerError as exc:
        return CreateResult(topic.name, exc.code, exc.message)
    return CreateResult(topic.name, ErrorCode.NONE, None, records)


def _internal_defaults(broker: Broker, topic: NewTopic) -> NewTopic:
    """An internal topic asked for without settings (Metadata auto-creation) gets its coordinator's
    partitions and configs, as Kafka's AutoTopicCreationManager creates it."""
    if topic.name not in INTERNAL_TOPICS or topic.num_partitions != -1 or topic.configs:
        return topic
    for service in getattr(broker, "services", ()):
        if getattr(service, "topic_name", None) == topic.name:
            return NewTopic(topic.name, service.topic_partitions(), 1, configs=service.topic_configs())
    return topic


def create_topic(broker: Broker, topic: NewTopic) -> CreateResult:
    topic = _internal_defaults(broker, topic)
    result = plan_create(broker, topic)
    if result.error == ErrorCode.NONE and result.records:
        assert broker.controller is not None
        broker.controller.commit(result.records)
    return result


def ensure_internal_topic(broker: Broker, name: str, partitions: int, configs: dict[str, str]) -> bool:
    """Create an internal topic (``__consumer_offsets``...) if it does not exist yet, as Kafka does
    when a coordinator first needs it; True once the topic exists with partitions (a failure to
    create it is logged)."""
    if broker.image.topic(name) is None:
        # Replication factor 1: this broker is the cluster (Kafka's *.replication.factor defaults
        # of 3 could not be met).
        result = create_topic(broker, NewTopic(name, partitions, 1, configs=configs))
        if result.error not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            _log.error("cannot create internal topic %s: %s %s", name, result.error.name, result.message)
            return False
        _log.info("created %s", name)
    topic = broker.image.topic(name)
    return topic is not None and bool(topic.partitions)
