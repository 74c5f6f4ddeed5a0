"""kafka-python scenarios for the compatibility matrix (see harness.py for usage)."""

from __future__ import annotations

import threading
import time

import kafka
from harness import (
    AT_LIMIT_VALUE,
    BEYOND_LIMIT_VALUE,
    CLIENT_MAX_REQUEST,
    CODECS,
    Ctx,
    ScenarioError,
    check,
    kafka_python_security,
    main,
    wait_until,
)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, UnknownTopicOrPartitionError

CLIENT = "kafka-python"
SECURITY = kafka_python_security()


def admin(ctx: Ctx) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=ctx.bootstrap, **SECURITY, request_timeout_ms=15000)


def create_topic(ctx: Ctx, partitions: int = 1, suffix: str = "") -> str:
    name = ctx.topic(suffix)
    a = admin(ctx)
    try:
        a.create_topics([NewTopic(name, partitions, ctx.rf)])
        wait_until(lambda: len(a.describe_topics([name])[0]["partitions"] or []) == partitions, 15,
                   "topic metadata")
    finally:
        a.close()
    return name


def consumer(ctx: Ctx, *topics: str, **kw) -> KafkaConsumer:
    kw.setdefault("auto_offset_reset", "earliest")
    kw.setdefault("enable_auto_commit", False)
    return KafkaConsumer(*topics, bootstrap_servers=ctx.bootstrap, **SECURITY, **kw)


def consume(c: KafkaConsumer, n: int, timeout: float = 20) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            out.extend(recs)
    check(len(out) >= n, f"consumed {len(out)} of {n} records")
    return out


def produce_consume(codec: str):
    def run(ctx: Ctx) -> None:
        topic = create_topic(ctx)
        p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY,
                          compression_type=None if codec == "none" else codec, linger_ms=5)
        values = [f"value-{i}-".encode() * 20 for i in range(100)]
        for v in values:
            p.send(topic, v)
        p.flush(15)
        p.close()
        c = consumer(ctx, topic)
        got = [r.value for r in consume(c, 100)]
        c.close()
        check(got == values, "values differ from those produced")
    return run


def keyed_ordering(ctx: Ctx) -> None:
    topic = create_topic(ctx, 3)
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, linger_ms=5)
    for i in range(300):
        p.send(topic, key=f"k{i % 5}".encode(), value=str(i).encode())
    p.flush(15)
    p.close()
    c = consumer(ctx, topic)
    recs = consume(c, 300)
    c.close()
    seen: dict[bytes, list[int]] = {}
    parts: dict[bytes, set[int]] = {}
    for r in recs:
        seen.setdefault(r.key, []).append(int(r.value))
        parts.setdefault(r.key, set()).add(r.partition)
    for k, vals in seen.items():
        check(vals == sorted(vals), f"key {k!r} out of order")
        check(len(parts[k]) == 1, f"key {k!r} spread over partitions {parts[k]}")


def headers_timestamps(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    ts = 1_600_000_000_000
    hdrs = [("h1", b"v1"), ("h2", b""), ("h1", b"again")]
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY)
    for i in range(3):
        p.send(topic, value=b"x", key=b"k", headers=hdrs, timestamp_ms=ts + i)
    p.flush(15)
    p.close()
    c = consumer(ctx, topic)
    recs = consume(c, 3)
    c.close()
    for i, r in enumerate(recs):
        check(r.timestamp == ts + i, f"timestamp {r.timestamp} != {ts + i}")
        check(r.timestamp_type == 0, "timestamp type is not CreateTime")
        check(list(r.headers) == hdrs, f"headers {r.headers}")


class _PollingMember:
    """A group member polled by a thread of its own, as applications use KafkaConsumer.

    kafka-python 3.0.x drops a JoinGroup/SyncGroup round that completes while no poll() of its
    consumer is waiting on it and sends a new JoinGroup; a leader's new JoinGroup starts another
    rebalance (Kafka's rule, kbroker's too). Three consumers polled in turn from one thread for
    50 ms each hit that whenever a round outlasts its consumer's turn, and the group rebalanced
    without end for 45 s in a CI run (compat/FINDINGS.md); a consumer that keeps polling does not."""

    def __init__(self, c: KafkaConsumer) -> None:
        self.consumer = c
        self.assigned: frozenset = frozenset()
        self.leave = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.leave.is_set():
                self.consumer.poll(timeout_ms=100)
                self.assigned = frozenset(self.consumer.assignment())
        except BaseException as e:  # noqa: BLE001 - reported by the scenario
            self.error = e
        finally:
            self.consumer.close()
            self.assigned = frozenset()

    def stop(self) -> None:
        self.leave.set()
        self.thread.join(30)


def _knowing_the_topic(c: KafkaConsumer, topic: str, partitions: int) -> KafkaConsumer:
    """``c`` (subscribed to ``topic``) once a metadata update of its own has all the topic's partitions.

    kafka-python 3.0.x orphans a rebalance its leader starts because the topic's metadata changed
    (the leader's metadata snapshot differing from the one it assigned with) when a poll() times out
    between the leader's assignment and its SyncGroup answer: need_rejoin() turns False, the answer is
    never applied, the consumer sends nothing more and the coordinator drops it after the session
    timeout (compat/FINDINGS.md). A consumer that joins before its metadata has the topic starts such
    a rebalance as the leader; one whose own update (``topics()`` fetches metadata and so refreshes
    the consumer's snapshot) has all the partitions before its first poll does not."""
    wait_until(lambda: topic in c.topics() and len(c.partitions_for_topic(topic)) == partitions, 15,
               f"the consumer's metadata of {topic}")
    return c


def group_three_leave(ctx: Ctx) -> None:
    topic = create_topic(ctx, 6)
    group = ctx.group()
    members = [_PollingMember(_knowing_the_topic(consumer(ctx, topic, group_id=group, session_timeout_ms=10000,
                                                          heartbeat_interval_ms=500), topic, 6))
               for _ in range(3)]

    def covered(ms: list[_PollingMember]) -> bool:
        for m in members:
            if m.error is not None:
                raise ScenarioError(f"poll failed: {m.error!r}")
        parts = [m.assigned for m in ms]
        return all(parts) and sum(len(p) for p in parts) == 6 and len(frozenset().union(*parts)) == 6

    try:
        wait_until(lambda: covered(members), 45, "three members sharing six partitions")
        members[0].stop()
        wait_until(lambda: covered(members[1:]), 45, "two members taking over six partitions")
    finally:
        for m in members:
            m.stop()


def commit_resume(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    group = ctx.group()
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY)
    for i in range(10):
        p.send(topic, str(i).encode())
    p.flush(15)
    p.close()
    tp = TopicPartition(topic, 0)
    c = consumer(ctx, group_id=group)
    c.assign([tp])
    consume(c, 5)
    c.commit({tp: kafka.OffsetAndMetadata(5, "", -1)})
    c.close()
    c = consumer(ctx, group_id=group)
    c.assign([tp])
    recs = consume(c, 5)
    c.close()
    check(recs[0].offset == 5 and recs[0].value == b"5", f"resumed at offset {recs[0].offset}")


def admin_topics(ctx: Ctx) -> None:
    name = create_topic(ctx)
    a = admin(ctx)
    try:
        res = ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "12345"})
        a.alter_configs([res])

        def retention() -> str | None:
            d = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=None)])
            return d.get("topic", {}).get(name, {}).get("retention.ms", {}).get("value")

        wait_until(lambda: retention() == "12345", 10, "retention.ms altered")
        a.create_partitions({name: NewPartitions(total_count=3)})
        wait_until(lambda: len(a.describe_topics([name])[0]["partitions"]) == 3, 10, "3 partitions")
        a.delete_topics([name])
        wait_until(lambda: name not in a.list_topics(), 15, "topic deleted")
    finally:
        a.close()


def offsets_by_timestamp(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    t = 1_700_000_000_000
    # acks=all: ListOffsets reads below the high watermark, which a replicated acks=1 append may
    # not have reached yet when the producer has its answer (compat/FINDINGS.md).
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, acks="all")
    for i in range(3):
        p.send(topic, b"v", timestamp_ms=t + 1000 * i)
    p.flush(15)
    p.close()
    c = consumer(ctx)
    tp = TopicPartition(topic, 0)
    got = c.offsets_for_times({tp: t + 500})[tp]
    check(got is not None and got.offset == 1, f"offset for t+500: {got}")
    check(c.offsets_for_times({tp: t + 5000})[tp] is None, "offset past the last timestamp")
    check(c.beginning_offsets([tp])[tp] == 0 and c.end_offsets([tp])[tp] == 3, "earliest/latest")
    c.close()


def idempotent_producer(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, enable_idempotence=True, acks="all")
    futs = [p.send(topic, str(i).encode()) for i in range(50)]
    p.flush(15)
    offsets = [f.get(10).offset for f in futs]
    p.close()
    check(offsets == list(range(50)), f"offsets {offsets[:5]}...")
    c = consumer(ctx, topic)
    vals = [int(r.value) for r in consume(c, 50)]
    c.close()
    check(vals == list(range(50)), "values out of order or duplicated")


def transactions_read_committed(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, transactional_id=ctx.group())
    p.init_transactions()
    for txn, commit in enumerate([True, False, True]):
        p.begin_transaction()
        for i in range(5):
            p.send(topic, f"{txn}-{i}".encode())
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    p.close()
    c = consumer(ctx, topic, isolation_level="read_committed")
    vals = [r.value.decode() for r in consume(c, 10)]
    extra = c.poll(timeout_ms=1000)
    c.close()
    check(not any(extra.values()), "more than the committed records")
    check(vals == [f"{t}-{i}" for t in (0, 2) for i in range(5)], f"read_committed saw {vals}")


def record_at_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, max_request_size=CLIENT_MAX_REQUEST,
                      batch_size=CLIENT_MAX_REQUEST)
    md = p.send(topic, b"x" * AT_LIMIT_VALUE).get(15)
    p.close()
    c = consumer(ctx, topic)
    r = consume(c, 1)[0]
    c.close()
    check(md.offset == 0 and len(r.value) == AT_LIMIT_VALUE, "large record not read back")


def record_beyond_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, max_request_size=CLIENT_MAX_REQUEST,
                      batch_size=CLIENT_MAX_REQUEST, retries=0)
    try:
        p.send(topic, b"x" * BEYOND_LIMIT_VALUE).get(15)
    except MessageSizeTooLargeError:
        return
    finally:
        p.close()
    raise ScenarioError("broker accepted a batch beyond message.max.bytes")


def unknown_topic(ctx: Ctx) -> None:
    name = ctx.topic()
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, max_block_ms=3000)
    try:
        p.send(name, b"v").get(5)
        raise ScenarioError("produce to an unknown topic succeeded")
    except (KafkaTimeoutError, UnknownTopicOrPartitionError):
        pass
    finally:
        p.close()
    a = admin(ctx)
    try:
        check(name not in a.list_topics(), "topic was auto-created")
    finally:
        a.close()


SCENARIOS = {f"produce_consume_{c}": produce_consume(c) for c in CODECS}
SCENARIOS.update(
    keyed_ordering=keyed_ordering,
    headers_timestamps=headers_timestamps,
    group_three_leave=group_three_leave,
    commit_resume=commit_resume,
    admin_topics=admin_topics,
    offsets_by_timestamp=offsets_by_timestamp,
    idempotent_producer=idempotent_producer,
    transactions_read_committed=transactions_read_committed,
    record_at_size_limit=record_at_size_limit,
    record_beyond_size_limit=record_beyond_size_limit,
    unknown_topic=unknown_topic,
)

if __name__ == "__main__":
    raise SystemExit(main(CLIENT, kafka.__version__, SCENARIOS, debug_loggers=("kafka.coordinator",)))
