"""aiokafka scenarios for the compatibility matrix (see harness.py for usage)."""

from __future__ import annotations

import asyncio
import time

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, UnknownTopicOrPartitionError
from aiokafka.structs import OffsetAndMetadata
from harness import (
    AT_LIMIT_VALUE,
    BEYOND_LIMIT_VALUE,
    CLIENT_MAX_REQUEST,
    CODECS,
    Ctx,
    ScenarioError,
    check,
    main,
    security,
)

CLIENT = "aiokafka"


def _security() -> dict:
    sec = security()
    if not sec:
        return {}
    from aiokafka.helpers import create_ssl_context

    return {"security_protocol": sec["protocol"], "sasl_mechanism": sec["mechanism"],
            "sasl_plain_username": sec["username"], "sasl_plain_password": sec["password"],
            "ssl_context": create_ssl_context(cafile=sec["ca"])}


SECURITY = _security()


async def wait_for(fn, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await fn():
            return
        await asyncio.sleep(interval)  # polling interval, bounded by the deadline
    raise ScenarioError(f"timed out waiting for {what}")


async def admin(ctx: Ctx) -> AIOKafkaAdminClient:
    a = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap, **SECURITY, request_timeout_ms=15000)
    await a.start()
    return a


async def n_partitions(a: AIOKafkaAdminClient, name: str) -> int:
    d = await a.describe_topics([name])
    return len(d[0]["partitions"] or []) if d and d[0]["error_code"] == 0 else 0


async def create_topic(ctx: Ctx, partitions: int = 1) -> str:
    name = ctx.topic()
    a = await admin(ctx)
    try:
        await a.create_topics([NewTopic(name, partitions, ctx.rf)])

        async def ready():
            return await n_partitions(a, name) == partitions

        await wait_for(ready, 15, "topic metadata")
    finally:
        await a.close()
    return name


async def producer(ctx: Ctx, **kw) -> AIOKafkaProducer:
    p = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, **SECURITY, **kw)
    await p.start()
    return p


async def consumer(ctx: Ctx, *topics: str, **kw) -> AIOKafkaConsumer:
    kw.setdefault("auto_offset_reset", "earliest")
    kw.setdefault("enable_auto_commit", False)
    c = AIOKafkaConsumer(*topics, bootstrap_servers=ctx.bootstrap, **SECURITY, **kw)
    await c.start()
    return c


async def consume(c: AIOKafkaConsumer, n: int, timeout: float = 20) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in (await c.getmany(timeout_ms=200)).values():
            out.extend(recs)
    check(len(out) >= n, f"consumed {len(out)} of {n} records")
    return out


def sync(coro_fn):
    def run(ctx: Ctx) -> None:
        asyncio.run(coro_fn(ctx))
    run.__name__ = coro_fn.__name__
    return run


def produce_consume(codec: str):
    async def run(ctx: Ctx) -> None:
        topic = await create_topic(ctx)
        p = await producer(ctx, compression_type=None if codec == "none" else codec, linger_ms=5)
        values = [f"value-{i}-".encode() * 20 for i in range(100)]
        futs = [await p.send(topic, v) for v in values]
        await asyncio.gather(*futs)
        await p.stop()
        c = await consumer(ctx, topic)
        got = [r.value for r in await consume(c, 100)]
        await c.stop()
        check(got == values, "values differ from those produced")
    return sync(run)


@sync
async def keyed_ordering(ctx: Ctx) -> None:
    topic = await create_topic(ctx, 3)
    p = await producer(ctx, linger_ms=5)
    futs = [await p.send(topic, key=f"k{i % 5}".encode(), value=str(i).encode()) for i in range(300)]
    await asyncio.gather(*futs)
    await p.stop()
    c = await consumer(ctx, topic)
    recs = await consume(c, 300)
    await c.stop()
    seen: dict[bytes, list[int]] = {}
    parts: dict[bytes, set[int]] = {}
    for r in recs:
        seen.setdefault(r.key, []).append(int(r.value))
        parts.setdefault(r.key, set()).add(r.partition)
    for k, vals in seen.items():
        check(vals == sorted(vals), f"key {k!r} out of order")
        check(len(parts[k]) == 1, f"key {k!r} spread over partitions {parts[k]}")


@sync
async def headers_timestamps(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    ts = 1_600_000_000_000
    hdrs = [("h1", b"v1"), ("h2", b""), ("h1", b"again")]
    p = await producer(ctx)
    for i in range(3):
        await p.send_and_wait(topic, value=b"x", key=b"k", headers=hdrs, timestamp_ms=ts + i)
    await p.stop()
    c = await consumer(ctx, topic)
    recs = await consume(c, 3)
    await c.stop()
    for i, r in enumerate(recs):
        check(r.timestamp == ts + i, f"timestamp {r.timestamp} != {ts + i}")
        check(r.timestamp_type == 0, "timestamp type is not CreateTime")
        check(list(r.headers) == hdrs, f"headers {r.headers}")


@sync
async def group_three_leave(ctx: Ctx) -> None:
    topic = await create_topic(ctx, 6)
    group = ctx.group()
    cs = [await consumer(ctx, topic, group_id=group, session_timeout_ms=10000, heartbeat_interval_ms=500)
          for _ in range(3)]
    tasks = {}

    def pump(c):
        async def loop():
            while True:
                await c.getmany(timeout_ms=100)
        tasks[id(c)] = asyncio.create_task(loop())

    for c in cs:
        pump(c)

    def covered(members):
        async def f():
            parts = [c.assignment() for c in members]
            return all(parts) and sum(len(p) for p in parts) == 6 and len(set().union(*parts)) == 6
        return f

    await wait_for(covered(cs), 45, "three members sharing six partitions")
    tasks[id(cs[0])].cancel()
    await cs[0].stop()
    await wait_for(covered(cs[1:]), 45, "two members taking over six partitions")
    for c in cs[1:]:
        tasks[id(c)].cancel()
        await c.stop()


@sync
async def commit_resume(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    group = ctx.group()
    p = await producer(ctx)
    for i in range(10):
        await p.send_and_wait(topic, str(i).encode())
    await p.stop()
    tp = TopicPartition(topic, 0)
    c = await consumer(ctx, group_id=group)
    c.assign([tp])
    await consume(c, 5)
    await c.commit({tp: OffsetAndMetadata(5, "")})
    await c.stop()
    c = await consumer(ctx, group_id=group)
    c.assign([tp])
    recs = await consume(c, 5)
    await c.stop()
    check(recs[0].offset == 5 and recs[0].value == b"5", f"resumed at offset {recs[0].offset}")


@sync
async def admin_topics(ctx: Ctx) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    name = await create_topic(ctx)
    a = await admin(ctx)
    try:
        await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "12345"})])

        async def altered():
            d = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
            for resp in d:
                for res in resp.resources:
                    for entry in res[4]:
                        if entry[0] == "retention.ms" and entry[1] == "12345":
                            return True
            return False

        await wait_for(altered, 10, "retention.ms altered")
        await a.create_partitions({name: NewPartitions(total_count=3)})

        async def three():
            return await n_partitions(a, name) == 3

        await wait_for(three, 10, "3 partitions")
        await a.delete_topics([name])

        async def gone():
            return name not in await a.list_topics()

        await wait_for(gone, 15, "topic deleted")
    finally:
        await a.close()


@sync
async def offsets_by_timestamp(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    t = 1_700_000_000_000
    # acks=all: ListOffsets reads below the high watermark, which a replicated acks=1 append may
    # not have reached yet when the producer has its answer (compat/FINDINGS.md).
    p = await producer(ctx, acks="all")
    for i in range(3):
        await p.send_and_wait(topic, b"v", timestamp_ms=t + 1000 * i)
    await p.stop()
    c = await consumer(ctx)
    tp = TopicPartition(topic, 0)
    got = (await c.offsets_for_times({tp: t + 500}))[tp]
    check(got is not None and got.offset == 1, f"offset for t+500: {got}")
    check((await c.offsets_for_times({tp: t + 5000}))[tp] is None, "offset past the last timestamp")
    check((await c.beginning_offsets([tp]))[tp] == 0 and (await c.end_offsets([tp]))[tp] == 3,
          "earliest/latest")
    await c.stop()


@sync
async def idempotent_producer(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    p = await producer(ctx, enable_idempotence=True, acks="all")
    futs = [await p.send(topic, str(i).encode()) for i in range(50)]
    offsets = [m.offset for m in await asyncio.gather(*futs)]
    await p.stop()
    check(offsets == list(range(50)), f"offsets {offsets[:5]}...")
    c = await consumer(ctx, topic)
    vals = [int(r.value) for r in await consume(c, 50)]
    await c.stop()
    check(vals == list(range(50)), "values out of order or duplicated")


@sync
async def transactions_read_committed(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    p = await producer(ctx, transactional_id=ctx.group())
    for txn, commit in enumerate([True, False, True]):
        await p.begin_transaction()
        for i in range(5):
            await p.send(topic, f"{txn}-{i}".encode())
        if commit:
            await p.commit_transaction()
        else:
            await p.abort_transaction()
    await p.stop()
    c = await consumer(ctx, topic, isolation_level="read_committed")
    vals = [r.value.decode() for r in await consume(c, 10)]
    extra = await c.getmany(timeout_ms=1000)
    await c.stop()
    check(not any(extra.values()), "more than the committed records")
    check(vals == [f"{t}-{i}" for t in (0, 2) for i in range(5)], f"read_committed saw {vals}")


@sync
async def record_at_size_limit(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    p = await producer(ctx, max_request_size=CLIENT_MAX_REQUEST, max_batch_size=CLIENT_MAX_REQUEST)
    md = await p.send_and_wait(topic, b"x" * AT_LIMIT_VALUE)
    await p.stop()
    c = await consumer(ctx, topic, max_partition_fetch_bytes=CLIENT_MAX_REQUEST)
    r = (await consume(c, 1))[0]
    await c.stop()
    check(md.offset == 0 and len(r.value) == AT_LIMIT_VALUE, "large record not read back")


@sync
async def record_beyond_size_limit(ctx: Ctx) -> None:
    topic = await create_topic(ctx)
    p = await producer(ctx, max_request_size=CLIENT_MAX_REQUEST, max_batch_size=CLIENT_MAX_REQUEST)
    try:
        await asyncio.wait_for(p.send_and_wait(topic, b"x" * BEYOND_LIMIT_VALUE), 15)
    except MessageSizeTooLargeError:
        return
    finally:
        await p.stop()
    raise ScenarioError("broker accepted a batch beyond message.max.bytes")


@sync
async def unknown_topic(ctx: Ctx) -> None:
    name = ctx.topic()
    p = await producer(ctx, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(p.send_and_wait(name, b"v"), 10)
        raise ScenarioError("produce to an unknown topic succeeded")
    except (KafkaTimeoutError, UnknownTopicOrPartitionError):
        pass
    finally:
        await p.stop()
    a = await admin(ctx)
    try:
        check(name not in await a.list_topics(), "topic was auto-created")
    finally:
        await a.close()


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
    raise SystemExit(main(CLIENT, aiokafka.__version__, SCENARIOS,
                         debug_loggers=("aiokafka.consumer.group_coordinator",)))
