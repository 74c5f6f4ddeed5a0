"""Measure the test controls: reset time, embedded start-to-ready, and the fault layer's cost.

    .venv/bin/python scripts/bench_controls.py [--topics 100] [--groups 10] [--resets 10]
                                               [--records 200000] [--rounds 3] [--skip-throughput]

1. Reset: an embedded broker (BrokerThread) gets ``--topics`` topics (one record each) and
   ``--groups`` consumer groups with committed offsets (OffsetCommit on the wire, as a client
   does), then ``reset()``; the time is measured inside the broker (``elapsed_ms``) and as the
   caller sees it (the call on the loop from the test's thread). Repeated ``--resets`` times.
2. Start-to-ready of ``BrokerThread().start()`` (fresh temporary data dir), and the time to its
   first Metadata answer, median of 10.
3. Throughput with the fault layer present and no rule set (``request_hooks`` None, the only
   cost is the dispatcher's attribute read) against the same build with the hook removed from
   the dispatcher (the call is patched out of ``KafkaConnection._handle_frame``), same run,
   interleaved rounds: confluent-kafka produces ``--records`` 1 KiB records (acks=1) then
   consumes them, broker on a thread in this process... no: in a subprocess (``python -m
   kbroker``), so the client does not share the broker's interpreter.
4. The manual clock's cost when unused: the same throughput rounds against a broker started with
   ``kbroker.clock=manual`` that is never advanced (variant ``manual``, interleaved with the
   others), and, timed alone with ``timeit``, what the produce path now executes per request to
   choose its clock (``broker.clock`` then ``time.time()``) against the bare ``time.time()`` it
   executed before; and the CPU per pipelined Produce request (acks=1) through the dispatcher
   against an embedded broker on the real clock and one on an unused manual clock. Delayed operations (acks=all waits, long polls) make their
   :class:`Deadline` only when they must wait, so the per-request cost is that one read.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker.broker import Broker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))


def bench_reset(topics: int, groups: int, resets: int) -> list[tuple[float, float]]:
    from wire import Wire, create_topic, produce

    from kbroker.testing import BrokerThread
    from kbroker_protocol.messages import REQUESTS

    out = []
    with BrokerThread() as broker:
        for _ in range(resets):
            wire = Wire(broker.bootstrap_servers)
            names = [f"bench-{i}" for i in range(topics)]
            for name in names:
                create_topic(wire, name)
                produce(wire, name, 0, 1)
            C = REQUESTS[8]
            F = REQUESTS[10]
            for g in range(groups):
                group = f"group-{g}"
                wire.call(10, 4, key_type=0, coordinator_keys=[group])
                resp = wire.call(8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                 group_instance_id=None, topics=[
                                     C.OffsetCommitRequestTopic(name=name, partitions=[
                                         C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                                             partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                                             committed_metadata="")])
                                     for name in names[:10]])
                assert all(p.error_code == 0 for t in resp.topics for p in t.partitions), resp
            del F
            wire.close()
            assert len(broker.broker.group_coordinator.groups) == groups
            t0 = time.perf_counter()
            result = broker.reset()
            outside = (time.perf_counter() - t0) * 1000
            assert result["topics_deleted"] == topics and result["groups_deleted"] == groups, result
            out.append((result["elapsed_ms"], outside))
    return out


def bench_start(n: int = 10) -> tuple[list[float], list[float]]:
    from wire import Wire

    from kbroker.testing import BrokerThread

    ready, first = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        broker = BrokerThread().start()
        t1 = time.perf_counter()
        wire = Wire(broker.bootstrap_servers)
        wire.call(3, 12, topics=[], allow_auto_topic_creation=False)
        t2 = time.perf_counter()
        wire.close()
        broker.stop()
        ready.append((t1 - t0) * 1000)
        first.append((t2 - t0) * 1000)
    return ready, first


_NO_HOOK = """
import sys
from kbroker.server import connection
import inspect, textwrap
src = textwrap.dedent(inspect.getsource(connection.KafkaConnection._handle_frame))
lines = src.splitlines()
at = next(i for i, l in enumerate(lines) if "hooks = self.broker.request_hooks" in l)
assert "hooks.intercept" in lines[at + 1] and lines[at + 2].strip() == "return", lines[at:at + 3]
del lines[at:at + 3]
assert "hooks.intercept" not in "\\n".join(lines)
src = "\\n".join(lines) + "\\n"
ns = {}
exec(compile(src, connection.__file__, "exec"), vars(connection), ns)
connection.KafkaConnection._handle_frame = ns["_handle_frame"]
sys.argv = ["kbroker"] + sys.argv[1:]
from kbroker.__main__ import main
sys.exit(main())
"""


def _start_process(data_dir: str, variant: str) -> tuple[subprocess.Popen, str]:
    args = ["--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", f"log.dirs={data_dir}",
            "--override", "node.id=1", "--override", "offsets.topic.replication.factor=1",
            "--override", "transaction.state.log.replication.factor=1", "--log-level", "WARNING",
            # the consumer group forms at once on every variant (on a manual clock the delay would
            # wait for an advance)
            "--override", "group.initial.rebalance.delay.ms=0"]
    if variant == "manual":
        args += ["--override", "kbroker.clock=manual"]
    cmd = [sys.executable, "-c", _NO_HOOK, *args] if variant == "no-hook" else [sys.executable, "-m", "kbroker", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"{variant}: broker did not start: {line!r}")
    return proc, line.rsplit("://", 1)[1].strip()


def bench_throughput(records: int, variant: str) -> tuple[float, float]:
    from confluent_kafka import Consumer, Producer

    with tempfile.TemporaryDirectory() as data_dir:
        proc, bootstrap = _start_process(data_dir, variant)
        try:
            value = b"x" * 1024
            producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "log_level": 0,
                                 "batch.size": 65536, "queue.buffering.max.messages": 1_000_000})
            producer.produce("warm", value)
            producer.flush(30)
            t0 = time.perf_counter()
            for _ in range(records):
                while True:
                    try:
                        producer.produce("bench", value)
                        break
                    except BufferError:
                        producer.poll(0.01)
            assert producer.flush(120) == 0
            produce_s = time.perf_counter() - t0
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "log_level": 0,
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                 "fetch.max.bytes": 52428800})
            consumer.subscribe(["bench"])
            got = 0
            t0 = None
            while got < records:
                batch = consumer.consume(10000, 1.0)
                if batch and t0 is None:
                    t0 = time.perf_counter()
                got += sum(1 for m in batch if m.error() is None)
            consume_s = time.perf_counter() - (t0 or time.perf_counter())
            consumer.close()
        finally:
            proc.terminate()
            proc.wait(30)
    mb = records * 1024 / 1e6
    return mb / produce_s, mb / consume_s


class _Transport:
    """Enough of an asyncio transport for KafkaConnection: counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def writelines(self, parts: list) -> None:
        self.written += len(parts)

    def write(self, data: bytes) -> None:
        self.written += 1

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def _cpu_us_per_request(broker: Broker, data: bytes, requests: int) -> float:
    """Microseconds of CPU (this thread's: other processes on a busy machine do not count) per
    request of ``data`` (``requests`` pipelined request frames) fed to a new KafkaConnection of
    ``broker`` in 64 KiB reads, garbage collection off while measuring."""
    import gc

    from kbroker.server import connection

    conn = connection.KafkaConnection(broker, broker.config.client_listeners[0])
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    gc.collect()
    gc.disable()
    t0 = time.thread_time()
    for start in range(0, len(data), 65536):
        conn.data_received(data[start:start + 65536])
    elapsed = time.thread_time() - t0
    gc.enable()
    assert transport.written >= requests, transport.written
    conn.connection_lost(None)
    return elapsed / requests * 1e6


def bench_dispatch(rounds: int, requests: int) -> dict[str, list[float]]:
    """Microseconds of CPU (this thread's) per pipelined request (ApiVersions v3 and Metadata v12
    for one topic, sync handlers) through KafkaConnection.data_received, with the dispatcher's hook
    present (no rule set) and patched out, interleaved rounds (alternating which goes first), same
    process, garbage collection off while measuring."""
    import asyncio
    import inspect
    import struct
    import textwrap

    from kbroker.server import connection
    from kbroker.testing import EmbeddedBroker
    from kbroker_protocol.api import encode_request
    from kbroker_protocol.messages import REQUESTS, RequestHeader

    src = textwrap.dedent(inspect.getsource(connection.KafkaConnection._handle_frame))
    lines = src.splitlines()
    at = next(i for i, line in enumerate(lines) if "hooks = self.broker.request_hooks" in line)
    del lines[at:at + 3]
    ns: dict = {}
    exec(compile("\n".join(lines) + "\n", connection.__file__, "exec"), vars(connection), ns)
    variants = {"hook": connection.KafkaConnection._handle_frame, "no-hook": ns["_handle_frame"]}

    def frame(api_key: int, version: int, body: object, cid: int) -> bytes:
        payload = encode_request(RequestHeader(request_api_key=api_key, request_api_version=version,
                                               correlation_id=cid, client_id="bench"), body)
        return struct.pack(">i", len(payload)) + payload

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {name: [] for name in variants}
        async with EmbeddedBroker() as embedded:
            from kbroker.metadata.new_topic import NewTopic
            from kbroker.replication.topics import create_topic

            await create_topic(embedded.broker, NewTopic("dispatch", 1, 1))
            M = REQUESTS[3]
            data = b"".join(
                frame(18, 3, REQUESTS[18](client_software_name="b", client_software_version="1"), i)
                if i % 2 else
                frame(3, 12, M(topics=[M.MetadataRequestTopic(name="dispatch")], allow_auto_topic_creation=False), i)
                for i in range(requests))
            names = list(variants)
            for i in range(rounds):
                for name in names if i % 2 else names[::-1]:  # alternate which goes first
                    connection.KafkaConnection._handle_frame = variants[name]
                    out[name].append(_cpu_us_per_request(embedded.broker, data, requests))
            connection.KafkaConnection._handle_frame = variants["hook"]
        return out

    return asyncio.run(run())


def bench_produce_dispatch(rounds: int, requests: int) -> dict[str, list[float]]:
    """Microseconds of CPU (this thread's) per pipelined Produce request (acks=1, one 100-byte
    record, appended at once) through KafkaConnection.data_received, against two embedded brokers
    in this process: one on the real clock, one with ``kbroker.clock=manual`` never advanced;
    interleaved rounds (alternating which goes first), garbage collection off while measuring."""
    import asyncio
    import struct

    from kbroker.testing import EmbeddedBroker
    from kbroker_protocol.api import encode_request
    from kbroker_protocol.messages import REQUESTS, RequestHeader
    from kbroker_protocol.records import Record, build_batch

    P = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"v" * 100, timestamp=1_700_000_000_000)])

    def frame(cid: int) -> bytes:
        body = P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[P.TopicProduceData(
            name="produce", partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
        payload = encode_request(RequestHeader(request_api_key=0, request_api_version=9, correlation_id=cid,
                                               client_id="bench"), body)
        return struct.pack(">i", len(payload)) + payload

    data = b"".join(frame(i) for i in range(requests))

    async def run() -> dict[str, list[float]]:
        from kbroker.metadata.new_topic import NewTopic
        from kbroker.replication.topics import create_topic

        out: dict[str, list[float]] = {"real": [], "manual": []}
        async with EmbeddedBroker() as real, EmbeddedBroker(clock="manual") as manual:
            brokers = {"real": real, "manual": manual}
            for embedded in brokers.values():
                await create_topic(embedded.broker, NewTopic("produce", 1, 1))
            assert real.broker.clock is None and manual.broker.clock is not None
            names = list(brokers)
            for i in range(rounds):
                for name in names if i % 2 else names[::-1]:
                    out[name].append(_cpu_us_per_request(brokers[name].broker, data, requests))
        return out

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--resets", type=int, default=10)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dispatch-rounds", type=int, default=30)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    resets = bench_reset(args.topics, args.groups, args.resets)
    inside = [r[0] for r in resets]
    outside = [r[1] for r in resets]
    print(f"reset with {args.topics} topics and {args.groups} groups, {args.resets} times: "
          f"median {statistics.median(inside):.1f} ms in the broker, {statistics.median(outside):.1f} ms for the "
          f"caller (min {min(outside):.1f}, max {max(outside):.1f})")
    ready, first = bench_start()
    print(f"embedded start-to-ready: median {statistics.median(ready):.0f} ms; to first Metadata answer "
          f"{statistics.median(first):.0f} ms (min {min(first):.0f}, max {max(first):.0f})")
    dispatch = bench_dispatch(args.dispatch_rounds, 20000)
    for name, runs in dispatch.items():
        print(f"dispatch {name:8}: {statistics.median(runs):.2f} us per request (median of {len(runs)} rounds, "
              f"min {min(runs):.2f})")
    print(f"dispatch hook/no-hook = {statistics.median(dispatch['hook']) / statistics.median(dispatch['no-hook']):.4f} "
          f"(min/min {min(dispatch['hook']) / min(dispatch['no-hook']):.4f})")
    # The hook's own cost: what the dispatcher executes per request when no control is set.
    import timeit

    from kbroker.testing import EmbeddedBroker

    holder = EmbeddedBroker()  # a Broker object is built only to read its attribute
    from kbroker.broker import Broker

    broker_obj = Broker(holder.config)
    check = min(timeit.repeat("hooks = b.request_hooks\nif hooks is not None: pass", globals={"b": broker_obj},
                              number=1_000_000, repeat=7))
    empty = min(timeit.repeat("pass", number=1_000_000, repeat=7))
    per = (check - empty) * 1000  # ns per request (1e6 runs)
    per_request_us = min(dispatch["no-hook"])
    print(f"the hook's check alone: {per:.1f} ns per request = {per / (per_request_us * 1000) * 100:.3f} % of the "
          f"fastest dispatch ({per_request_us:.1f} us)")
    # The clock choice on the produce path (the real clock: broker.clock is None).
    setup = "import time"
    chosen = min(timeit.repeat("clock = b.clock\n"
                               "now = int(time.time() * 1000) if clock is None else clock.now_ms()",
                               setup, globals={"b": broker_obj}, number=1_000_000, repeat=7))
    bare = min(timeit.repeat("now = int(time.time() * 1000)", setup, number=1_000_000, repeat=7))
    print(f"the produce path's clock choice: {(chosen - bare) * 1000:.1f} ns per Produce request over the bare "
          f"time.time() ({(chosen - bare) * 1000 / (per_request_us * 1000) * 100:.3f} % of the fastest dispatch)")
    holder._cleanup()
    produce = bench_produce_dispatch(args.dispatch_rounds, 5000)
    for name, runs in produce.items():
        print(f"produce dispatch, {name:6} clock: {statistics.median(runs):.2f} us per request (median of "
              f"{len(runs)} rounds, min {min(runs):.2f})")
    print(f"produce dispatch manual (unused)/real = "
          f"{statistics.median(produce['manual']) / statistics.median(produce['real']):.4f} "
          f"(min/min {min(produce['manual']) / min(produce['real']):.4f})")
    if args.skip_throughput:
        return 0
    variants = ("hook", "no-hook", "manual")
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for i in range(args.rounds):
        for variant in variants[i % 3:] + variants[:i % 3]:  # rotate which goes first
            results[variant].append(bench_throughput(args.records, variant))
    for variant, runs in results.items():
        print(f"{variant:8}: produce {', '.join(f'{p:.0f}' for p, _ in runs)} MB/s "
              f"(median {statistics.median(p for p, _ in runs):.0f}); consume "
              f"{', '.join(f'{c:.0f}' for _, c in runs)} MB/s (median {statistics.median(c for _, c in runs):.0f})")
    for i, name in ((0, "produce"), (1, "consume")):
        hook = statistics.median(r[i] for r in results["hook"])
        bare = statistics.median(r[i] for r in results["no-hook"])
        manual = statistics.median(r[i] for r in results["manual"])
        print(f"{name}: hook/no-hook = {hook / bare:.3f}; manual clock (unused)/real clock = {manual / hook:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
