"""DeleteTopics at the wire: Kafka's request validation (ControllerApis.deleteTopics)."""

from __future__ import annotations

import uuid

import pytest

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from tests.integration.transactions_helpers import RawClient, create_topic

ZERO = uuid.UUID(int=0)
State = DeleteTopicsRequest.DeleteTopicState


@pytest.fixture
def raw(bootstrap):
    client = RawClient(bootstrap)
    yield client
    client.close()


def _rows(response) -> set[tuple]:
    return {(r.name, r.topic_id, r.error_code, r.error_message) for r in response.responses}


def test_names_and_ids_given_wrongly_or_twice(broker, bootstrap, raw, topic_name):
    a, b, c = (f"{topic_name}-{x}" for x in "abc")
    for name in (a, b, c):
        create_topic(bootstrap, name)
    ids = {name: broker.call(lambda name=name: broker.broker.image.topic(name).topic_id) for name in (a, b, c)}
    unknown = uuid.uuid4()
    request = DeleteTopicsRequest(timeout_ms=5000, topics=[
        State(name=None, topic_id=ZERO),
        State(name=a, topic_id=ids[a]),
        State(name=None, topic_id=ids[b]),
        State(name=b, topic_id=ZERO),
        State(name=c, topic_id=ZERO),
        State(name=c, topic_id=ZERO),
        State(name=None, topic_id=unknown),
        State(name=None, topic_id=unknown),
    ])
    E = ErrorCode
    assert _rows(raw.call(request, DeleteTopicsResponse, 6)) == {
        (None, ZERO, E.INVALID_REQUEST, "Neither topic name nor id were specified."),
        (a, ids[a], E.INVALID_REQUEST, "You may not specify both topic name and topic id."),
        (b, ids[b], E.INVALID_REQUEST, "The provided topic name maps to an ID that was already supplied."),
        (c, ZERO, E.INVALID_REQUEST, "Duplicate topic name."),
        (None, unknown, E.INVALID_REQUEST, "Duplicate topic id."),
        (b, ids[b], E.NONE, None),  # deleted by its id
    }
    remaining = broker.call(lambda: {n for n in (a, b, c) if broker.broker.image.topic(n) is not None})
    assert remaining == {a, c}
    # Before v6, names only: a name given twice is reported once and nothing is deleted.
    response = raw.call(DeleteTopicsRequest(timeout_ms=5000, topic_names=[a, a]), DeleteTopicsResponse, 5)
    assert _rows(response) == {(a, ZERO, E.INVALID_REQUEST, "Duplicate topic name.")}
    assert broker.call(lambda: broker.broker.image.topic(a)) is not None


@pytest.mark.parametrize("version,code", [(2, ErrorCode.INVALID_REQUEST), (3, ErrorCode.TOPIC_DELETION_DISABLED)])
def test_deletion_disabled_answers_every_topic(version, code):
    with BrokerThread(config={"delete.topic.enable": "false"}) as b:
        create_topic(b.bootstrap_servers, "kept")
        raw = RawClient(b.bootstrap_servers)
        try:
            response = raw.call(DeleteTopicsRequest(timeout_ms=5000, topic_names=["kept", "never-created"]),
                                DeleteTopicsResponse, version)
        finally:
            raw.close()
        assert _rows(response) == {("kept", ZERO, code, None), ("never-created", ZERO, code, None)}
        assert b.call(lambda: b.broker.image.topic("kept")) is not None
