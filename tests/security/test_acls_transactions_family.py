"""DescribeProducers, DescribeTransactions and ListTransactions follow the ACLs as Kafka's KafkaApis
does: DescribeProducers needs READ on each topic (TOPIC_AUTHORIZATION_FAILED per partition),
DescribeTransactions DESCRIBE on each transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and
lists only the topics one may DESCRIBE, ListTransactions lists only the ids one may DESCRIBE."""

from __future__ import annotations

import uuid

import confluent_kafka
from security_helpers import allow, client_config, login
from wire import Wire, create_topic

from kbroker.security import acls as A
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
Q = REQUESTS


def _allow(admin: Wire, resource_type: int, name: str, operation: int) -> None:
    r = admin.call(30, 3, creations=[allow(resource_type, name, "User:alice", operation)])
    assert r.results[0].error_code == E.NONE


def test_producer_and_transaction_listings_follow_the_acls(acl_broker) -> None:
    suffix = uuid.uuid4().hex[:6]
    topic, txn_id = f"secret-{suffix}", f"tx-{suffix}"
    admin = login(acl_broker, "admin")
    create_topic(admin, topic)
    producer = confluent_kafka.Producer(client_config(acl_broker, "admin", **{"transactional.id": txn_id}))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"open")
    assert producer.flush(30) == 0  # the transaction stays open: Ongoing, with the topic in it

    alice = login(acl_broker, "alice")

    def producers():
        r = alice.call(61, 0, topics=[Q[61].TopicRequest(name=topic, partition_indexes=[0])])
        return r.topics[0].partitions[0]

    def described():
        return alice.call(65, 0, transactional_ids=[txn_id]).transaction_states[0]

    def listed() -> list[str]:
        r = alice.call(66, 1, state_filters=[], producer_id_filters=[], duration_filter=-1)
        assert r.error_code == E.NONE
        return [t.transactional_id for t in r.transaction_states]

    denied = producers()
    assert denied.error_code == E.TOPIC_AUTHORIZATION_FAILED and denied.active_producers == []
    assert denied.error_message == "Topic authorization failed."
    state = described()
    assert state.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert (state.transaction_state, state.producer_id, state.topics) == ("", 0, [])
    assert txn_id not in listed()

    _allow(admin, A.TRANSACTIONAL_ID, txn_id, A.DESCRIBE)  # the id, not the topic
    state = described()
    assert state.error_code == E.NONE and state.transaction_state == "Ongoing"
    assert state.topics == []  # the topic is left out: alice may not describe it
    assert txn_id in listed()

    _allow(admin, A.TOPIC, topic, A.READ)  # READ implies DESCRIBE
    assert [t.topic for t in described().topics] == [topic]
    allowed = producers()
    assert allowed.error_code == E.NONE and len(allowed.active_producers) == 1
    producer.abort_transaction(30)


def test_describe_producers_checks_the_topic_name_then_read_then_existence(acl_broker) -> None:
    """Kafka's handleDescribeProducersRequest: an illegal topic name answers INVALID_TOPIC_EXCEPTION
    (before READ is checked), a topic the principal may not READ TOPIC_AUTHORIZATION_FAILED, a
    missing one UNKNOWN_TOPIC_OR_PARTITION, each with its message, for every partition asked."""
    admin = login(acl_broker, "admin")
    alice = login(acl_broker, "alice")
    missing = f"missing-{uuid.uuid4().hex[:6]}"

    def producers(w: Wire, name: str):
        r = w.call(61, 0, topics=[Q[61].TopicRequest(name=name, partition_indexes=[0, 1])])
        return [(p.partition_index, p.error_code, p.error_message) for p in r.topics[0].partitions]

    bad = producers(alice, "bad/name")
    assert [(i, code) for i, code, _ in bad] == [(0, E.INVALID_TOPIC_EXCEPTION), (1, E.INVALID_TOPIC_EXCEPTION)]
    assert "illegal" in (bad[0][2] or "")
    assert producers(alice, missing) == [(0, E.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed."),
                                         (1, E.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.")]
    message = "This server does not host this topic-partition."
    assert producers(admin, missing) == [(0, E.UNKNOWN_TOPIC_OR_PARTITION, message),
                                         (1, E.UNKNOWN_TOPIC_OR_PARTITION, message)]
