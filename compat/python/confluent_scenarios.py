"""confluent-kafka (librdkafka) scenarios for the compatibility matrix (see harness.py for usage)."""

from __future__ import annotations

import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from harness import (
    AT_LIMIT_VALUE,
    BEYOND_LIMIT_VALUE,
    CLIENT_MAX_REQUEST,
    CODECS,
    Ctx,
    ScenarioError,
    check,
    librdkafka_security,
    main,
    wait_until,
)

CLIENT = "confluent-kafka"
SECURITY = librdkafka_security()


def admin(ctx: Ctx) -> AdminClient:
    return AdminClient({"bootstrap.servers": ctx.bootstrap, **SECURITY})


def n_partitions(a: AdminClient, name: str) -> int:
    try:
        d = a.describe_topics(TopicCollection([name]))[name].result(10)
    except KafkaException:
        return 0
    return len(d.partitions)


def create_topic(ctx: Ctx, partitions: int = 1) -> str:
    name = ctx.topic()
    a = admin(ctx)
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=ctx.rf)])[name].result(15)
    wait_until(lambda: n_partitions(a, name) == partitions, 15, "topic metadata")
    return name


def producer(ctx: Ctx, **conf) -> Producer:
    return Producer({"bootstrap.servers": ctx.bootstrap, **SECURITY, **conf})


def produce_all(p: Producer, items: list[dict], timeout: float = 20) -> list:
    """Produce, flush and return the delivered messages (raising the first delivery error)."""
    done: list = []

    def cb(err, msg):
        done.append((err, msg))

    for kw in items:
        p.produce(on_delivery=cb, **kw)
        p.poll(0)
    left = p.flush(timeout)
    check(left == 0, f"{left} messages not delivered")
    for err, _ in done:
        if err is not None:
            raise KafkaException(err)
    return [m for _, m in done]


def consumer(ctx: Ctx, group: str | None = None, **conf) -> Consumer:
    return Consumer({"bootstrap.servers": ctx.bootstrap, **SECURITY, "group.id": group or ctx.group(),
                     "auto.offset.reset": "earliest", "enable.auto.commit": False, **conf})


def consume(c: Consumer, n: int, timeout: float = 20) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for m in c.consume(num_messages=n - len(out), timeout=0.2):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append(m)
    check(len(out) >= n, f"consumed {len(out)} of {n} records")
    return out


def produce_consume(codec: str):
    def run(ctx: Ctx) -> None:
        topic = create_topic(ctx)
        p = producer(ctx, **{"compression.type": codec, "linger.ms": 5})
        values = [f"value-{i}-".encode() * 20 for i in range(100)]
        produce_all(p, [{"topic": topic, "value": v} for v in values])
        c = consumer(ctx)
        c.assign([TopicPartition(topic, 0, 0)])
        got = [m.value() for m in consume(c, 100)]
        c.close()
        check(got == values, "values differ from those produced")
    return run


def keyed_ordering(ctx: Ctx) -> None:
    topic = create_topic(ctx, 3)
    p = producer(ctx, **{"linger.ms": 5})
    produce_all(p, [{"topic": topic, "key": f"k{i % 5}".encode(), "value": str(i).encode()}
                    for i in range(300)])
    c = consumer(ctx)
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    recs = consume(c, 300)
    c.close()
    seen: dict[bytes, list[int]] = {}
    parts: dict[bytes, set[int]] = {}
    for r in recs:
        seen.setdefault(r.key(), []).append(int(r.value()))
        parts.setdefault(r.key(), set()).add(r.partition())
    for k, vals in seen.items():
        check(vals == sorted(vals), f"key {k!r} out of order")
        check(len(parts[k]) == 1, f"key {k!r} spread over partitions {parts[k]}")


def headers_timestamps(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    ts = 1_600_000_000_000
    hdrs = [("h1", b"v1"), ("h2", b""), ("h1", b"again")]
    p = producer(ctx)
    produce_all(p, [{"topic": topic, "value": b"x", "key": b"k", "headers": hdrs, "timestamp": ts + i}
                    for i in range(3)])
    c = consumer(ctx)
    c.assign([TopicPartition(topic, 0, 0)])
    recs = consume(c, 3)
    c.close()
    for i, r in enumerate(recs):
        check(r.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, ts + i), f"timestamp {r.timestamp()}")
        check(list(r.headers() or []) == hdrs, f"headers {r.headers()}")


def group_three_leave(ctx: Ctx) -> None:
    topic = create_topic(ctx, 6)
    group = ctx.group()
    cs = [consumer(ctx, group, **{"session.timeout.ms": 10000, "heartbeat.interval.ms": 500}) for _ in range(3)]
    for c in cs:
        c.subscribe([topic])

    def covered(members) -> bool:
        for c in members:
            c.poll(0.05)
        parts = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in members]
        return all(parts) and sum(len(p) for p in parts) == 6 and len(set().union(*parts)) == 6

    wait_until(lambda: covered(cs), 45, "three members sharing six partitions", 0)
    cs[0].close()
    wait_until(lambda: covered(cs[1:]), 45, "two members taking over six partitions", 0)
    for c in cs[1:]:
        c.close()


def commit_resume(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    group = ctx.group()
    produce_all(producer(ctx), [{"topic": topic, "value": str(i).encode()} for i in range(10)])
    c = consumer(ctx, group)
    c.assign([TopicPartition(topic, 0, 0)])
    consume(c, 5)
    c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    c.close()
    c = consumer(ctx, group)
    c.assign([TopicPartition(topic, 0)])  # no offset: start from the committed one
    recs = consume(c, 5)
    c.close()
    check(recs[0].offset() == 5 and recs[0].value() == b"5", f"resumed at offset {recs[0].offset()}")


def admin_topics(ctx: Ctx) -> None:
    name = create_topic(ctx)
    a = admin(ctx)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "12345", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result(10)

    def altered() -> bool:
        for f in a.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values():
            entry = f.result(10).get("retention.ms")
            return entry is not None and entry.value == "12345"
        return False

    wait_until(altered, 10, "retention.ms altered")
    a.create_partitions([NewPartitions(name, 3)])[name].result(10)
    wait_until(lambda: n_partitions(a, name) == 3, 10, "3 partitions")
    a.delete_topics([name])[name].result(10)
    wait_until(lambda: name not in a.list_topics(timeout=10).topics, 15, "topic deleted")


def offsets_by_timestamp(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    t = 1_700_000_000_000
    produce_all(producer(ctx), [{"topic": topic, "value": b"v", "timestamp": t + 1000 * i} for i in range(3)])
    c = consumer(ctx)
    got = c.offsets_for_times([TopicPartition(topic, 0, t + 500)], timeout=10)[0]
    check(got.error is None and got.offset == 1, f"offset for t+500: {got}")
    got = c.offsets_for_times([TopicPartition(topic, 0, t + 5000)], timeout=10)[0]
    check(got.offset == -1, f"offset past the last timestamp: {got.offset}")
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    check((lo, hi) == (0, 3), f"watermarks {(lo, hi)}")
    c.close()


def idempotent_producer(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = producer(ctx, **{"enable.idempotence": True, "acks": "all"})
    msgs = produce_all(p, [{"topic": topic, "value": str(i).encode()} for i in range(50)])
    offsets = sorted(m.offset() for m in msgs)
    check(offsets == list(range(50)), f"offsets {offsets[:5]}...")
    c = consumer(ctx)
    c.assign([TopicPartition(topic, 0, 0)])
    vals = [int(m.value()) for m in consume(c, 50)]
    c.close()
    check(vals == list(range(50)), "values out of order or duplicated")


def transactions_read_committed(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = producer(ctx, **{"transactional.id": ctx.group()})
    p.init_transactions(15)
    for txn, commit in enumerate([True, False, True]):
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, f"{txn}-{i}".encode())
        if commit:
            p.commit_transaction(15)
        else:
            p.abort_transaction(15)
    c = consumer(ctx, **{"isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, 0, 0)])
    vals = [m.value().decode() for m in consume(c, 10)]
    extra = [m for m in c.consume(10, timeout=1.0) if not m.error()]
    c.close()
    check(not extra, "more than the committed records")
    check(vals == [f"{t}-{i}" for t in (0, 2) for i in range(5)], f"read_committed saw {vals}")


def record_at_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = producer(ctx, **{"message.max.bytes": CLIENT_MAX_REQUEST})
    msgs = produce_all(p, [{"topic": topic, "value": b"x" * AT_LIMIT_VALUE}])
    c = consumer(ctx)
    c.assign([TopicPartition(topic, 0, 0)])
    r = consume(c, 1)[0]
    c.close()
    check(msgs[0].offset() == 0 and len(r.value()) == AT_LIMIT_VALUE, "large record not read back")


def record_beyond_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    p = producer(ctx, **{"message.max.bytes": CLIENT_MAX_REQUEST, "retries": 0})
    try:
        produce_all(p, [{"topic": topic, "value": b"x" * BEYOND_LIMIT_VALUE}])
    except KafkaException as e:
        err = e.args[0]
        check(err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"unexpected error {err}")
        return
    raise ScenarioError("broker accepted a batch beyond message.max.bytes")


def unknown_topic(ctx: Ctx) -> None:
    name = ctx.topic()
    p = producer(ctx, **{"topic.metadata.propagation.max.ms": 1000, "message.timeout.ms": 5000})
    try:
        produce_all(p, [{"topic": name, "value": b"v"}], timeout=10)
        raise ScenarioError("produce to an unknown topic succeeded")
    except KafkaException as e:
        code = e.args[0].code()
        check(code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT),
              f"unexpected error {e}")
    check(name not in admin(ctx).list_topics(timeout=10).topics, "topic was auto-created")


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
    version = f"{confluent_kafka.version()} (librdkafka {confluent_kafka.libversion()[0]})"
    raise SystemExit(main(CLIENT, version, SCENARIOS))
