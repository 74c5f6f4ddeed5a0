"""Produce batches whose records contradict their header, or whose compressed payload lies
(issue 13, holes 2 and 5), sent over a socket.

Each is answered with Kafka 4.4's error (checked against a running Kafka 4.4.0 with
``scripts/probe_produce_validation.py``), the log does not move, the next good batch lands at the
offset where the bad one would have, and a consumer reads exactly the good records. Large
validations (a compacted topic's key check, a re-encode) run off the event loop: other clients are
answered meanwhile, and appends to one partition keep request order.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import hostile_batches as hb
import pytest
from kafka import KafkaConsumer, TopicPartition
from waiting import wait_until
from wire import Wire, create_topic

from kbroker_protocol.compression import Codec
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import Record, build_batch, decode_batch

E = ErrorCode
P = REQUESTS[0]
F = REQUESTS[1]

EXPECTED = {
    "count 2^31-1": E.INVALID_RECORD,
    "count 10 for 3": E.INVALID_RECORD,
    "count 1 for 3": E.INVALID_RECORD,
    "record length overrun": E.INVALID_RECORD,
    "gzip over garbage": E.UNKNOWN_SERVER_ERROR,  # Kafka: KafkaException around the codec's IOException
    "snappy over garbage": E.UNKNOWN_SERVER_ERROR,
    "lz4 over garbage": E.UNKNOWN_SERVER_ERROR,
    "zstd over garbage": E.UNKNOWN_SERVER_ERROR,
    "gzip truncated": E.UNKNOWN_SERVER_ERROR,
    "zstd count 10 for 3": E.INVALID_RECORD,
    "lz4 count 1 for 3": E.INVALID_RECORD,
    "snappy raw count 2 for 3": E.INVALID_RECORD,
    "lz4 frame of zeros": E.INVALID_RECORD,
    "base offset 5": E.INVALID_RECORD,  # Kafka's analyzeAndValidateRecords: a client's baseOffset is 0
    "producer id without sequence": E.INVALID_RECORD,  # Kafka's LogValidator.validateBatch
}


@pytest.fixture
def topic_name() -> str:
    return f"h-{uuid.uuid4().hex[:10]}"


def send_produce(wire: Wire, topic: str, batch: bytes, partition: int = 0, version: int = 9) -> int:
    data = P.TopicProduceData(name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(
        index=partition, records=batch)])
    return wire.send(P(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[data]), version)


def produce(wire: Wire, topic: str, batch: bytes, partition: int = 0):
    send_produce(wire, topic, batch, partition)
    return wire.receive().responses[0].partition_responses[0]


def end_offset(wire: Wire, topic: str, partition: int = 0) -> int:
    L = REQUESTS[2]
    resp = wire.call(2, 7, replica_id=-1, isolation_level=0, timeout_ms=10000, topics=[
        L.ListOffsetsTopic(name=topic, partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=partition, current_leader_epoch=-1, timestamp=-1)])])
    return resp.topics[0].partitions[0].offset


def fetch_records(wire: Wire, topic: str, partition: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    t = F.FetchTopic(topic=topic, partitions=[F.FetchTopic.FetchPartition(
        partition=partition, fetch_offset=0, partition_max_bytes=64 << 20)])
    resp = wire.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=64 << 20, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[t], forgotten_topics_data=[], rack_id="")
    part = resp.responses[0].partitions[0]
    assert part.error_code == E.NONE
    data = bytes(part.records)
    out = []
    for pos, _ in iter_batch_headers(data):
        out += [(r.offset, r.key, r.value) for r in decode_batch(data, pos).records]
    return out


def good_batch(n: int = 3, tag: bytes = b"good") -> bytes:
    now = int(time.time() * 1000)
    return build_batch([Record(key=b"k%d" % i, value=tag + b"-%d" % i, timestamp=now) for i in range(n)])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bad_batch_is_rejected_and_the_log_is_unchanged(bootstrap, topic_name, name):
    wire = Wire(bootstrap)
    create_topic(wire, topic_name)
    assert produce(wire, topic_name, good_batch(2, b"before")).base_offset == 0
    part = produce(wire, topic_name, hb.named()[name])
    assert (E(part.error_code), part.base_offset) == (EXPECTED[name], -1), part.error_message
    assert end_offset(wire, topic_name) == 2
    after = produce(wire, topic_name, good_batch(3, b"after"))
    assert (after.error_code, after.base_offset) == (E.NONE, 2)
    assert fetch_records(wire, topic_name) == [(0, b"k0", b"before-0"), (1, b"k1", b"before-1"),
                                               (2, b"k0", b"after-0"), (3, b"k1", b"after-1"),
                                               (4, b"k2", b"after-2")]
    wire.close()


def test_decompression_bomb_is_rejected_without_storing_it(bootstrap, topic_name):
    """A zstd batch of ~20 KB decompressing to 600 MB: refused (MESSAGE_TOO_LARGE) once the decompressed
    bytes pass the limit (64 MiB here), not decompressed in full; Kafka itself has no such limit."""
    wire = Wire(bootstrap)
    create_topic(wire, topic_name)
    bomb = hb.bomb(600 << 20)
    assert len(bomb) < 100_000
    part = produce(wire, topic_name, bomb)
    assert E(part.error_code) == E.MESSAGE_TOO_LARGE, part.error_message
    assert end_offset(wire, topic_name) == 0
    assert produce(wire, topic_name, good_batch()).base_offset == 0
    wire.close()


def test_a_consumer_reads_only_the_good_batches(bootstrap, topic_name):
    """Every hostile batch thrown at one partition, a good one after each: kafka-python reads all the
    good records at consecutive offsets (a stored bad batch made it raise CorruptRecordError)."""
    wire = Wire(bootstrap)
    create_topic(wire, topic_name)
    for i, batch in enumerate(hb.named().values()):
        assert produce(wire, topic_name, batch).error_code != E.NONE
        assert produce(wire, topic_name, good_batch(1, b"g%d" % i)).base_offset == i
    wire.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic_name, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = []
    for message in consumer:
        values.append((message.offset, message.value))
        if len(values) == len(EXPECTED):
            break
    consumer.close()
    assert values == [(i, b"g%d-0" % i) for i in range(len(EXPECTED))]


def test_compacted_topic_reports_each_record_without_a_key(bootstrap, topic_name):
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, configs={"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    for codec in (Codec.NONE, Codec.LZ4):
        records = [Record(key=None if i in (1, 4) else b"k", value=b"v", timestamp=now) for i in range(6)]
        part = produce(wire, topic_name, build_batch(records, compression=codec))
        assert E(part.error_code) == E.INVALID_RECORD
        assert [e.batch_index for e in part.record_errors] == [1, 4]
        assert part.record_errors[0].batch_index_error_message == (
            f"Compacted topic cannot accept message without key in topic partition {topic_name}-0")
        assert part.error_message.startswith("One or more records have been rejected due to 2 record errors")
    assert end_offset(wire, topic_name) == 0
    wire.close()


def test_record_timestamps_are_checked_not_only_the_header(bootstrap, topic_name):
    """The header's maxTimestamp says now; two records are two hours ahead (after.max.ms is one hour)."""
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, configs={"message.timestamp.after.max.ms": "3600000"})
    now = int(time.time() * 1000)
    records = [Record(key=b"k", value=b"v", timestamp=t) for t in (now, now + 7_200_000, now, now + 9_000_000)]
    part = produce(wire, topic_name, build_batch(records, max_timestamp=now))
    assert E(part.error_code) == E.INVALID_TIMESTAMP
    assert [e.batch_index for e in part.record_errors] == [1, 3]
    assert end_offset(wire, topic_name) == 0
    wire.close()


class GatedPool:
    """Wraps the broker's validation pool: a validation starts only once the test opens the gate."""

    def __init__(self, pool, loop) -> None:
        self.pool = pool
        self.loop = loop
        self.calls = 0
        self.gate = asyncio.Event()

    def check_while_cold(self, batch, header, policy, rebuild):
        return None  # every big batch comes to validate() (and waits at the gate)

    async def validate(self, batch, policy):
        self.calls += 1
        await self.gate.wait()
        return await self.pool.validate(batch, policy)

    def open(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def close(self) -> None:
        self.pool.close()


def tiny_records_batch(n: int, codec: int, null_key_at: int | None = None) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([Record(key=None if i == null_key_at else b"%d" % (i % 10), value=b"", timestamp=now)
                        for i in range(n)], compression=codec)


def api_versions_answered(wire: Wire) -> bool:
    return wire.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE


@pytest.mark.parametrize("configs", [{"cleanup.policy": "compact"}, {"compression.type": "gzip"}],
                         ids=["compacted", "re-encode"])
def test_big_validation_runs_off_the_event_loop_and_keeps_partition_order(broker, bootstrap, topic_name, configs):
    """A big zstd request of tiny records waits in the validation pool (held there by the test):
    meanwhile other connections are answered (ApiVersions, Metadata, a produce to another partition),
    and a later small produce to the same partition is appended after it, not before."""
    admin = Wire(bootstrap)
    create_topic(admin, topic_name, partitions=2, configs=configs)
    replica_manager = broker.broker.replica_manager
    gated = GatedPool(replica_manager.validation_pool, broker._loop)
    replica_manager.validation_pool = gated
    big, later = Wire(bootstrap), Wire(bootstrap)
    try:
        send_produce(big, topic_name, tiny_records_batch(50_000, Codec.ZSTD))
        wait_until(lambda: gated.calls == 1, message="the big batch to reach the validation pool")
        send_produce(later, topic_name, good_batch(2, b"later"))
        wait_until(lambda: gated.calls == 1 and api_versions_answered(admin), message="ApiVersions answered")
        assert admin.call(3, 12, topics=None, allow_auto_topic_creation=False,
                          include_topic_authorized_operations=False).brokers
        other = produce(admin, topic_name, good_batch(1, b"other"), partition=1)
        assert (other.error_code, other.base_offset) == (E.NONE, 0)
        assert gated.calls == 1  # the big one is still held: everything above was served meanwhile
        gated.open()
        first = big.receive().responses[0].partition_responses[0]
        second = later.receive().responses[0].partition_responses[0]
    finally:
        replica_manager.validation_pool = gated.pool
        gated.open()
    assert (first.error_code, first.base_offset) == (E.NONE, 0), first.error_message
    assert (second.error_code, second.base_offset) == (E.NONE, 50_000), second.error_message
    assert end_offset(admin, topic_name) == 50_002
    for w in (admin, big, later):
        w.close()


def test_big_compacted_request_with_a_null_key_is_rejected_off_the_loop(bootstrap, topic_name):
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, configs={"cleanup.policy": "compact"})
    part = produce(wire, topic_name, tiny_records_batch(100_000, Codec.ZSTD, null_key_at=99_998))
    assert E(part.error_code) == E.INVALID_RECORD
    assert [e.batch_index for e in part.record_errors] == [99_998]
    assert end_offset(wire, topic_name) == 0
    wire.close()


def test_re_encode_beyond_max_message_bytes_is_refused(bootstrap, topic_name):
    """zstd of 200,000 tiny records (~1.4 MB once decompressed) into an uncompressed topic whose
    max.message.bytes is 1 MB: MESSAGE_TOO_LARGE, nothing stored; a batch that fits is re-encoded."""
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, configs={"compression.type": "uncompressed", "max.message.bytes": "1000000"})
    big = tiny_records_batch(200_000, Codec.ZSTD)
    assert len(big) < 1_000_000
    part = produce(wire, topic_name, big)
    assert E(part.error_code) == E.MESSAGE_TOO_LARGE, part.error_message
    assert end_offset(wire, topic_name) == 0
    part = produce(wire, topic_name, tiny_records_batch(10_000, Codec.ZSTD))
    assert (part.error_code, part.base_offset) == (E.NONE, 0)
    stored = fetch_records(wire, topic_name)
    assert [o for o, _, _ in stored] == list(range(10_000))
    wire.close()


def test_pipelined_produces_to_one_partition_keep_their_order(bootstrap, topic_name):
    """Big (validated in the pool) and small (inline) batches pipelined on one connection to one
    partition land in the order sent."""
    wire = Wire(bootstrap)
    create_topic(wire, topic_name, configs={"cleanup.policy": "compact"})
    sizes = [20_000, 1, 30_000, 2, 3]
    for n in sizes:
        send_produce(wire, topic_name, tiny_records_batch(n, Codec.LZ4 if n > 100 else Codec.NONE))
    offsets = [wire.receive().responses[0].partition_responses[0].base_offset for _ in sizes]
    expected = [sum(sizes[:i]) for i in range(len(sizes))]
    assert offsets == expected
    wire.close()

