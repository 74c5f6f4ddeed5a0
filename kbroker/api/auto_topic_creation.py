"""Auto-creation of topics for the request handlers (Kafka's ``AutoTopicCreationManager``).

Metadata (a topic asked for that does not exist, ``auto.create.topics.enable``) and
StreamsGroupHeartbeat (the group's missing internal topics) ask the active controller to create
topics. As Kafka's brokers, they send it a CreateTopics through the controller client
(``broker.controller_client``: this process's controller or the active one of the cluster, in an
Envelope carrying the client's principal), the same path a CreateTopics request takes, so the
controller's checks, policies and quotas apply alike. The handler awaits the controller's answer
rather than assuming the topic exists when a call returns: on the node of the active controller the
records are committed and applied once it returns; elsewhere the topic appears when this node's
image applies them.

A topic asked for while its creation is under way (another request) is not asked for again: the
second request awaits the same creation, as Kafka keeps its in-flight topics.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, requester
from kbroker.metadata.new_topic import NewTopic
from kbroker.replication.topics import (
    AUTO_CREATE_TIMEOUT_MS,
    CREATE_TOPICS_VERSION,
    InternalTopicOwners,
    internal_defaults,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse

if TYPE_CHECKING:
    from kbroker.metadata.client import ControllerClient

_log = logging.getLogger(__name__)

Creatable = CreateTopicsRequest.CreatableTopic


class AutoTopicCreationServices(InternalTopicOwners, Protocol):
    """What topic auto-creation (Metadata, StreamsGroupHeartbeat) uses of the broker."""

    controller_client: ControllerClient


@dataclass(frozen=True, slots=True)
class Created:
    """The controller's answer for one topic (``error`` NONE: created)."""

    error: ErrorCode
    message: str | None = None

    @property
    def exists(self) -> bool:
        """Created by this request or by another one first."""
        return self.error in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)


# The creations under way per broker: topic name -> the CreateTopics that asks for it.
_IN_FLIGHT: weakref.WeakKeyDictionary[AutoTopicCreationServices, dict[str, asyncio.Task[CreateTopicsResponse]]] = weakref.WeakKeyDictionary()


def _request(topics: Sequence[NewTopic]) -> CreateTopicsRequest:
    return CreateTopicsRequest(timeout_ms=AUTO_CREATE_TIMEOUT_MS, validate_only=False, topics=[
        Creatable(name=t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                  assignments=[], configs=[Creatable.CreatableTopicConfig(name=k, value=v)
                                           for k, v in sorted(t.configs.items())])
        for t in topics
    ])


# How long a request waits for the controller's answer before it is answered without it.
AUTO_CREATE_WAIT_S = 2.0


def _retrieve(task: asyncio.Task[CreateTopicsResponse]) -> None:
    """Fetch a finished creation's exception (logged by the waiter, when one still waited), so that
    asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def auto_create(ctx: RequestContext[AutoTopicCreationServices], topics: Sequence[NewTopic]) -> dict[str, Created]:
    """Ask the active controller to create ``topics`` (internal ones asked for without settings get
    their coordinator's, as Kafka's ``creatableTopic``) on behalf of ``ctx``'s client and await its
    answer; returns the outcome per topic name."""
    if not topics:
        return {}
    broker = ctx.broker
    in_flight = _IN_FLIGHT.setdefault(broker, {})
    wanted = {t.name: t for t in topics}
    fresh = [internal_defaults(broker, t) for name, t in wanted.items() if name not in in_flight]
    if fresh:
        task = asyncio.get_running_loop().create_task(
            broker.controller_client.create_topics(_request(fresh), CREATE_TOPICS_VERSION, requester(ctx)))
        for t in fresh:
            in_flight[t.name] = task
        names = [t.name for t in fresh]
        task.add_done_callback(lambda _task: [in_flight.pop(name, None) for name in names])
        task.add_done_callback(_retrieve)
    outcomes: dict[str, Created] = {}
    tasks = {id(in_flight[name]): in_flight[name] for name in wanted if name in in_flight}.values()
    # Kafka answers at once and lets the creation go on; this waits a bounded time so that the
    # usual creation (the controller here, or reachable) is in this answer, while a controller
    # being elected or unreachable does not hold the connection (and every request pipelined
    # behind this one) for the controller channel's whole request timeout.
    if tasks:
        await asyncio.wait(tasks, timeout=AUTO_CREATE_WAIT_S)
    for task in tasks:
        if not task.done():
            _log.info("auto-creation of %s still under way; answered without it", sorted(wanted))
            continue
        if task.cancelled() or task.exception() is not None:
            _log.error("cannot ask the controller to create %s: %s", sorted(wanted),
                       "cancelled" if task.cancelled() else task.exception())
            continue
        response = task.result()
        for result in response.topics:
            if result.name in wanted:
                outcomes[result.name] = Created(ErrorCode(result.error_code), result.error_message)
    for name in wanted:
        outcome = outcomes.setdefault(name, Created(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no answer from the controller yet"))
        if not outcome.exists:
            _log.info("auto-creation of %s refused by the controller: %s %s", name, outcome.error.name,
                      outcome.message)
    return outcomes
