"""The broker's side of topic creation, shared by Metadata auto-creation and the coordinators.

It lives in replication, below the coordinators and the API handlers that use it, and reaches the
broker only through small Protocols of what each function uses (:class:`InternalTopicHost`,
:class:`CreatingHost`, :class:`InternalTopicSettings`, :class:`InternalTopicOwners`); it asks the
controller for topics through the controller client and never imports the controller. The controller's side (a topic's checks and records, the
partition logs created before the commit) is kbroker/controller/operations/topic_logs.py.

The coordinators' internal topics (``__consumer_offsets``, ``__transaction_state``,
``__share_group_state``, ``__kbroker_delayed``) are asked of the active controller with a
CreateTopics through the broker's controller client (:func:`ensure_internal_topic`), as Kafka's
coordinators have their broker's ``AutoTopicCreationManager`` do: the same path on a single node
(this process's controller) and in a quorum whose active controller is another node. The caller
is told the topic is not there yet (FindCoordinator answers COORDINATOR_NOT_AVAILABLE meanwhile);
it appears once this node's image applies the controller's records. :func:`await_internal_topic`
is the same with a bounded wait for the controller's answer, for callers that may wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kbroker.metadata.image import INTERNAL_TOPICS
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker.metadata.new_topic import NewTopic
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.metadata.client import ControllerClient
    from kbroker.metadata.image import MetadataImage
    from kbroker_protocol.messages.create_topics import CreateTopicsRequest

_log = logging.getLogger(__name__)

class InternalTopicOwner(Protocol):
    """A coordinator as internal topic creation sees it: its topic, partitions and configs."""

    @property
    def topic_name(self) -> str: ...

    def topic_partitions(self) -> int: ...

    def topic_configs(self) -> dict[str, str]: ...


class TopicHost(Protocol):
    """What a coordinator of an internal topic reads of the broker to create and host its topic
    (the base of ``kbroker.coordinator.hosts.CoordinatorHost``; ``kbroker.broker.Broker``
    provides it): its configuration and id, image, controller client, and the coordinators owning
    the internal topics (their defaults)."""

    config: BrokerConfig
    node_id: int
    image: MetadataImage
    controller_client: ControllerClient

    @property
    def group_coordinator(self) -> InternalTopicOwner | None: ...
    @property
    def share_coordinator(self) -> InternalTopicOwner | None: ...
    @property
    def txn_coordinator(self) -> InternalTopicOwner | None: ...


@dataclass(slots=True)
class CreateResult:
    name: str
    error: ErrorCode
    message: str | None = None
    records: list[MetadataRecord] | None = None


class InternalTopicOwners(Protocol):
    """The coordinators owning the internal topics (their partitions and configs)."""

    @property
    def group_coordinator(self) -> InternalTopicOwner | None: ...
    @property
    def share_coordinator(self) -> InternalTopicOwner | None: ...
    @property
    def txn_coordinator(self) -> InternalTopicOwner | None: ...


def internal_defaults(broker: InternalTopicOwners, topic: NewTopic) -> NewTopic:
    """An internal topic asked for without settings (Metadata auto-creation) gets its coordinator's
    partitions and configs, as Kafka's AutoTopicCreationManager creates it."""
    if topic.name not in INTERNAL_TOPICS or topic.num_partitions != -1 or topic.configs:
        return topic
    for owner in (broker.group_coordinator, broker.share_coordinator, broker.txn_coordinator):
        if owner is not None and owner.topic_name == topic.name:
            return NewTopic(topic.name, owner.topic_partitions(), 1, configs=owner.topic_configs())
    return topic


async def create_topic(broker: CreatingHost, topic: NewTopic) -> CreateResult:
    """Create ``topic`` as a broker does for itself (the share groups' dead-letter topics, tests'
    set-up): a CreateTopics through the broker's controller client, awaited, the same on the
    active controller's node and on a node whose active controller is elsewhere. Answers the
    controller's result for the topic; the topic is in this node's image once it applies the
    controller's records (at once on the active controller's node)."""
    topic = internal_defaults(broker, topic)
    response = await broker.controller_client.create_topics(creation_request([topic]), CREATE_TOPICS_VERSION)
    for result in response.topics:
        if result.name == topic.name:
            return CreateResult(topic.name, ErrorCode(result.error_code), result.error_message)
    return CreateResult(topic.name, ErrorCode.UNKNOWN_SERVER_ERROR, "no answer for the topic")


CREATE_TOPICS_VERSION = 7
AUTO_CREATE_TIMEOUT_MS = 30_000  # Kafka's request.timeout.ms default, which AutoTopicCreationManager sends


class InternalTopicSettings(Protocol):
    """What an internal topic's replication settings read of the broker: its configuration."""

    @property
    def config(self) -> BrokerConfig: ...


def internal_replication_factor(broker: InternalTopicSettings, key: str) -> int:
    """The replication factor an internal topic is created with: its ``*.replication.factor`` key
    (Kafka's default 3) in a KRaft cluster, where fewer registered brokers make the creation fail
    with INVALID_REPLICATION_FACTOR and the coordinator stay unavailable, as in Kafka; 1 for the
    self-contained single node started without ``process.roles`` (it is the whole cluster)."""
    config = broker.config
    return int(config[key]) if getattr(config, "kraft_mode", False) else 1


def internal_min_isr(broker: InternalTopicSettings, key: str) -> int:
    """``min.insync.replicas`` of an internal topic from its ``*.min.isr`` key (Kafka's
    transaction and share-state topics), capped by the topic's replicas on the single node."""
    config = broker.config
    return int(config[key]) if getattr(config, "kraft_mode", False) else 1


class InternalTopicHost(Protocol):
    """What asking for an internal topic uses of the broker: its image (does the topic exist?) and
    its controller client (this process's controller, or the active one of the cluster)."""

    @property
    def image(self) -> MetadataImage: ...

    @property
    def controller_client(self) -> ControllerClient: ...

    @property
    def stopping(self) -> bool: ...

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]: ...


class CreatingHost(InternalTopicOwners, Protocol):
    """What creating a topic for the broker itself uses: the controller client and the owners'
    defaults for an internal topic."""

    @property
    def controller_client(self) -> ControllerClient: ...


# The internal topics each broker has asked the controller for, while the CreateTopics is under
# way: name -> its task (Kafka's AutoTopicCreationManager keeps the in-flight topics so that a
# topic is asked for once).
_INTERNAL: weakref.WeakKeyDictionary[InternalTopicHost, dict[str, asyncio.Task[object]]] = weakref.WeakKeyDictionary()

# How long :func:`await_internal_topic` waits for the controller's answer (as Metadata
# auto-creation does: kbroker/api/auto_topic_creation.py).
INTERNAL_TOPIC_WAIT_S = 2.0


def creation_request(topics: Sequence[NewTopic]) -> CreateTopicsRequest:
    """The CreateTopics a broker sends the controller for topics it creates itself (Kafka's
    AutoTopicCreationManager: with ``request.timeout.ms``, the partitions, replication factor and
    configs asked for)."""
    from kbroker_protocol.messages.create_topics import CreateTopicsRequest

    Creatable = CreateTopicsRequest.CreatableTopic
    return CreateTopicsRequest(timeout_ms=AUTO_CREATE_TIMEOUT_MS, validate_only=False, topics=[
        Creatable(name=t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                  assignments=[], configs=[Creatable.CreatableTopicConfig(name=k, value=v)
                                           for k, v in sorted(t.configs.items())])
        for t in topics
    ])


def internal_topic_ready(broker: InternalTopicHost, name: str) -> bool:
    """Whether this node's image has the topic, with partitions."""
    topic = broker.image.topic(name)
    return topic is not None and bool(topic.partitions)


def ensure_internal_topic(broker: InternalTopicHost, name: str, partitions: int, configs: dict[str, str],
                          replication_factor: int = 1) -> bool:
    """True when the internal topic ``name`` exists with partitions; otherwise ask the active
    controller to create it (once while asked: a CreateTopics through the controller client, in
    the background) and answer False, as Kafka's coordinators do when they first need their topic."""
    if internal_topic_ready(broker, name):
        return True
    if broker.image.topic(name) is None:
        _ask_internal(broker, NewTopic(name, partitions, replication_factor, configs=configs))
    return False


async def await_internal_topic(broker: InternalTopicHost, name: str, partitions: int, configs: dict[str, str],
                               replication_factor: int = 1, wait_s: float = INTERNAL_TOPIC_WAIT_S) -> bool:
    """:func:`ensure_internal_topic`, then wait at most ``wait_s`` for the controller's answer:
    True when the topic is then in this node's image (on the active controller's node it is
    applied when the answer comes; elsewhere it may come later, and the caller answers without it)."""
    if ensure_internal_topic(broker, name, partitions, configs, replication_factor):
        return True
    task = _INTERNAL.get(broker, {}).get(name)
    if task is not None and wait_s > 0:
        await asyncio.wait([task], timeout=wait_s)
    return internal_topic_ready(broker, name)


def _ask_internal(broker: InternalTopicHost, topic: NewTopic) -> asyncio.Task[object] | None:
    in_flight = _INTERNAL.setdefault(broker, {})
    task = in_flight.get(topic.name)
    if task is not None:
        return task
    if broker.stopping:  # (stop() cancels the broker's background tasks: none started after)
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no event loop (a broker driven by hand): nobody to send it
        return None
    task = broker.run_in_background(_create_internal(broker, topic), f"create-{topic.name}")
    in_flight[topic.name] = task
    task.add_done_callback(functools.partial(_internal_done, in_flight, topic.name))
    return task


def _internal_done(in_flight: dict[str, asyncio.Task[object]], name: str, task: asyncio.Task[object]) -> None:
    if in_flight.get(name) is task:
        del in_flight[name]


# Answers a later ask may not get (the controller moved, was busy or throttled the creation).
_TRANSIENT = frozenset({ErrorCode.NOT_CONTROLLER, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.THROTTLING_QUOTA_EXCEEDED})


async def _create_internal(broker: InternalTopicHost, topic: NewTopic) -> None:
    try:
        response = await broker.controller_client.create_topics(creation_request([topic]), CREATE_TOPICS_VERSION)
    except Exception as exc:  # no active controller answered: the next use asks again
        _log.warning("cannot ask the controller to create internal topic %s: %s", topic.name, exc)
        return
    for result in response.topics:
        code = ErrorCode(result.error_code)
        if code == ErrorCode.NONE:
            _log.info("created %s", result.name)
        elif code in _TRANSIENT:  # the next use asks again
            _log.info("cannot create internal topic %s yet: %s %s", result.name, code.name, result.error_message)
        elif code != ErrorCode.TOPIC_ALREADY_EXISTS:
            _log.error("cannot create internal topic %s: %s %s", result.name, code.name, result.error_message)
