"""DeleteTopics bounded by the records of one controller operation, as Kafka 4.4's
ReplicationControlManager.deleteTopics: a RemoveTopicRecord per deleted topic in a list bounded
to MAX_RECORDS_PER_USER_OP (10,000); the BoundedListTooLongException is caught per topic, so each
topic past the bound gets UNKNOWN_SERVER_ERROR without a message and stays, the others are deleted.
(10,001 topics would be slow to create: the bound is lowered here.)"""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.controller.operations import delete_topics as delete_topics_api
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
DT = REQUESTS[20]


def exists(wire: Wire, name: str) -> bool:
    resp = wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return resp.topics[0].error_code == E.NONE


def test_topics_past_the_bound_fail_and_stay(wire, topic_name, monkeypatch):
    names = [f"{topic_name}-{i}" for i in range(3)]
    for n in names:
        create_topic(wire, n, 1)
    missing = f"{topic_name}-missing"
    monkeypatch.setattr(delete_topics_api, "MAX_RECORDS_PER_USER_OP", 2)
    resp = wire.call(20, 5, topic_names=[missing, *names], timeout_ms=10000)
    assert [(r.name, r.error_code, r.error_message) for r in resp.responses] == [
        (missing, E.UNKNOWN_TOPIC_OR_PARTITION, None),  # counts nothing
        (names[0], E.NONE, None), (names[1], E.NONE, None), (names[2], E.UNKNOWN_SERVER_ERROR, None)]
    assert [exists(wire, n) for n in names] == [False, False, True]
    resp = wire.call(20, 5, topic_names=[names[2]], timeout_ms=10000)  # a new operation, a new bound
    assert resp.responses[0].error_code == E.NONE
    assert not exists(wire, names[2])
