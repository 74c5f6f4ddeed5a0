"""librdkafka workers of scripts/bench_loads.py that run in its process (consume, produce-conns, group),
and the client settings and helpers every worker shares (CLIENT_CONFIG, a consumer, the topic's
partitions, this process's CPU time). The workers that start a consumer subprocess of bench_loads.py
(e2e, mixed) are in bench_loads.py."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

# --- librdkafka workers -----------------------------------------------------------------------

# librdkafka settings added to every client of a worker (`--config key=value`, e.g. for TLS)
CLIENT_CONFIG: dict[str, str] = {}


def _consumer(bootstrap: str, extra: dict | None = None):
    from confluent_kafka import Consumer

    conf = {"bootstrap.servers": bootstrap, "group.id": f"bench-{os.getpid()}",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "enable.partition.eof": False, "api.version.request": True}
    conf.update(extra or {})
    conf.update(CLIENT_CONFIG)
    return Consumer(conf)


def _sched_self() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable and waiting for one) of this process's threads so far,
    from /proc/self/task/*/schedstat (zeros where it cannot be read)."""
    run = wait = 0
    for path in Path("/proc/self/task").glob("*/schedstat"):
        try:
            a, b, _ = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            continue
        run, wait = run + a, wait + b
    return run / 1e9, wait / 1e9


def _partitions(bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_CONFIG}).list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions)


def w_consume(a: argparse.Namespace) -> dict:
    """Read `records` records from the start of every partition of the topic; time it."""
    from confluent_kafka import TopicPartition

    # fetch.queue.backoff.ms 10 (librdkafka's default 1,000): with the default, a partition whose
    # local queue passes queued.min.messages is not fetched again for a second, and whether a read
    # fills its queue is a race, so reads fell in two groups on either broker (scripts/README.md,
    # bench_consume_backoff.py); at 10 ms the queue never runs dry.
    c = _consumer(a.bootstrap, {"fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 1048576,
                                "queued.max.messages.kbytes": 262144, "fetch.wait.max.ms": 100,
                                "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(a.topic, p, 0) for p in _partitions(a.bootstrap, a.topic)])
    n = nbytes = 0
    t_start = time.monotonic()
    t_first = t_steady = None
    first_bytes = 0
    deadline = t_start + a.timeout
    while n < a.records and time.monotonic() < deadline:
        msgs = c.consume(num_messages=10000, timeout=1.0)
        if msgs and t_first is None:
            t_first = time.monotonic()
        for m in msgs:
            if m.error() is None:
                n += 1
                nbytes += len(m)
        if msgs and t_steady is None:
            t_steady = time.monotonic()
            first_bytes = nbytes
    t_end = time.monotonic()
    c.close()
    el = t_end - t_start
    # steady: after the first consume() call's records (that call waits for 10,000 records or 1 s)
    # to the end, without the start-up (the client's first Fetch sometimes starts ~1 s late, with
    # any broker, the null broker included)
    steady_s = t_end - (t_steady or t_end)
    return {"records": n, "bytes": nbytes, "seconds": el, "records_per_s": n / el,
            "mb_per_s": nbytes / el / 1e6, "mib_per_s": nbytes / el / 1048576,
            "first_record_s": (t_first or t_end) - t_start, "complete": n >= a.records,
            "steady_mb_per_s": (nbytes - first_bytes) / steady_s / 1e6 if steady_s > 0 else None}


def w_produce_conns(a: argparse.Namespace) -> dict:
    """`conns` producer instances (one connection each), `records` records round robin over them;
    with `keys` > 0 the records carry keys `key-0000`.. (a stride through them, as `mixed` does), so
    librdkafka's default partitioner (consistent_random: a hash of the key) places them."""
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": 5, "batch.size": 65536,
            "compression.type": "none", "queue.buffering.max.kbytes": 65536, **CLIENT_CONFIG}
    producers = [Producer(dict(conf, **{"client.id": f"bench-{i}"})) for i in range(a.conns)]
    for p in producers:  # connect before the clock starts
        p.list_topics(a.topic, timeout=30)
    errors = 0

    def cb(err, _msg):
        nonlocal errors
        if err is not None:
            errors += 1

    value = b"v" * a.record_size
    keys = [b"key-%04d" % k for k in range(a.keys)]
    nkeys = len(keys)
    t0 = time.monotonic()
    k = len(producers)
    for i in range(a.records):
        p = producers[i % k]
        key = keys[(i * 7919) % nkeys] if nkeys else None
        while True:
            try:
                p.produce(a.topic, value, key=key, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            for q in producers:
                q.poll(0)
    for p in producers:
        p.flush(300)
    el = time.monotonic() - t0
    return {"conns": a.conns, "records": a.records, "keys": nkeys, "errors": errors, "seconds": el,
            "records_per_s": a.records / el, "mb_per_s": a.records * a.record_size / el / 1e6,
            "mib_per_s": a.records * a.record_size / el / 1048576}


def w_group(a: argparse.Namespace) -> dict:
    """A consumer group of `conns` librdkafka members (classic protocol) on the topic:

    - join: all members subscribe; seconds until each has a partition and together they hold every
      partition once (the topic needs at least conns + 1 partitions). On a fresh broker this is the
      first group: its FindCoordinator creates `__consumer_offsets`;
    - rebalance: one more member subscribes; seconds until the same holds for conns + 1 members;
    - fetch: every member pauses, `records` records of `record_size` are produced, then all
      resume; MB/s until the group has consumed them all, from the resume (`fetch_mb_per_s`) and
      from the first record delivered (`fetch_flow_mb_per_s`). The two differ by librdkafka's
      wake-up: a resume does not wake its fetcher, which looks at the partitions again on its own
      ~1-s tick counted from the pause (seen in its `debug=fetch` log as "not fetchable: paused",
      then the next Fetch ~0.97 s or ~1.94 s later), so from the resume to the first Fetch is
      anything from 0 to 1 s whichever the broker, decided by how long the produce phase took;
    - second join (`join_second_s`): a second group of `conns` members (starting at the log end,
      so it fetches nothing) joins the same way while the first group stays, with the coordinator
      and `__consumer_offsets` already up."""
    from confluent_kafka import Consumer, Producer

    parts = set(_partitions(a.bootstrap, a.topic))
    base = {"bootstrap.servers": a.bootstrap, "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.wait.max.ms": 100, "session.timeout.ms": 45000, "heartbeat.interval.ms": 3000,
            "queued.max.messages.kbytes": 16384}
    state: dict[str, float] = {"records": 0, "bytes": 0, "t_first": 0.0, "first_bytes": 0}

    class Group:
        def __init__(self, name: str, reset: str) -> None:
            self.conf = dict(base, **{"group.id": name, "auto.offset.reset": reset})
            self.assigned: list[set[int]] = []
            self.consumers: list = []

        def add_member(self) -> None:
            i = len(self.consumers)
            self.assigned.append(set())

            def on_assign(_c, ps, i=i) -> None:
                self.assigned[i] = {p.partition for p in ps}

            def on_revoke(_c, _ps, i=i) -> None:
                self.assigned[i] = set()

            c = Consumer(dict(self.conf, **{"client.id": f"{self.conf['group.id']}-member-{i}"}))
            c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
            self.consumers.append(c)

        def stable(self) -> bool:
            if not all(self.assigned):
                return False
            union = set().union(*self.assigned)
            return union == parts and sum(len(x) for x in self.assigned) == len(parts)

    first = Group(f"bench-group-{os.getpid()}", "earliest")
    groups = [first]
    consumers, assigned = first.consumers, first.assigned

    def poll_all() -> None:
        for g in groups:
            for c in g.consumers:
                batch = c.consume(1000, 0)
                before = state["bytes"]
                for m in batch:
                    if m.error() is None:
                        state["records"] += 1
                        state["bytes"] += len(m.value() or b"")
                if not state["t_first"] and state["bytes"] > before:
                    # the first records after the reset: the flow is timed from here, without them
                    state["t_first"], state["first_bytes"] = time.monotonic(), state["bytes"] - before

    def wait_stable(what: str, group: Group = first) -> float:
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        while not group.stable():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {sum(1 for x in group.assigned if x)} of {len(group.consumers)} "
                                   "members assigned")
            poll_all()
            time.sleep(0.005)
        return time.monotonic() - t0

    add_member = first.add_member

    t0 = time.monotonic()
    for _ in range(a.conns):
        add_member()
    wait_stable("join")
    join_s = time.monotonic() - t0  # from the first member's creation
    add_member()
    rebalance_s = wait_stable("rebalance")
    from confluent_kafka import TopicPartition

    for c, mine in zip(consumers, assigned, strict=True):
        c.pause([TopicPartition(a.topic, p) for p in mine])
    producer = Producer({"bootstrap.servers": a.bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 65536,
                         "queue.buffering.max.kbytes": 262144})
    value = b"v" * a.record_size
    for i in range(a.records):
        while True:
            try:
                producer.produce(a.topic, value, partition=i % len(parts))
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
            poll_all()  # (keeps the members' heartbeats served while paused)
    producer.flush(300)
    state["records"] = state["bytes"] = state["t_first"] = state["first_bytes"] = 0
    t1 = time.monotonic()
    for c, mine in zip(consumers, assigned, strict=True):
        c.resume([TopicPartition(a.topic, p) for p in mine])
    deadline = t1 + a.timeout
    while state["records"] < a.records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fetch: {state['records']} of {a.records} records")
        poll_all()
    done = time.monotonic()
    t_first = state["t_first"]
    fetch_s, flow_s = done - t1, done - t_first
    result = {"members": a.conns, "partitions": len(parts), "join_s": join_s, "rebalance_s": rebalance_s,
              "records": a.records, "fetch_s": fetch_s, "fetch_mb_per_s": state["bytes"] / fetch_s / 1e6,
              "fetch_records_per_s": state["records"] / fetch_s, "fetch_wake_s": t_first - t1,
              "fetch_flow_s": flow_s,
              "fetch_flow_mb_per_s": (state["bytes"] - state["first_bytes"]) / flow_s / 1e6 if flow_s > 0 else math.nan}
    second = Group(f"bench-group-{os.getpid()}-second", "latest")
    groups.append(second)
    t2 = time.monotonic()
    for _ in range(a.conns):
        second.add_member()
    wait_stable("second join", second)
    result["join_second_s"] = time.monotonic() - t2
    # Closing the members one by one makes each leave a rebalance the others (not polled) hold up:
    # 101 closes against Kafka took over ten minutes. The figures are taken: exit without them.
    print(json.dumps(result), flush=True)
    os._exit(0)
