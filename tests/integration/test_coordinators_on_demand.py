"""The group, share and transaction coordinators are built when first needed (kbroker.wiring.coordinators):
a fresh broker answers Metadata without them, the first group or transaction request builds and starts
them, and a broker starting on metadata that holds their topics builds them at start-up and loads
their state then, as Kafka's coordinators load it on election."""

from __future__ import annotations

import threading

from wire import Wire, create_topic, find_coordinator

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest

E = ErrorCode
GROUP, TRANSACTION = 0, 1


def built(b: BrokerThread) -> bool:
    return b.call(lambda: b.broker.coordinators.built)


def metadata(w: Wire) -> set[str]:
    resp = w.call(3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    return {t.name for t in resp.topics}


def commit(w: Wire, group: str, topic: str, offset: int) -> list[int]:
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    resp = w.call(OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                      group_instance_id=None, topics=[T(name=topic, partitions=[
                                          T.OffsetCommitRequestPartition(partition_index=0, committed_offset=offset,
                                                                         committed_metadata="")])]), 8)
    return [p.error_code for t in resp.topics for p in t.partitions]


def fetch(w: Wire, group: str, topic: str) -> list[tuple[int, int]]:
    T = OffsetFetchRequest.OffsetFetchRequestTopic
    resp = w.call(OffsetFetchRequest(group_id=group, topics=[T(name=topic, partition_indexes=[0])],
                                     require_stable=False), 7)
    return [(p.error_code, p.committed_offset) for t in resp.topics for p in t.partitions]


def test_a_fresh_broker_builds_them_at_the_first_request_needing_them(tmp_path):
    with BrokerThread(data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "plain")
            assert "plain" in metadata(w)
            assert not built(b)  # ApiVersions, Metadata, CreateTopics need none of them
            find_coordinator(w, GROUP, ["g1"])
            assert built(b)
            assert b.call(lambda: b.broker.group_coordinator.started and b.broker.share_coordinator.loaded
                          and b.broker.txn_coordinator.loaded)
            assert commit(w, "g1", "plain", 5) == [E.NONE]
            assert fetch(w, "g1", "plain") == [(E.NONE, 5)]
        finally:
            w.close()
    # a restart on the topic: built and loaded at start-up, before any request
    with BrokerThread(data_dir=str(tmp_path)) as b:
        assert built(b)
        assert b.call(lambda: b.broker.group_coordinator.offsets.committed["g1"][("plain", 0)].offset) == 5
        w = Wire(b.bootstrap_servers)
        try:
            assert fetch(w, "g1", "plain") == [(E.NONE, 5)]
        finally:
            w.close()


def test_an_offsets_topic_created_by_create_topics_builds_them(tmp_path):
    """The TopicRecord of a coordinator's topic, however created, builds them before its
    partitions open here: the group coordinator then loads its partitions on election, as it
    would have had it been built at start-up."""
    with BrokerThread(data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "plain")
            create_topic(w, "__consumer_offsets", partitions=5, configs={"cleanup.policy": "compact"})
            assert built(b)
            assert b.call(lambda: sorted(b.broker.group_coordinator.led_partitions)) == [0, 1, 2, 3, 4]
            assert commit(w, "g2", "plain", 7) == [E.NONE]
            assert fetch(w, "g2", "plain") == [(E.NONE, 7)]
        finally:
            w.close()


def test_a_transactional_produce_is_verified_before_anything_built_them(tmp_path):
    """Produce's transaction verification asks the transaction coordinator, built then: a
    transactional batch of a producer it never saw is refused as on a broker that had it built."""
    from kbroker_protocol.records import Record, build_batch

    with BrokerThread(data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "txn-target")
            assert not built(b)
            Req = REQUESTS[0]
            batch = build_batch([Record(key=None, value=b"v", timestamp=1_700_000_000_000)], producer_id=4242,
                                producer_epoch=0, base_sequence=0, transactional=True)
            data = Req.TopicProduceData(name="txn-target", partition_data=[Req.TopicProduceData.PartitionProduceData(
                index=0, records=batch)])
            resp = w.call(0, 9, transactional_id="never-initialized", acks=-1, timeout_ms=10000, topic_data=[data])
            code = resp.responses[0].partition_responses[0].error_code
            assert built(b)
            assert code != E.NONE
        finally:
            w.close()
    with BrokerThread() as eager:  # the same batch where they were built first
        eager.call(lambda: eager.broker.group_coordinator)
        w = Wire(eager.bootstrap_servers)
        try:
            create_topic(w, "txn-target")
            resp = w.call(0, 9, transactional_id="never-initialized", acks=-1, timeout_ms=10000, topic_data=[data])
            assert resp.responses[0].partition_responses[0].error_code == code
        finally:
            w.close()


def test_read_from_another_thread_they_are_started_on_the_brokers_loop(tmp_path):
    with BrokerThread(data_dir=str(tmp_path)) as b:
        assert not built(b)
        assert threading.current_thread() is threading.main_thread()
        txns = b.broker.txn_coordinator  # this thread: built and started on the broker's loop
        assert txns is not None and txns.loaded
        assert b.call(lambda: b.broker.txn_coordinator) is txns


def test_on_the_manual_clock_they_are_built_at_start(tmp_path):
    """Their timers run on the manual clock from the start, as before."""
    with BrokerThread(data_dir=str(tmp_path), clock="manual") as b:
        assert built(b)


def test_delayed_delivery_is_built_by_the_first_delayed_batch_and_at_a_restart_on_its_topic(tmp_path):
    """Delayed delivery (kbroker/delayed.py) the same way (kbroker.wiring.delayed)."""
    from confluent_kafka import Producer

    from tests.integration.waiting import wait_until

    def delayed_built(b: BrokerThread) -> bool:
        return b.call(lambda: b.broker.delayed_delivery.built)

    with BrokerThread(data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "later")
        finally:
            w.close()
        assert not delayed_built(b)
        producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
        reports: list = []
        producer.produce("later", b"v", headers=[("kbroker-deliver-after-ms", b"1")],
                         on_delivery=lambda err, msg: reports.append(err))
        assert producer.flush(30) == 0 and reports == [None]
        assert delayed_built(b)
        wait_until(lambda: b.call(lambda: b.broker.partition("later", 0).log.log_end_offset) == 1,
                   message="the delayed record delivered")
    with BrokerThread(data_dir=str(tmp_path)) as b:
        assert delayed_built(b)
        assert b.call(lambda: b.broker.delayed.loaded and sorted(b.broker.delayed.states)) == list(range(10))


def test_a_metrics_scrape_builds_no_coordinator(tmp_path):
    """The group metrics read the group coordinator only if something built it (none: no groups)."""
    from metrics_http import scrape, value

    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0"}, data_dir=str(tmp_path)) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, "plain")
            assert not any(name == "kafka_consumergroup_current_offset" for name, _ in scrape(b))
            assert not built(b)
            find_coordinator(w, GROUP, ["g3"])
            assert commit(w, "g3", "plain", 4) == [E.NONE]
            samples = scrape(b)
            assert value(samples, "kafka_consumergroup_current_offset", consumergroup="g3", topic="plain",
                         partition="0") == 4
        finally:
            w.close()
