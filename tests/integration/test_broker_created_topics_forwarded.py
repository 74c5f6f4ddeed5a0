"""Issue 14: the topics a broker creates for itself (a share group's dead-letter topic) go to the
active controller through the controller client, on a node whose active controller is another
one as on the controller's own node: node B forwards to node A (in-process, no Raft), A applies
the creation, B writes nothing itself."""

from __future__ import annotations

import pytest

from kbroker.metadata.new_topic import NewTopic
from kbroker.replication.topics import create_topic
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.integration.controller_forwarding_helpers import address, forward_to, two_nodes
from tests.integration.waiting import async_wait_until

E = ErrorCode


async def test_create_topic_on_a_node_whose_controller_is_elsewhere_is_applied_by_the_controller(nodes):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})
    b_end = b.broker.controller.log.log_end_offset
    created = await create_topic(b.broker, NewTopic("dlq.forwarded", 3, -1, configs={"retention.ms": "60000"}))
    assert (created.name, created.error) == ("dlq.forwarded", E.NONE)
    topic = a.broker.image.topic("dlq.forwarded")
    assert topic is not None and len(topic.partitions) == 3 and topic.configs["retention.ms"] == "60000"
    assert b.broker.image.topic("dlq.forwarded") is None  # B learns it from the metadata log (not here)
    assert b.broker.controller.log.log_end_offset == b_end  # nothing committed on B
    again = await create_topic(b.broker, NewTopic("dlq.forwarded", 3, -1))
    assert again.error == E.TOPIC_ALREADY_EXISTS


@pytest.fixture
async def dlq_nodes(controller_apis):
    """The ``nodes`` fixture's two nodes, with dead-letter topics auto-created."""
    async with two_nodes({"errors.deadletterqueue.auto.create.topics.enable": "true"}) as pair:
        yield pair


async def test_a_dead_letter_topic_missing_on_b_is_asked_of_a(dlq_nodes):
    a, b = dlq_nodes
    Req = REQUESTS[44]
    configs = Req.AlterConfigsResource(resource_type=32, resource_name="g", configs=[
        Req.AlterConfigsResource.AlterableConfig(name="errors.deadletterqueue.topic.name", config_operation=0,
                                                 value="dlq.g")])
    # B's group config, set while B is still its own controller; then B forwards to A
    done = await b.broker.controller_client.incremental_alter_configs(Req(resources=[configs], validate_only=False), 1)
    assert done.responses[0].error_code == E.NONE
    forward_to(b, lambda: 1, {1: address(a)})
    dead_letters = b.broker.share_coordinator.manager.dead_letters
    assert dead_letters.write("g", "src", 0, [(0, 1)], "rejected") == 0
    topic = await async_wait_until(lambda: a.broker.image.topic("dlq.g"), 10, 0.005,
                                   message="dlq.g created by A")
    assert topic.configs["errors.deadletterqueue.group.enable"] == "true"
    assert topic.configs["message.timestamp.type"] == "CreateTime"
    await async_wait_until(lambda: not dead_letters._creating, 10, 0.005, message="the creation answered")
    # B's image has no dlq.g until it applies A's records: the dead letter is not written here
    assert b.broker.image.topic("dlq.g") is None and dead_letters.written == 0
