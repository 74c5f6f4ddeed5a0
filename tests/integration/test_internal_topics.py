"""The internal topics are created lazily, as Kafka does: ``__consumer_offsets`` when a group first
needs it, ``__transaction_state`` when a transactional id does (FindCoordinator answers
COORDINATOR_NOT_AVAILABLE meanwhile), with the coordinators' partitions and configs; a restart
loads them and what they hold."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from tests.integration.waiting import wait_until

E = ErrorCode
CONFIG = {"offsets.topic.num.partitions": "7", "transaction.state.log.num.partitions": "3"}
INTERNAL = {"__consumer_offsets", "__transaction_state"}


def metadata_topics(wire: Wire, names: list[str] | None = None, auto_create: bool = False) -> dict[str, tuple]:
    """{name: (error, is_internal, partition count)} of a Metadata v12 request (all topics when None)."""
    M = REQUESTS[3]
    topics = None if names is None else [M.MetadataRequestTopic(name=n) for n in names]
    resp = wire.call(3, 12, topics=topics, allow_auto_topic_creation=auto_create,
                     include_topic_authorized_operations=False)
    return {t.name: (t.error_code, t.is_internal, len(t.partitions)) for t in resp.topics}


def topic_config(broker: BrokerThread, name: str) -> dict[str, str]:
    return broker.call(lambda: dict(broker.broker.image.topic(name).configs))


def find(wire: Wire, key_type: int, key: str) -> int:
    return wire.call(FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key]), 4).coordinators[0].error_code


def test_fresh_broker_has_no_internal_topics_until_used(tmp_path):
    with BrokerThread(config=CONFIG, data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "plain", 1)
            assert set(metadata_topics(w)) == {"plain"}
            # The first FindCoordinator for a group asks for __consumer_offsets and is told to retry;
            # a retry finds the coordinator once the topic is created.
            assert find(w, 0, "g") == E.COORDINATOR_NOT_AVAILABLE
            wait_until(lambda: find(w, 0, "g") == E.NONE, message="the group coordinator found")
            assert metadata_topics(w) == {"plain": (E.NONE, False, 1), "__consumer_offsets": (E.NONE, True, 7)}
            config = topic_config(b, "__consumer_offsets")
            assert config["cleanup.policy"] == "compact"
            assert config["segment.bytes"] == "104857600"
            # Likewise __transaction_state for a transactional id.
            assert find(w, 1, "t") == E.COORDINATOR_NOT_AVAILABLE
            wait_until(lambda: find(w, 1, "t") == E.NONE, message="the transaction coordinator found")
            assert metadata_topics(w)["__transaction_state"] == (E.NONE, True, 3)
            assert topic_config(b, "__transaction_state")["cleanup.policy"] == "compact"
        finally:
            w.close()


def test_metadata_auto_creation_of_an_internal_topic_uses_its_settings(tmp_path):
    with BrokerThread(config=CONFIG, data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        try:
            assert metadata_topics(w, ["__consumer_offsets"], auto_create=True) == {
                "__consumer_offsets": (E.NONE, True, 7)}
            assert topic_config(b, "__consumer_offsets")["cleanup.policy"] == "compact"
            # The group coordinator uses the topic created that way.
            assert find(w, 0, "g") == E.NONE
        finally:
            w.close()


def test_an_offsets_topic_created_by_hand_is_used_with_its_partition_count(tmp_path):
    with BrokerThread(config=CONFIG, data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "__consumer_offsets", 2, {"cleanup.policy": "compact"})
            keys = [f"g{i}" for i in range(20)]  # some of them hash to partitions >= 2 of 7
            resp = w.call(FindCoordinatorRequest(key_type=0, coordinator_keys=keys), 4)
            assert [c.error_code for c in resp.coordinators] == [E.NONE] * len(keys)
            assert b.call(lambda: b.broker.group_coordinator.num_partitions) == 2
        finally:
            w.close()


def init_pid(wire: Wire, transactional_id: str | None) -> int:
    return wire.call(InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=60000,
                                           producer_id=-1, producer_epoch=-1), 4).error_code


def test_requests_without_find_coordinator_create_what_they_need(tmp_path):
    with BrokerThread(config=CONFIG, data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "plain", 1)
            # An idempotent producer needs no transaction log.
            assert init_pid(w, None) == E.NONE
            assert set(metadata_topics(w)) == {"plain"}
            # A transactional id does.
            assert init_pid(w, "tx") == E.NONE
            assert metadata_topics(w)["__transaction_state"] == (E.NONE, True, 3)
            assert "__consumer_offsets" not in metadata_topics(w)
            # A group write (a simple consumer's commit) creates the offsets topic.
            T = OffsetCommitRequest.OffsetCommitRequestTopic
            resp = w.call(OffsetCommitRequest(group_id="simple", generation_id_or_member_epoch=-1, member_id="",
                                              group_instance_id=None, topics=[T(name="plain", partitions=[
                                                  T.OffsetCommitRequestPartition(partition_index=0, committed_offset=3,
                                                                                 committed_metadata="")])]), 8)
            assert [p.error_code for t in resp.topics for p in t.partitions] == [E.NONE]
            assert metadata_topics(w)["__consumer_offsets"] == (E.NONE, True, 7)
        finally:
            w.close()


def test_clients_create_the_topics_and_a_restart_keeps_them(tmp_path):
    data = str(tmp_path / "data")
    group, tid = f"g-{uuid.uuid4().hex[:8]}", f"tx-{uuid.uuid4().hex[:8]}"
    with BrokerThread(config=CONFIG, data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "data", 2)
        assert set(metadata_topics(w)) == {"data"}

        consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group,
                             "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition("data", 0, 5), TopicPartition("data", 1, 9)],
                            asynchronous=False)
        finally:
            consumer.close()
        assert metadata_topics(w) == {"data": (E.NONE, False, 2), "__consumer_offsets": (E.NONE, True, 7)}

        producer = Producer({"bootstrap.servers": b.bootstrap_servers, "transactional.id": tid})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("data", b"in a transaction", partition=0)
        producer.commit_transaction(30)
        assert metadata_topics(w)["__transaction_state"] == (E.NONE, True, 3)
        w.close()

    with BrokerThread(config=CONFIG, data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        try:
            assert metadata_topics(w) == {"data": (E.NONE, False, 2), "__consumer_offsets": (E.NONE, True, 7),
                                          "__transaction_state": (E.NONE, True, 3)}
            assert find(w, 0, group) == E.NONE
            assert find(w, 1, tid) == E.NONE
            state = b.call(lambda: b.broker.txn_coordinator.txns[tid].state.display)
            assert state == "CompleteCommit"
        finally:
            w.close()
        consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group})
        try:
            committed = consumer.committed([TopicPartition("data", 0), TopicPartition("data", 1)], timeout=30)
        finally:
            consumer.close()
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 5), (1, 9)]


class RecordingClient:
    """The broker's controller client, each CreateTopics it is given recorded (name, partitions,
    replication factor, configs) before it goes on."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.created: list[tuple[str, int, int, dict[str, str]]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def create_topics(self, request, version, requester=None):
        self.created += [(t.name, t.num_partitions, t.replication_factor, {c.name: c.value for c in t.configs})
                         for t in request.topics]
        return await self.inner.create_topics(request, version, requester)


def test_internal_topics_are_created_through_the_controller_client(tmp_path):
    """Issue 14: a coordinator's topic is asked of the active controller with a CreateTopics
    through the broker's controller client (here this node's own controller), as Kafka's
    AutoTopicCreationManager sends it, not committed by the coordinator itself; FindCoordinator
    answers COORDINATOR_NOT_AVAILABLE meanwhile and the retry finds the coordinator."""
    with BrokerThread(config=CONFIG, data_dir=str(tmp_path / "data")) as b:
        recording = b.call(lambda: RecordingClient(b.broker.controller_client))
        b.call(lambda: setattr(b.broker, "controller_client", recording))
        w = Wire(b.bootstrap_servers)
        try:
            assert find(w, 0, "g") == E.COORDINATOR_NOT_AVAILABLE
            wait_until(lambda: find(w, 0, "g") == E.NONE, message="the group coordinator found")
            assert [(n, p, rf) for n, p, rf, _ in recording.created] == [("__consumer_offsets", 7, 1)]
            assert recording.created[0][3]["cleanup.policy"] == "compact"
            assert init_pid(w, "tx") == E.NONE  # no FindCoordinator first: the request waits for the creation
            assert [n for n, *_ in recording.created] == ["__consumer_offsets", "__transaction_state"]
            assert recording.created[1][1:3] == (3, 1)
            assert metadata_topics(w)["__transaction_state"] == (E.NONE, True, 3)
        finally:
            w.close()
