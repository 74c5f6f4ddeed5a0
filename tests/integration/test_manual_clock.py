"""Every timer of a broker on a manual clock (``kbroker.clock=manual``) moves only when the test
advances it: transaction timeouts, transactional-id and producer-id expiration, log retention,
compaction delete horizons, delayed fetches (long polls), KIP-848 consumer group sessions; and
GET /clock. Each test advances the clock and sees the effect at once; timeouts chosen far beyond
the test's run (minutes, hours) show that the clock, not real time, made it happen. (Classic group
sessions: test_control_reset.py; share group sessions, acquisition locks and long polls: tests/share;
streams group sessions: tests/streams/test_streams_clock.py; delayed produce:
tests/replication/test_manual_clock_waits.py.)
"""

from __future__ import annotations

import json
import select
import urllib.request
import uuid

import pytest
from waiting import wait_until
from wire import Wire, create_topic

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


def advance(broker, ms: int) -> dict:
    """``POST /clock/advance``, as a test in any language moves the clock."""
    req = urllib.request.Request(broker.control_url + "/clock/advance", data=json.dumps({"ms": ms}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- transactions ---------------------------------------------------------------------------------


def test_transaction_timeout_aborts_on_advance_and_the_producer_is_fenced(kbroker_factory):
    """transaction.timeout.ms on the clock: the coordinator's check (every
    transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s) aborts the transaction once
    the clock passes its timeout, bumping the epoch; the producer's next use is refused as fenced."""
    from confluent_kafka import Consumer, KafkaException, Producer

    b = kbroker_factory(clock="manual", control=True)
    topic = name("txn-clock")
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "transactional.id": "clocked",
                         "transaction.timeout.ms": 600_000})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"in a transaction that times out")
    assert producer.flush(30) == 0

    def txn():
        return b.call(lambda: b.broker.txn_coordinator.txns["clocked"])

    epoch = txn().producer_epoch
    advance(b, 600_000)  # the check at 600 s: not yet more than the timeout
    assert txn().state.name == "ONGOING"
    advance(b, 10_000)  # the next check: timed out, aborted with a bumped epoch
    assert txn().state.name in ("PREPARE_ABORT", "COMPLETE_ABORT")
    assert txn().producer_epoch == epoch + 1
    with pytest.raises(KafkaException) as raised:
        producer.commit_transaction(30)
    assert raised.value.args[0].code() in _fenced_codes()
    wait_until(lambda: txn().state.name == "COMPLETE_ABORT", message="the abort markers written")
    consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": name("g"),
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    try:
        low, high = consumer.get_watermark_offsets(_tp(topic), timeout=30)
        assert (low, high) == (0, 2)  # the record and the abort marker
    finally:
        consumer.close()


def _fenced_codes() -> tuple[int, ...]:
    from confluent_kafka import KafkaError

    # librdkafka reports the broker's PRODUCER_FENCED (or INVALID_PRODUCER_EPOCH) as fatal _FENCED.
    return (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def _tp(topic: str, partition: int = 0):
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, partition)


def test_transactional_id_expires_on_advance(kbroker_factory):
    """transactional.id.expiration.ms of clock time after its last transaction the id is removed,
    at the expiration check (every transaction.remove.expired.transaction.cleanup.interval.ms of
    clock time)."""
    from confluent_kafka import Producer

    b = kbroker_factory(clock="manual", control=True,
                        config={"transactional.id.expiration.ms": "3600000",
                                "transaction.remove.expired.transaction.cleanup.interval.ms": "60000",
                                # (producer-id expiration is another check: not within this test)
                                "producer.id.expiration.check.interval.ms": "86400000"})
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "transactional.id": "expiring"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(name("txn-expiry"), b"committed")
    producer.commit_transaction(30)

    def known() -> bool:
        return b.call(lambda: "expiring" in b.broker.txn_coordinator.txns)

    def described() -> int:
        wire = Wire(b.bootstrap_servers)
        try:
            resp = wire.call(65, 0, transactional_ids=["expiring"])
            return resp.transaction_states[0].error_code
        finally:
            wire.close()

    assert described() == E.NONE
    advance(b, 3_540_000)
    assert known()
    advance(b, 120_000)
    assert not known()
    assert described() == E.TRANSACTIONAL_ID_NOT_FOUND
    producer.flush(1)


def test_producer_id_expires_on_advance(kbroker_factory):
    """producer.id.expiration.ms: an idempotent producer's state leaves the partition once the clock
    is that far past its last batch's timestamp, at the check every
    producer.id.expiration.check.interval.ms (on the clock); DescribeProducers shows it go."""
    from confluent_kafka import Producer

    b = kbroker_factory(clock="manual", control=True,
                        config={"producer.id.expiration.ms": "600000",
                                "producer.id.expiration.check.interval.ms": "60000"})
    topic = name("pid-expiry")
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True})
    producer.produce(topic, b"idempotent")
    assert producer.flush(30) == 0
    topic_wire = Wire(b.bootstrap_servers)

    def producers() -> list[int]:
        R = REQUESTS[61]
        resp = topic_wire.call(R(topics=[R.TopicRequest(name=topic, partition_indexes=[0])]), 0)
        part = resp.topics[0].partitions[0]
        assert part.error_code == E.NONE
        return [p.producer_id for p in part.active_producers]

    try:
        assert len(producers()) == 1
        advance(b, 540_000)  # less than 600 s past the batch (the test ran less than a minute)
        assert len(producers()) == 1
        advance(b, 120_000)
        assert producers() == []
    finally:
        topic_wire.close()


# -- retention ------------------------------------------------------------------------------------


def test_time_retention_deletes_segments_at_the_check_after_advance(kbroker_factory):
    """retention.ms measured against the clock; the deletion runs at the retention check, every
    log.retention.check.interval.ms of clock time: never while real time passes."""
    from confluent_kafka import Consumer, Producer

    b = kbroker_factory(clock="manual", control=True, config={"log.retention.check.interval.ms": "60000"})
    topic = name("retained")
    wire = Wire(b.bootstrap_servers)
    try:
        create_topic(wire, topic, configs={"retention.ms": "3600000", "segment.bytes": str(1 << 20)})
    finally:
        wire.close()
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
    for i in range(20):  # 2 MB: three segments of 1 MiB (Kafka's smallest segment.bytes)
        producer.produce(topic, b"x" * 100_000, key=b"%d" % i)
        producer.flush(30)
    consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": name("g")})
    try:
        assert consumer.get_watermark_offsets(_tp(topic), timeout=30) == (0, 20)
        b.call(lambda: b.broker.log_manager.run_maintenance())  # a background round: no retention
        advance(b, 3_540_000)  # the check at 59 min: the records are younger than an hour
        assert consumer.get_watermark_offsets(_tp(topic), timeout=30) == (0, 20)
        advance(b, 120_000)  # the checks at 60 and 61 min: every closed segment expired
        low, high = consumer.get_watermark_offsets(_tp(topic), timeout=30)
        assert high == 20 and low > 0
        assert low == b.call(lambda: b.broker.partition(topic, 0).log.active_segment.base_offset)
    finally:
        consumer.close()


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every record of partition 0, from its start to its high watermark."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": name("reader"), "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, low)])
        out: list[tuple[bytes, bytes | None]] = []
        last = low - 1

        def more() -> bool:
            nonlocal last
            for m in consumer.consume(100, 0.5):
                assert m.error() is None, m.error()
                out.append((m.key(), m.value()))
                last = m.offset()
            return last >= high - 1
        wait_until(more, message=f"records up to {high}")
        return out
    finally:
        consumer.close()


def test_compaction_drops_a_tombstone_once_the_clock_passes_its_delete_horizon(kbroker_factory):
    """delete.retention.ms on the clock: the first cleaning keeps the tombstone and stamps its
    batch with a delete horizon (now + delete.retention.ms, clock time); a cleaning after the
    clock passed it drops the tombstone. Cleaning runs at the retention checks, on the clock."""
    from confluent_kafka import Producer

    b = kbroker_factory(clock="manual", control=True, config={"log.retention.check.interval.ms": "60000"})
    topic = name("compacted")
    wire = Wire(b.bootstrap_servers)
    try:
        create_topic(wire, topic, configs={"cleanup.policy": "compact", "segment.bytes": str(1 << 20),
                                           "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "3600000"})
    finally:
        wire.close()
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})

    def send(key: bytes, value: bytes | None) -> None:
        producer.produce(topic, value, key=key)
        assert producer.flush(30) == 0

    def fill(tag: str) -> None:  # 1.2 MB of other keys: the segment before is closed, cleanable
        for i in range(12):
            send(b"%s-%d" % (tag.encode(), i), b"f" * 100_000)

    send(b"gone", b"v" * 1000)
    send(b"gone", None)  # the tombstone
    fill("a")
    advance(b, 60_000)  # a check: the first cleaning
    keys = [(k, v is None) for k, v in _read_all(b.bootstrap_servers, topic)]
    assert keys.count((b"gone", True)) == 1 and (b"gone", False) not in keys  # the value went, the tombstone stays
    fill("b")
    advance(b, 3_540_000)  # 59 min after the first cleaning: before the horizon, the tombstone stays
    assert (b"gone", True) in [(k, v is None) for k, v in _read_all(b.bootstrap_servers, topic)]
    fill("c")
    advance(b, 120_000)  # past the horizon: the next cleaning drops it
    assert b"gone" not in [k for k, _v in _read_all(b.bootstrap_servers, topic)]


def test_get_clock_reports_the_manual_time(kbroker_factory):
    b = kbroker_factory(clock="manual", control=True)
    req = urllib.request.Request(b.control_url + "/clock")
    with urllib.request.urlopen(req, timeout=30) as resp:
        before = json.loads(resp.read())
    assert before["clock"] == "manual" and before["advanced_ms"] == 0 and before["pending_timers"] >= 1
    out = advance(b, 1234)
    assert out["now_ms"] == before["now_ms"] + 1234 and isinstance(out["timers_run"], int)
    with urllib.request.urlopen(req, timeout=30) as resp:
        after = json.loads(resp.read())
    assert (after["now_ms"], after["advanced_ms"]) == (before["now_ms"] + 1234, 1234)


# -- delayed fetch --------------------------------------------------------------------------------


def _long_poll(topic: str, max_wait_ms: int):
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                                       partition_max_bytes=1 << 20)
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
             session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
             topics=[F.FetchTopic(topic=topic, partitions=[part])])


def _answered(wire: Wire) -> bool:
    return bool(select.select([wire.sock], [], [], 0)[0])


def test_long_poll_fetch_is_answered_when_the_clock_passes_max_wait(kbroker_factory):
    """A fetch waiting for data (min_bytes=1, fetch.max.wait.ms of 10 min) is answered, empty, as
    soon as the clock passes its max wait; one advance short of it leaves it waiting."""
    b = kbroker_factory(clock="manual", control=True)
    topic = name("long-poll")
    wire = Wire(b.bootstrap_servers, timeout=60)
    try:
        create_topic(wire, topic)
        wire.send(_long_poll(topic, 600_000), 12)
        wait_until(lambda: b.call(lambda: bool(b.broker.partition(topic, 0)._waiters)),
                   message="the fetch waiting on the partition")
        advance(b, 599_999)
        assert not _answered(wire)
        advance(b, 1)
        resp = wire.receive()
        part = resp.responses[0].partitions[0]
        assert (resp.error_code, part.error_code, part.high_watermark) == (E.NONE, E.NONE, 0)
        assert not part.records
    finally:
        wire.close()


def test_long_poll_fetch_on_a_manual_clock_still_ends_when_data_comes(kbroker_factory):
    from wire import produce

    b = kbroker_factory(clock="manual")
    topic = name("long-poll-data")
    wire, producer = Wire(b.bootstrap_servers, timeout=60), Wire(b.bootstrap_servers)
    try:
        create_topic(wire, topic)
        wire.send(_long_poll(topic, 600_000), 12)
        wait_until(lambda: b.call(lambda: bool(b.broker.partition(topic, 0)._waiters)),
                   message="the fetch waiting on the partition")
        produce(producer, topic, 0, 3)
        part = wire.receive().responses[0].partitions[0]
        assert part.error_code == E.NONE and part.high_watermark == 3 and part.records
    finally:
        wire.close()
        producer.close()


# -- classic group rebalance timeout -------------------------------------------------------------


def test_classic_rebalance_timeout_removes_the_member_that_did_not_rejoin(kbroker_factory):
    """A second member's JoinGroup starts a rebalance; the first member never rejoins. Its
    JoinGroup (held by the coordinator) is answered when the clock passes the rebalance timeout
    (Kafka's DelayedJoin), with the member that did not rejoin removed."""
    from tests.integration.groups_protocol_helpers import join_member, join_request, sync_request

    b = kbroker_factory(clock="manual", control=True)
    group = name("rebalance")
    first, second = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers, timeout=60)
    try:
        joined = join_member(first, group, session=600_000, rebalance=120_000)
        assert joined.error_code == E.NONE
        me = joined.member_id
        assert first.call(sync_request(group, joined.generation_id, me, [(me, b"")]), 3).error_code == E.NONE
        pending = second.call(join_request(group, session=600_000, rebalance=120_000), 5)
        assert pending.error_code == E.MEMBER_ID_REQUIRED
        second.send(join_request(group, member_id=pending.member_id, session=600_000, rebalance=120_000), 5)
        group_state = b.call(lambda: b.broker.group_coordinator.groups[group])
        wait_until(lambda: b.call(lambda: group_state.state.value) == "PreparingRebalance",
                   message="the rebalance started")
        advance(b, 119_999)  # (within Kafka's 5 min join timeout of a new member)
        assert not _answered(second)
        assert b.call(lambda: sorted(group_state.members)) == sorted([me, pending.member_id])
        advance(b, 1)
        resp = second.receive()
        assert resp.error_code == E.NONE and resp.generation_id == joined.generation_id + 1
        assert [m.member_id for m in resp.members] == [pending.member_id]  # the leader: only itself
        assert b.call(lambda: list(group_state.members)) == [pending.member_id]
    finally:
        first.close()
        second.close()


# -- KIP-848 consumer group sessions --------------------------------------------------------------


def test_consumer_group_member_session_expires_on_advance(kbroker_factory):
    """A KIP-848 member (confluent-kafka, group.protocol=consumer) is fenced once the clock passes
    group.consumer.session.timeout.ms: its next heartbeat gets UNKNOWN_MEMBER_ID, it loses its
    partitions and joins again with a new member epoch."""
    from confluent_kafka import Consumer

    # The member hears of its fencing at its next heartbeat: every 500 ms, not Kafka's 5 s default.
    b = kbroker_factory({"group.consumer.heartbeat.interval.ms": "500", "group.consumer.min.heartbeat.interval.ms": "500"},
                        clock="manual", control=True)
    topic = name("kip848-clock")
    group = name("g848")
    wire = Wire(b.bootstrap_servers)
    try:
        create_topic(wire, topic)
    finally:
        wire.close()
    events: list[str] = []
    consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group, "group.protocol": "consumer"})
    consumer.subscribe([topic], on_assign=lambda c, p: events.append("assigned"),
                       on_revoke=lambda c, p: events.append("revoked"), on_lost=lambda c, p: events.append("lost"))

    def members() -> list[str]:
        return b.call(lambda: list(b.broker.group_coordinator.groups[group].members))

    try:
        wait_until(lambda: consumer.poll(0.1) is None and "assigned" in events, message="the first assignment")
        (first,) = members()
        advance(b, 44_999)  # (the client's heartbeats in between start the session again)
        assert members() == [first]
        advance(b, 45_000)
        assert first not in members()  # fenced at once
        wait_until(lambda: consumer.poll(0.1) is None and events.count("assigned") == 2,
                   message="the member lost its partitions and joined again")
        assert "lost" in events
        assert len(wait_until(lambda: members() or None, message="the member back")) == 1
    finally:
        consumer.close()
