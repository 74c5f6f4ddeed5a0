"""Issue 14: Metadata's auto-creation asks the controller through the async controller client, as
CreateTopics does, and awaits its answer (Kafka's AutoTopicCreationManager sends the controller a
CreateTopics in an Envelope carrying the client's principal)."""

from __future__ import annotations

from wire import Wire

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
