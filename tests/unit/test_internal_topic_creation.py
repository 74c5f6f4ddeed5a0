"""The coordinators' internal topics are asked of the active controller through the broker's async
controller client (issue 14), on a single node as in a quorum, as Kafka's coordinators have their
broker's AutoTopicCreationManager send a CreateTopics: ``ensure_internal_topic`` answers False
until this node's image has the topic, asks once while a creation is under way, never commits
metadata itself, and asks again after a refusal or an unreachable controller;
``await_internal_topic`` waits a bounded time for the controller's answer. Fakes throughout: an
image that has what the fake controller applied, a controller client that records its
CreateTopics and answers when the test lets it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import pytest

from kbroker.metadata.client import ControllerUnavailable, Requester
from kbroker.replication.topics import await_internal_topic, ensure_internal_topic
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse

E = ErrorCode
Result = CreateTopicsResponse.CreatableTopicResult


class FakeTopic:
    def __init__(self, partitions: int) -> None:
        self.partitions = dict.fromkeys(range(partitions), object())


class FakeImage:
    def __init__(self) -> None:
        self.topics: dict[str, FakeTopic] = {}

    def topic(self, name: str) -> FakeTopic | None:
        return self.topics.get(name)


class FakeClient:
    """Records each CreateTopics; answers once ``gate`` is set: ``error`` for every topic (NONE:
    the topic is applied to the image first, as the local controller's commit does), or raises
    ``fail``."""

    def __init__(self, image: FakeImage) -> None:
        self.image = image
        self.requests: list[CreateTopicsRequest] = []
        self.gate = asyncio.Event()
        self.error = E.NONE
        self.fail: Exception | None = None

    async def create_topics(self, request: CreateTopicsRequest, version: int,
                            requester: Requester | None = None) -> CreateTopicsResponse:
        self.requests.append(request)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if self.error == E.NONE:
            for t in request.topics:
                self.image.topics[t.name] = FakeTopic(t.num_partitions)
        return CreateTopicsResponse(topics=[Result(name=t.name, error_code=self.error) for t in request.topics])


class NoCommits:
    """An active single-voter controller whose synchronous paths must not be taken."""

    commits_synchronously = True

    def is_active(self) -> bool:
        return True

    def commit(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the internal topic was committed synchronously")

    def plan_topic(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the internal topic was planned on the calling thread")


class FakeBroker:
    def __init__(self) -> None:
        self.image = FakeImage()
        self.controller_client = FakeClient(self.image)
        self.controller = NoCommits()
        self.stopping = False
        self.background: list[asyncio.Task[object]] = []

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.background.append(task)
        return task


CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


async def settle() -> None:
    """Let the tasks the calls started run up to their next wait (the fake client's gate)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_missing_topic_is_asked_of_the_controller_client_once_while_under_way() -> None:
    broker = FakeBroker()
    client = broker.controller_client
    for _ in range(3):
        assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS, 3) is False
    await settle()
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS, 3) is False
    [request] = client.requests
    [topic] = request.topics
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("__consumer_offsets", 7, 3)
    assert sorted((c.name, c.value) for c in topic.configs) == sorted(CONFIGS.items())
    assert request.validate_only is False and request.timeout_ms == 30_000
    client.gate.set()
    await settle()
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS, 3) is True
    assert len(client.requests) == 1  # there: not asked again


async def test_each_topic_is_asked_for_on_its_own() -> None:
    broker = FakeBroker()
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    assert ensure_internal_topic(broker, "__transaction_state", 3, CONFIGS) is False
    await settle()
    assert sorted(r.topics[0].name for r in broker.controller_client.requests) == [
        "__consumer_offsets", "__transaction_state"]
    broker.controller_client.gate.set()
    await settle()


async def test_await_returns_once_the_controller_has_answered() -> None:
    broker = FakeBroker()
    broker.controller_client.gate.set()
    assert await await_internal_topic(broker, "__transaction_state", 3, CONFIGS, 1) is True
    assert broker.image.topic("__transaction_state") is not None
    assert len(broker.controller_client.requests) == 1


async def test_await_answers_without_the_topic_while_the_controller_has_not() -> None:
    broker = FakeBroker()
    assert await await_internal_topic(broker, "__share_group_state", 50, CONFIGS, 1, wait_s=0) is False
    await settle()
    assert len(broker.controller_client.requests) == 1  # asked, still under way
    broker.controller_client.gate.set()
    await settle()
    assert await await_internal_topic(broker, "__share_group_state", 50, CONFIGS, 1, wait_s=0) is True


async def test_a_topic_the_image_has_without_partitions_is_not_asked_for_again() -> None:
    broker = FakeBroker()
    broker.image.topics["__consumer_offsets"] = FakeTopic(0)  # being applied
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    await settle()
    assert broker.controller_client.requests == []


@pytest.mark.parametrize("outcome", ["refused", "unreachable"])
async def test_a_refused_or_failed_creation_is_asked_again_on_the_next_use(outcome: str) -> None:
    broker = FakeBroker()
    client = broker.controller_client
    if outcome == "refused":
        client.error = E.INVALID_REPLICATION_FACTOR  # fewer brokers than the topic's replication factor
    else:
        client.fail = ControllerUnavailable("no active controller")
    client.gate.set()
    assert await await_internal_topic(broker, "__consumer_offsets", 7, CONFIGS, 3) is False
    assert broker.image.topic("__consumer_offsets") is None
    client.error, client.fail = E.NONE, None
    assert await await_internal_topic(broker, "__consumer_offsets", 7, CONFIGS, 3) is True
    assert len(client.requests) == 2


def test_without_an_event_loop_nothing_is_sent() -> None:
    broker = FakeBroker()
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    assert broker.controller_client.requests == []


async def test_the_creation_is_a_background_task_of_the_broker_and_none_starts_while_stopping() -> None:
    broker = FakeBroker()
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    [task] = broker.background  # the broker's: its stop() cancels it
    assert task.get_name() == "create-__consumer_offsets"
    await settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    broker.stopping = True
    assert ensure_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    assert await await_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    assert len(broker.background) == 1 and len(broker.controller_client.requests) == 1


@pytest.mark.parametrize(("code", "level"), [(E.NOT_CONTROLLER, logging.INFO), (E.REQUEST_TIMED_OUT, logging.INFO),
                                             (E.INVALID_REPLICATION_FACTOR, logging.ERROR)])
async def test_a_transient_refusal_is_logged_at_info(code: ErrorCode, level: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    broker = FakeBroker()
    broker.controller_client.error = code
    broker.controller_client.gate.set()
    with caplog.at_level(logging.INFO, logger="kbroker.replication.topics"):
        assert await await_internal_topic(broker, "__consumer_offsets", 7, CONFIGS) is False
    [record] = [r for r in caplog.records if "__consumer_offsets" in r.getMessage()]
    assert record.levelno == level and code.name in record.getMessage()
