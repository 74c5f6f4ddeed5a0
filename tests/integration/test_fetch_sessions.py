"""Fetch sessions (KIP-227) at the wire: the session errors, as Kafka's FetchManager answers them."""

from __future__ import annotations

import pytest

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.fetch import FetchRequest, FetchResponse
from tests.integration.transactions_helpers import RawClient, create_topic

FT = FetchRequest.FetchTopic


@pytest.fixture
def raw(bootstrap):
    client = RawClient(bootstrap)
    yield client
    client.close()


def fetch(raw, version: int, session_id: int, epoch: int, topic: str, topic_id):
    part = FT.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                             partition_max_bytes=1 << 20)
    request = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                           session_id=session_id, session_epoch=epoch, forgotten_topics_data=[], rack_id="",
                           topics=[FT(topic=topic, topic_id=topic_id, partitions=[part])])
    return raw.call(request, FetchResponse, version)


def test_session_errors(broker, bootstrap, raw, topic_name):
    create_topic(bootstrap, topic_name)
    topic_id = broker.call(lambda: broker.broker.image.topic(topic_name).topic_id)
    opened = fetch(raw, 12, 0, 0, topic_name, topic_id)
    assert opened.error_code == ErrorCode.NONE and opened.session_id != 0
    sid = opened.session_id
    # An incremental fetch needs an existing session (id 0 is none) at its next epoch.
    assert fetch(raw, 12, 0, 1, topic_name, topic_id).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert fetch(raw, 12, sid + 1, 1, topic_name, topic_id).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert fetch(raw, 12, sid, 2, topic_name, topic_id).error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    # A session opened naming topics (v12) cannot go on by topic id (v13+).
    assert fetch(raw, 13, sid, 1, topic_name, topic_id).error_code == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    follow = fetch(raw, 12, sid, 1, topic_name, topic_id)
    assert (follow.error_code, follow.session_id) == (ErrorCode.NONE, sid)
    by_id = fetch(raw, 13, 0, 0, "", topic_id)
    assert fetch(raw, 12, by_id.session_id, 1, topic_name, topic_id).error_code == \
        ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
