"""Issue 14: what the controller writes for its own node (``kbroker/controller/node_writes.py``)
runs as a controller operation and is refused with NOT_CONTROLLER elsewhere; the control plane
and the sole voter's cordoned dirs go through it; a share group's dead-letter topic is asked of
the controller through the controller client and its dead letters wait for the answer."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from kbroker.controller.errors import ControllerError
from kbroker.controller.node_writes import record_own_cordoned, reelect_leader, reset_metadata
from kbroker.metadata.new_topic import NewTopic
from kbroker.replication.topics import create_topic
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.integration.waiting import async_wait_until

E = ErrorCode


@pytest.fixture
async def embedded():
    broker = EmbeddedBroker(control=True, config={"errors.deadletterqueue.auto.create.topics.enable": "true"})
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def not_active(broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.controller, "is_active", lambda: False)


async def test_the_sole_voter_records_its_cordoned_dirs_once_as_a_heartbeat_would(embedded, monkeypatch):
    broker = embedded.broker
    controller = broker.controller
    cordoned = [uuid.uuid4()]
    assert await record_own_cordoned(controller, cordoned) is True
    assert broker.image.brokers[broker.node_id].cordoned_log_dirs == cordoned
    end = controller.log.log_end_offset
    assert await record_own_cordoned(controller, cordoned) is False  # unchanged: no record
    assert controller.log.log_end_offset == end
    not_active(broker, monkeypatch)
    with pytest.raises(ControllerError) as refused:
        await record_own_cordoned(controller, [])
    assert refused.value.code == E.NOT_CONTROLLER
    assert controller.log.log_end_offset == end
    assert broker.image.brokers[broker.node_id].cordoned_log_dirs == cordoned


async def test_reelection_raises_the_leader_epoch_through_the_controller(embedded, monkeypatch):
    broker = embedded.broker
    assert (await create_topic(broker, NewTopic("moved", 2, 1))).error == E.NONE
    assert await reelect_leader(broker.controller, "moved", 1) == (broker.node_id, 1)
    partitions = broker.image.topic("moved").partitions
    assert (partitions[0].leader_epoch, partitions[1].leader_epoch, partitions[1].leader) == (0, 1, broker.node_id)
    with pytest.raises(KeyError):
        await reelect_leader(broker.controller, "moved", 2)
    moved = await embedded.move_leadership("moved", 0)  # the control plane, awaited
    assert (moved["leader"], moved["leader_epoch"]) == (broker.node_id, 1)
    not_active(broker, monkeypatch)
    with pytest.raises(ControllerError) as refused:
        await embedded.move_leadership("moved", 0)
    assert refused.value.code == E.NOT_CONTROLLER
    status, body = await asyncio.to_thread(post, embedded.control_url + "/leadership",
                                           {"topic": "moved", "partition": 0})
    assert (status, body["code"]) == (409, "NOT_CONTROLLER")
    assert broker.image.topic("moved").partitions[0].leader_epoch == 1


async def test_reset_removes_every_topic_and_config_in_one_write_and_refuses_elsewhere(embedded, monkeypatch):
    broker = embedded.broker
    for name in ("a", "b"):
        assert (await create_topic(broker, NewTopic(name, 1, 1))).error == E.NONE
    not_active(broker, monkeypatch)
    with pytest.raises(ControllerError) as refused:
        await embedded.reset()
    assert refused.value.code == E.NOT_CONTROLLER
    assert broker.image.topic("a") is not None and broker.partition("a", 0) is not None  # nothing touched
    monkeypatch.undo()
    end = broker.controller.log.log_end_offset
    assert sorted(await reset_metadata(broker.controller)) == ["a", "b"]
    assert broker.image.topics == {}
    assert broker.controller.log.log_end_offset > end
    assert await reset_metadata(broker.controller) == []


class GatedCreation:
    """The broker's controller client, with CreateTopics held until ``gate`` opens."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked: list[list[str]] = []
        self.gate = asyncio.Event()

    async def create_topics(self, request: Any, version: int, requester: Any = None) -> Any:
        self.asked.append([t.name for t in request.topics])
        await self.gate.wait()
        return await self.inner.create_topics(request, version, requester)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_dead_letters_wait_for_the_controllers_answer_to_the_dlq_creation(embedded):
    broker = embedded.broker
    assert (await create_topic(broker, NewTopic("src", 1, 1))).error == E.NONE
    Req = REQUESTS[44]
    configs = Req.AlterConfigsResource(resource_type=32, resource_name="g", configs=[
        Req.AlterConfigsResource.AlterableConfig(name="errors.deadletterqueue.topic.name", config_operation=0,
                                                 value="dlq.g")])
    altered = await broker.controller_client.incremental_alter_configs(Req(resources=[configs], validate_only=False), 1)
    assert altered.responses[0].error_code == E.NONE
    dead_letters = broker.share_coordinator.manager.dead_letters
    assert dead_letters.enabled("g")
    gated = GatedCreation(broker.controller_client)
    broker.controller_client = gated
    assert dead_letters.write("g", "src", 0, [(0, 1)], "first") == 0  # waits for the topic
    assert dead_letters.write("g", "src", 0, [(2, 1)], "second") == 0
    await async_wait_until(lambda: gated.asked, 5, 0.001, message="the DLQ topic asked for")
    assert gated.asked == [["dlq.g"]]  # once while under way
    assert broker.image.topic("dlq.g") is None and dead_letters.written == 0
    gated.gate.set()
    await async_wait_until(lambda: dead_letters.written == 2, 5, 0.001, message="the dead letters written")
    dlq = broker.image.topic("dlq.g")
    assert dlq.configs["errors.deadletterqueue.group.enable"] == "true"
    assert broker.partition("dlq.g", 0).log_end_offset == 2
    assert dead_letters.write("g", "src", 0, [(1, 1)], "third") == 1  # the topic is there: at once
    assert gated.asked == [["dlq.g"]]
