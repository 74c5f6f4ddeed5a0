"""kcat scenarios for the compatibility matrix, driving the kcat command line (see harness.py).

kcat has no admin commands, so topics are created with kafka-python's admin client beforehand
(the scenario then exercises kcat alone). kcat cannot set record timestamps, abort a transaction
or commit a chosen offset, so those parts are adapted or the scenario is left out (FINDINGS.md).
"""

from __future__ import annotations

import re
import subprocess
import time

from harness import (
    AT_LIMIT_VALUE,
    BEYOND_LIMIT_VALUE,
    CLIENT_MAX_REQUEST,
    CODECS,
    Ctx,
    ScenarioError,
    check,
    kafka_python_security,
    librdkafka_security,
    main,
    wait_until,
)
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

CLIENT = "kcat"
SECURITY = kafka_python_security()  # its admin steps use kafka-python
KCAT_SECURITY = [arg for k, v in librdkafka_security().items() for arg in ("-X", f"{k}={v}")]


def kcat(ctx: Ctx, *args: str, data: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["kcat", "-b", ctx.bootstrap, *KCAT_SECURITY, *args], input=data, capture_output=True,
                          timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> bytes:
    check(res.returncode == 0, f"kcat exited {res.returncode}: {res.stderr.decode(errors='replace')[-300:]}")
    return res.stdout


def create_topic(ctx: Ctx, partitions: int = 1) -> str:
    name = ctx.topic()
    a = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, **SECURITY, request_timeout_ms=15000)
    try:
        a.create_topics([NewTopic(name, partitions, ctx.rf)])
        wait_until(lambda: len(a.describe_topics([name])[0]["partitions"] or []) == partitions, 15,
                   "topic metadata")
    finally:
        a.close()
    return name


def topic_exists(ctx: Ctx, name: str) -> bool:
    out = ok(kcat(ctx, "-L", "-J", "-t", name))
    return '"error":"Broker: Unknown topic or partition"' not in out.decode() and f'"topic":"{name}"' in out.decode()


def consume(ctx: Ctx, topic: str, n: int, fmt: str = "%s\\n", *extra: str) -> list[str]:
    out = ok(kcat(ctx, "-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q", "-f", fmt, *extra))
    lines = out.decode().splitlines()
    check(len(lines) >= n, f"consumed {len(lines)} of {n} records")
    return lines


def produce_consume(codec: str):
    def run(ctx: Ctx) -> None:
        topic = create_topic(ctx)
        values = [f"value-{i}-" * 20 for i in range(100)]
        args = ["-P", "-t", topic, "-X", "linger.ms=5"]
        if codec != "none":
            args += ["-z", codec]
        ok(kcat(ctx, *args, data="\n".join(values).encode() + b"\n"))
        got = consume(ctx, topic, 100)
        check(got == values, "values differ from those produced")
    return run


def keyed_ordering(ctx: Ctx) -> None:
    topic = create_topic(ctx, 3)
    data = "".join(f"k{i % 5}:{i}\n" for i in range(300)).encode()
    ok(kcat(ctx, "-P", "-t", topic, "-K", ":", data=data))
    seen: dict[str, list[int]] = {}
    parts: dict[str, set[str]] = {}
    for line in consume(ctx, topic, 300, "%k %p %s\\n"):
        k, p, v = line.split()
        seen.setdefault(k, []).append(int(v))
        parts.setdefault(k, set()).add(p)
    check(len(seen) == 5, f"keys {sorted(seen)}")
    for k, vals in seen.items():
        check(vals == sorted(vals), f"key {k} out of order")
        check(len(parts[k]) == 1, f"key {k} spread over partitions {parts[k]}")


def headers_timestamps(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    before = int(time.time() * 1000) - 1000
    ok(kcat(ctx, "-P", "-t", topic, "-H", "h1=v1", "-H", "h2=", "-H", "h1=again", data=b"x\n"))
    after = int(time.time() * 1000) + 1000
    line = consume(ctx, topic, 1, "%T|%h|%s\\n")[0]
    ts, hdrs, value = line.split("|")
    check(value == "x", f"value {value}")
    check(hdrs == "h1=v1,h2=,h1=again", f"headers {hdrs}")
    check(before <= int(ts) <= after, f"timestamp {ts} not the producer's create time")


def group_three_leave(ctx: Ctx) -> None:
    topic = create_topic(ctx, 6)
    group = ctx.group()
    procs = [subprocess.Popen(["kcat", "-b", ctx.bootstrap, *KCAT_SECURITY, "-G", group, "-q", "-X", "session.timeout.ms=10000",
                               "-X", "heartbeat.interval.ms=500", topic],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(3)]
    try:
        deadline = time.monotonic() + 45
        # wait until a generation with 3 members and then, after one leaves, one with 2
        joined = _wait_group_size(ctx, group, 3, deadline)
        check(joined, "three members never joined one generation")
        procs[0].terminate()
        procs[0].wait(15)
        check(_wait_group_size(ctx, group, 2, deadline), "group did not rebalance to two members")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(15)


def _wait_group_size(ctx: Ctx, group: str, n: int, deadline: float) -> bool:
    """Use kafka-python's admin to describe the group: Stable with n members covering 6 partitions."""
    a = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, **SECURITY, request_timeout_ms=15000)
    try:
        while time.monotonic() < deadline:
            d = a.describe_groups([group]).get(group, {})
            if d.get("group_state") == "Stable" and len(d.get("members") or []) == n:
                return True
            time.sleep(0.2)  # polling interval, bounded by the deadline
        return False
    finally:
        a.close()


def offsets_by_timestamp(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    for i in range(3):
        ok(kcat(ctx, "-P", "-t", topic, data=f"{i}\n".encode()))
    stamps = [int(x.split()[0]) for x in consume(ctx, topic, 3, "%T %o\\n")]
    check(stamps == sorted(stamps), f"timestamps {stamps}")
    target = stamps[1] if stamps[1] > stamps[0] else stamps[1] + 1
    first = consume(ctx, topic, 1, "%o\\n", "-o", f"s@{target}")[0]
    want = [i for i, s in enumerate(stamps) if s >= target][0]
    check(int(first) == want, f"offset for timestamp {target}: {first}, expected {want}")


def idempotent_producer(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    data = "".join(f"{i}\n" for i in range(50)).encode()
    ok(kcat(ctx, "-P", "-t", topic, "-X", "enable.idempotence=true", "-X", "acks=all", data=data))
    got = consume(ctx, topic, 50, "%o %s\\n")
    check(got == [f"{i} {i}" for i in range(50)], "offsets/values differ")


def transactions_read_committed(ctx: Ctx) -> None:
    """kcat sends all input as one transaction (commit only: it cannot abort one)."""
    topic = create_topic(ctx)
    data = "".join(f"0-{i}\n" for i in range(5)).encode()
    ok(kcat(ctx, "-P", "-t", topic, "-X", f"transactional.id={ctx.group()}", data=data))
    got = consume(ctx, topic, 5, "%s\\n", "-X", "isolation.level=read_committed")
    check(got == [f"0-{i}" for i in range(5)], f"read_committed saw {got}")


def record_at_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    ok(kcat(ctx, "-P", "-t", topic, "-X", f"message.max.bytes={CLIENT_MAX_REQUEST}",
            data=b"x" * AT_LIMIT_VALUE + b"\n"))
    out = consume(ctx, topic, 1, "%S\\n", "-X", f"fetch.message.max.bytes={CLIENT_MAX_REQUEST}")
    check(out[0] == str(AT_LIMIT_VALUE), f"read back {out[0]} bytes")


def record_beyond_size_limit(ctx: Ctx) -> None:
    topic = create_topic(ctx)
    res = kcat(ctx, "-P", "-t", topic, "-X", f"message.max.bytes={CLIENT_MAX_REQUEST}", "-X", "retries=0",
               data=b"x" * BEYOND_LIMIT_VALUE + b"\n")
    err = res.stderr.decode(errors="replace")
    if re.search(r"[Mm]essage size too large|MSG_SIZE_TOO_LARGE", err):
        return
    raise ScenarioError(f"no message-too-large error (exit {res.returncode}): {err[-300:]}")


def unknown_topic(ctx: Ctx) -> None:
    name = ctx.topic()
    res = kcat(ctx, "-P", "-t", name, "-X", "topic.metadata.propagation.max.ms=1000",
               "-X", "message.timeout.ms=5000", data=b"v\n")
    err = res.stderr.decode(errors="replace")
    check(re.search(r"[Uu]nknown topic|UNKNOWN_TOPIC|timed out", err) is not None,
          f"no unknown-topic error (exit {res.returncode}): {err[-300:]}")
    check(not topic_exists(ctx, name), "topic was auto-created")


SCENARIOS = {f"produce_consume_{c}": produce_consume(c) for c in CODECS}
SCENARIOS.update(
    keyed_ordering=keyed_ordering,
    headers_timestamps=headers_timestamps,
    group_three_leave=group_three_leave,
    offsets_by_timestamp=offsets_by_timestamp,
    idempotent_producer=idempotent_producer,
    transactions_read_committed=transactions_read_committed,
    record_at_size_limit=record_at_size_limit,
    record_beyond_size_limit=record_beyond_size_limit,
    unknown_topic=unknown_topic,
)


def kcat_version() -> str:
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "not installed"
    m = re.search(r"Version\s+(\S+).*?librdkafka\s+([\d.]+)", out, re.S)
    return f"{m.group(1)} (librdkafka {m.group(2)})" if m else out.splitlines()[0] if out else "?"


if __name__ == "__main__":
    raise SystemExit(main(CLIENT, kcat_version(), SCENARIOS))
