"""Two of Kafka's checks past the per-API ones: a follower's fetch (replica id >= 0) needs
CLUSTER_ACTION on the cluster, as Kafka's handleFetch checks it (without it every partition answers
TOPIC_AUTHORIZATION_FAILED and no record goes out, whatever READ ACLs the principal has on the
topic; with it, or as a super user, the fetch is served as a follower's); and a KIP-848 member may
subscribe by name only to topics it may DESCRIBE (handleConsumerGroupHeartbeat answers
TOPIC_AUTHORIZATION_FAILED otherwise)."""

from __future__ import annotations

import uuid

from security_helpers import acl_config, allow, grant, login
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch

E = ErrorCode
Q = REQUESTS


def _fetch(w: Wire, topic: str, replica_id: int):
    F = Q[1]
    return w.call(1, 12, replica_id=replica_id, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                  session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[
                      F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                       log_start_offset=-1, partition_max_bytes=1 << 20)])],
                  forgotten_topics_data=[], rack_id="")


def test_a_follower_fetch_needs_cluster_action(acl_broker) -> None:
    topic = f"secret-{uuid.uuid4().hex[:6]}"
    admin = login(acl_broker, "admin")
    create_topic(admin, topic)
    P = Q[0]
    produced = admin.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=build_batch([Record(value=b"payload", timestamp=1_700_000_000_000)]))])])
    assert produced.responses[0].partition_responses[0].error_code == E.NONE
    # alice may read the topic (and bob may CLUSTER_ACTION): READ does not make a follower
    r = admin.call(30, 3, creations=[allow(A.TOPIC, topic, "User:alice", A.READ),
                                     allow(A.CLUSTER, A.CLUSTER_NAME, "User:bob", A.CLUSTER_ACTION)])
    assert [x.error_code for x in r.results] == [E.NONE, E.NONE]

    alice = login(acl_broker, "alice")
    as_consumer = _fetch(alice, topic, -1).responses[0].partitions[0]
    assert as_consumer.error_code == E.NONE and as_consumer.records  # her READ ACL works for a consumer
    as_follower = _fetch(alice, topic, 2).responses[0].partitions[0]
    assert as_follower.error_code == E.TOPIC_AUTHORIZATION_FAILED
    assert not as_follower.records

    for user in ("bob", "admin"):  # CLUSTER_ACTION, a super user: served as a follower's fetch
        got = _fetch(login(acl_broker, user), topic, 2).responses[0].partitions[0]
        assert got.error_code != E.TOPIC_AUTHORIZATION_FAILED, user


def test_a_consumer_group_member_subscribes_only_to_topics_it_may_describe(acl_broker) -> None:
    suffix = uuid.uuid4().hex[:6]
    mine, theirs, group = f"mine-{suffix}", f"theirs-{suffix}", f"grp-{suffix}"
    grant(acl_broker, allow(A.TOPIC, mine, "User:alice", A.DESCRIBE),
          allow(A.GROUP, group, "User:alice", A.READ), topics=(mine, theirs))

    alice = login(acl_broker, "alice")

    def join(topics: list[str]):
        return alice.call(68, 1, group_id=group, member_id=uuid.uuid4().hex[:22], member_epoch=0, instance_id=None,
                          rack_id=None, rebalance_timeout_ms=30000, subscribed_topic_names=topics,
                          subscribed_topic_regex=None, server_assignor=None, topic_partitions=[])

    denied = join([mine, theirs])
    assert denied.error_code == E.TOPIC_AUTHORIZATION_FAILED
    # Kafka's handleConsumerGroupHeartbeat sets only the error code here (no message)
    assert denied.error_message is None
    assert join([mine]).error_code == E.NONE


def test_a_regex_subscription_gets_only_the_matching_topics_the_member_may_describe(acl_broker) -> None:
    """Kafka's TopicRegexResolver.filterTopicDescribeAuthorizedTopics: the topics a regex resolves to
    are filtered by DESCRIBE for the principal of the heartbeat that resolved it."""
    suffix = uuid.uuid4().hex[:6]
    allowed, hidden, unmatched, group = f"rx{suffix}-a", f"rx{suffix}-b", f"other-{suffix}", f"grp-{suffix}"
    admin = login(acl_broker, "admin")
    r = admin.call(19, 7, topics=[Q[19].CreatableTopic(name=n, num_partitions=2, replication_factor=1,
                                                       assignments=[], configs=[]) for n in (allowed, hidden, unmatched)],
                   timeout_ms=10000, validate_only=False)
    assert [t.error_code for t in r.topics] == [E.NONE] * 3
    ids = {t.name: t.topic_id for t in r.topics}
    r = admin.call(30, 3, creations=[allow(A.TOPIC, allowed, "User:alice", A.DESCRIBE),
                                     allow(A.TOPIC, unmatched, "User:alice", A.DESCRIBE),
                                     allow(A.GROUP, group, "User:alice", A.READ)])
    assert [x.error_code for x in r.results] == [E.NONE] * 3

    def assigned(conn, group_id: str) -> list:
        """Join with the regex, then heartbeat until the asynchronous refresh (Kafka's) has resolved
        it and the member is assigned its topics."""
        member = uuid.uuid4().hex[:22]
        joined = conn.call(68, 1, group_id=group_id, member_id=member, member_epoch=0, instance_id=None,
                           rack_id=None, rebalance_timeout_ms=30000, subscribed_topic_names=None,
                           subscribed_topic_regex=f"rx{suffix}-.*", server_assignor=None, topic_partitions=[])
        assert (joined.error_code, joined.member_epoch) == (E.NONE, 1)
        assert joined.assignment.topic_partitions == []  # not resolved yet

        def heartbeat():
            got = conn.call(68, 1, group_id=group_id, member_id=member, member_epoch=1, instance_id=None,
                            rack_id=None, rebalance_timeout_ms=-1, subscribed_topic_names=None,
                            subscribed_topic_regex=None, server_assignor=None, topic_partitions=[])
            assert got.error_code == E.NONE
            return got if got.member_epoch == 2 else None

        got = wait_until(heartbeat, message="the regex resolved and assigned")
        return sorted((tp.topic_id, p) for tp in got.assignment.topic_partitions for p in tp.partitions)

    # not the matching topic alice may not describe
    assert assigned(login(acl_broker, "alice"), group) == [(ids[allowed], 0), (ids[allowed], 1)]
    # the admin (a super user) subscribing to the same regex in another group gets both
    other = assigned(admin, f"{group}-admin")
    assert sorted({t for t, _p in other}) == sorted([ids[allowed], ids[hidden]])


def test_a_disabled_consumer_protocol_is_said_before_the_group_acl_is_checked() -> None:
    """Kafka's handleConsumerGroupHeartbeat answers UNSUPPORTED_VERSION when the consumer protocol
    is off before it checks READ on the group: a principal without that ACL gets UNSUPPORTED_VERSION
    too, not GROUP_AUTHORIZATION_FAILED."""
    with BrokerThread(acl_config(**{"group.coordinator.rebalance.protocols": "classic"})) as b:
        got = login(b, "alice").call(
            68, 1, group_id="no-acl", member_id=uuid.uuid4().hex[:22], member_epoch=0, instance_id=None,
            rack_id=None, rebalance_timeout_ms=30000, subscribed_topic_names=["t"], subscribed_topic_regex=None,
            server_assignor=None, topic_partitions=[])
        assert got.error_code == E.UNSUPPORTED_VERSION
