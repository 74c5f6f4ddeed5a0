"""Issue 14: Metadata's auto-creation asks the controller through the async controller client, as
CreateTopics does, and awaits its answer (Kafka's AutoTopicCreationManager sends the controller a
CreateTopics in an Envelope carrying the client's principal)."""

from __future__ import annotations

import asyncio

from waiting import wait_until
from wire import Wire

from kbroker.api import auto_topic_creation
from kbroker_protocol.messages import REQUESTS, RESPONSES


def _record_creations(monkeypatch, broker) -> list[tuple[list[str], tuple[str | None, str]]]:
    client = broker.broker.controller_client
    real = client.create_topics
    calls: list[tuple[list[str], tuple[str | None, str]]] = []

    async def recording(request, version, requester=None):
        calls.append(([t.name for t in request.topics], (requester.client_id, requester.principal_name)))
        return await real(request, version, requester)

    monkeypatch.setattr(client, "create_topics", recording)
    return calls


def test_metadata_auto_creation_goes_through_the_controller_client(wire: Wire, broker, topic_name, monkeypatch):
    calls = _record_creations(monkeypatch, broker)
    T = REQUESTS[3].MetadataRequestTopic
    resp = wire.call(3, 12, topics=[T(name=topic_name), T(name=topic_name + "-b")], allow_auto_topic_creation=True)
    # one CreateTopics for both, on behalf of the client
    assert [names for names, _ in calls] == [[topic_name, topic_name + "-b"]]
    assert calls[0][1] == ("wire-test", "ANONYMOUS")
    # awaited: on the active controller's node the answer already has the partitions
    assert [(t.name, t.error_code) for t in resp.topics] == [(topic_name, 0), (topic_name + "-b", 0)]
    assert all(len(t.partitions) == broker.broker.config["num.partitions"] for t in resp.topics)
    again = wire.call(3, 12, topics=[T(name=topic_name)], allow_auto_topic_creation=True)
    assert again.topics[0].error_code == 0 and len(calls) == 1  # exists: not asked again


def test_a_refused_auto_creation_answers_as_kafka(wire: Wire, broker, topic_name, monkeypatch):
    """The controller's refusal is not passed on: INVALID_TOPIC_EXCEPTION for an invalid name,
    UNKNOWN_TOPIC_OR_PARTITION otherwise (Kafka 4.4's KafkaApis/AutoTopicCreationManager)."""
    client = broker.broker.controller_client

    async def refusing(request, version, requester=None):
        R = RESPONSES[19]
        return R(topics=[R.CreatableTopicResult(name=t.name, error_code=38, error_message="policy")  # INVALID_REPLICATION_FACTOR
                         for t in request.topics])

    monkeypatch.setattr(client, "create_topics", refusing)
    T = REQUESTS[3].MetadataRequestTopic
    resp = wire.call(3, 12, topics=[T(name=topic_name)], allow_auto_topic_creation=True)
    assert [(t.name, t.error_code, t.partitions) for t in resp.topics] == [(topic_name, 3, [])]
    monkeypatch.undo()
    bad = wire.call(3, 12, topics=[T(name="a/b")], allow_auto_topic_creation=True)
    assert [(t.name, t.error_code) for t in bad.topics] == [("a/b", 17)]  # INVALID_TOPIC_EXCEPTION
    assert broker.broker.image.topic(topic_name) is None


def test_a_controller_that_does_not_answer_does_not_hold_the_connection(wire: Wire, broker, topic_name, monkeypatch):
    """A controller being elected or unreachable: the Metadata answer does not wait for the
    controller channel's whole request timeout (Kafka answers without waiting at all); the topic is
    answered UNKNOWN_TOPIC_OR_PARTITION, the next request on the connection is answered, and the
    creation, once the controller answers, is not asked again meanwhile (review finding of
    2026-12-07)."""
    client = broker.broker.controller_client
    real = client.create_topics
    released: list[asyncio.Event] = []
    calls: list[list[str]] = []

    async def stalled(request, version, requester=None):
        calls.append([t.name for t in request.topics])
        event = asyncio.Event()
        released.append(event)
        await event.wait()
        return await real(request, version, requester)

    monkeypatch.setattr(client, "create_topics", stalled)
    monkeypatch.setattr(auto_topic_creation, "AUTO_CREATE_WAIT_S", 0.05)
    T = REQUESTS[3].MetadataRequestTopic
    first = wire.call(3, 12, topics=[T(name=topic_name)], allow_auto_topic_creation=True)
    assert [(t.name, t.error_code) for t in first.topics] == [(topic_name, 3)]
    second = wire.call(3, 12, topics=[T(name=topic_name)], allow_auto_topic_creation=True)
    assert [(t.name, t.error_code) for t in second.topics] == [(topic_name, 3)]
    assert calls == [[topic_name]]  # still under way: not asked again
    broker.call(lambda: [event.set() for event in released])
    monkeypatch.setattr(auto_topic_creation, "AUTO_CREATE_WAIT_S", 30.0)
    wait_until(lambda: broker.broker.image.topic(topic_name) is not None, message="the topic created")
    done = wire.call(3, 12, topics=[T(name=topic_name)], allow_auto_topic_creation=True)
    assert done.topics[0].error_code == 0 and calls == [[topic_name]]
