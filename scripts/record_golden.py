#!/usr/bin/env python3
"""Record real client requests as golden fixtures for tests/protocol/test_golden.py.

A small in-process Kafka look-alike (asyncio, 127.0.0.1, ephemeral port) answers just enough of
ApiVersions, Metadata, InitProducerId, Produce, FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
OffsetFetch, ListOffsets, Fetch, OffsetCommit and LeaveGroup for kafka-python, aiokafka and
confluent-kafka (librdkafka) to produce one compressed batch and consume it in a group. The first
raw request frame of each (API, version) a client sends is saved as

    tests/protocol/golden/<client>/<api>_v<N>.bin    (the frame, without the 4-byte size prefix)
    tests/protocol/golden/<client>/<api>_v<N>.json   (decoded header and body, plus "configured")

"configured" holds what the scenario told the client to send (client ids, topic, group, acks,
codec, record keys and values); the test checks the decoded request against it, so a fixture
whose JSON was merely copied from a wrong decode would still fail. Review the JSON after
re-recording; do not edit .bin files by hand.

    .venv/bin/python scripts/record_golden.py [--client kafka-python|aiokafka|confluent-kafka]...
    .venv/bin/python scripts/record_golden.py --java     # needs java and scripts/reference_kafka.py's jars

``--java`` writes record batches built by Apache Kafka's own kafka-clients 4.4.0
(``MemoryRecordsBuilder`` for every codec, ``withEndTransactionMarker``, ``setMaxTimestamp``) to
tests/protocol/golden/java/, and has that same library validate and read batches built by
protocol.records.build_batch for every codec, failing if Java disagrees with us.

This is a recorder, not a broker: one node, one partition per topic, an in-memory list of batches,
no validation beyond decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbroker_protocol.api import decode_request, encode_response  # noqa: E402
from kbroker_protocol.errors import ErrorCode  # noqa: E402
from kbroker_protocol.exceptions import UnsupportedVersionError  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RESPONSES  # noqa: E402
from kbroker_protocol.record_batch import iter_batch_headers, patch_base_offset  # noqa: E402

GOLDEN = ROOT / "tests" / "protocol" / "golden"
NODE_ID = 0
CLUSTER_ID = "golden-cluster-0000000"
TOPIC_ID = uuid.UUID("8a3c5b9e-1d2f-4c6a-9b7e-0f1e2d3c4b5a")
PRODUCER_ID = 4242
# Handled APIs; advertised with the codec's ranges, Produce from v0 as Kafka 4 does.
HANDLED = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 22}

SCENARIOS: dict[str, dict[str, Any]] = {
    "kafka-python": {"codec": "gzip", "codec_id": 1, "acks": -1},
    "aiokafka": {"codec": "lz4", "codec_id": 3, "acks": 1},
    "confluent-kafka": {"codec": "snappy", "codec_id": 2, "acks": -1},
}


def configured(client: str) -> dict[str, Any]:
    s = SCENARIOS[client]
    return {
        "client": client,
        "topic": f"golden-{client}",
        "group_id": f"golden-{client}-group",
        "producer_client_id": f"golden-{client}-producer",
        "consumer_client_id": f"golden-{client}-consumer",
        "acks": s["acks"],
        "codec": s["codec"],
        "codec_id": s["codec_id"],
        "records": [
            {"key": f"key-{i}", "value": f"golden {client} record {i}", "headers": [["h", f"v{i}"]]}
            for i in range(3)
        ],
    }


# --- JSON view of decoded messages ----------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A JSON-ready view of a decoded message; used by the recorder and by the golden test."""
    if hasattr(value, "_FIELDS"):
        out = {name: to_jsonable(getattr(value, name)) for name in value._FIELDS}
        unknown = getattr(value, "unknown_tagged_fields", None)
        if unknown:
            out["unknown_tagged_fields"] = [[tag, bytes(data).hex()] for tag, data in unknown]
        return out
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"hex": bytes(value).hex()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def api_name(api_key: int) -> str:
    return REQUESTS[api_key].__module__.rsplit(".", 1)[-1]


# --- the look-alike broker ------------------------------------------------------------------------


class Recorder:
    def __init__(self, client: str, out_dir: Path) -> None:
        self.client = client
        self.out_dir = out_dir
        self.port = 0
        self.saved: dict[tuple[int, int], Path] = {}
        self.log: list[bytes] = []  # stored batches of the topic, offsets assigned
        self.next_offset = 0
        self.committed: dict[tuple[str, int], int] = {}
        self.members: list[str] = []
        self.assignment: dict[str, bytes] = {}
        self.protocol_name = ""
        self.generation = 0
        self.handlers: dict[int, Callable[[Any, Any, int], Any]] = {
            0: self.produce,
            1: self.fetch,
            2: self.list_offsets,
            3: self.metadata,
            8: self.offset_commit,
            9: self.offset_fetch,
            10: self.find_coordinator,
            11: self.join_group,
            12: self.heartbeat,
            13: self.leave_group,
            14: self.sync_group,
            18: self.api_versions,
            22: self.init_producer_id,
        }

    # server plumbing

    async def serve(self, ready: threading.Event, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await stop.wait()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                parts = self.handle(frame)
                if parts is not None:
                    writer.write(struct.pack(">i", sum(len(p) for p in parts)))
                    writer.writelines(parts)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def handle(self, frame: bytes) -> list[Any] | None:
        api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame)
        try:
            header, body = decode_request(frame)
        except UnsupportedVersionError:
            if api_key != 18:
                raise
            resp = RESPONSES[18](error_code=ErrorCode.UNSUPPORTED_VERSION, api_keys=[self.version_entry(18)])
            return encode_response(correlation_id, 18, 0, resp)
        self.save(frame, header, body)
        handler = self.handlers.get(api_key)
        if handler is None:
            raise RuntimeError(f"{self.client} sent unhandled api {api_key} v{api_version}")
        resp = handler(header, body, api_version)
        if api_key == 0 and body.acks == 0:
            return None
        return encode_response(correlation_id, api_key, api_version, resp)

    def save(self, frame: bytes, header: Any, body: Any) -> None:
        key = (header.request_api_key, header.request_api_version)
        if key in self.saved:
            return
        stem = f"{api_name(key[0])}_v{key[1]}"
        path = self.out_dir / f"{stem}.bin"
        path.write_bytes(frame)
        doc = {
            "api_key": key[0],
            "api_version": key[1],
            "header": to_jsonable(header),
            "body": to_jsonable(body),
            "configured": configured(self.client),
        }
        (self.out_dir / f"{stem}.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        self.saved[key] = path

    def version_entry(self, api_key: int) -> Any:
        cls = RESPONSES[18].ApiVersion
        req = REQUESTS[api_key]
        low = 0 if api_key == 0 else req.MIN_VERSION
        return cls(api_key=api_key, min_version=low, max_version=req.MAX_VERSION)

    # handlers

    def api_versions(self, header: Any, body: Any, version: int) -> Any:
        return RESPONSES[18](api_keys=[self.version_entry(k) for k in sorted(HANDLED)])

    def topic_name(self) -> str:
        return f"golden-{self.client}"

    def metadata(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[3]
        names = (
            [self.topic_name()] if body.topics is None else [t.name or self.topic_name() for t in body.topics]
        )
        topics = [
            cls.MetadataResponseTopic(
                name=name,
                topic_id=TOPIC_ID,
                partitions=[
                    cls.MetadataResponseTopic.MetadataResponsePartition(
                        partition_index=0,
                        leader_id=NODE_ID,
                        leader_epoch=0,
                        replica_nodes=[NODE_ID],
                        isr_nodes=[NODE_ID],
                    )
                ],
            )
            for name in names
        ]
        return cls(
            brokers=[cls.MetadataResponseBroker(node_id=NODE_ID, host="127.0.0.1", port=self.port)],
            cluster_id=CLUSTER_ID,
            controller_id=NODE_ID,
            topics=topics,
        )

    def init_producer_id(self, header: Any, body: Any, version: int) -> Any:
        return RESPONSES[22](producer_id=PRODUCER_ID, producer_epoch=0)

    def produce(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[0]
        topics = []
        for t in body.topic_data:
            parts = []
            for p in t.partition_data:
                base = self.next_offset
                buf = bytearray(p.records)
                for pos, h in iter_batch_headers(buf):
                    patch_base_offset(buf, self.next_offset, pos)
                    self.next_offset += h.last_offset_delta + 1
                self.log.append(bytes(buf))
                parts.append(
                    cls.TopicProduceResponse.PartitionProduceResponse(index=p.index, base_offset=base)
                )
            topics.append(
                cls.TopicProduceResponse(name=t.name, topic_id=t.topic_id, partition_responses=parts)
            )
        return cls(responses=topics)

    def fetch(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[1]
        topics = []
        for t in body.topics:
            parts = []
            for p in t.partitions:
                data = b"".join(b for b in self.log if self._batch_end(b) > p.fetch_offset)
                parts.append(
                    cls.FetchableTopicResponse.PartitionData(
                        partition_index=p.partition,
                        high_watermark=self.next_offset,
                        last_stable_offset=self.next_offset,
                        log_start_offset=0,
                        records=data,
                    )
                )
            topics.append(cls.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=parts))
        return cls(responses=topics)

    @staticmethod
    def _batch_end(batch: bytes) -> int:
        (base,) = struct.unpack_from(">q", batch)
        (last_delta,) = struct.unpack_from(">i", batch, 23)
        return base + last_delta + 1

    def list_offsets(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[2]
        topics = []
        for t in body.topics:
            parts = []
            for p in t.partitions:
                offset = 0 if p.timestamp == -2 else self.next_offset
                parts.append(
                    cls.ListOffsetsTopicResponse.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, offset=offset, timestamp=-1, leader_epoch=0
                    )
                )
            topics.append(cls.ListOffsetsTopicResponse(name=t.name, partitions=parts))
        return cls(topics=topics)

    def find_coordinator(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[10]
        if version >= 4:
            return cls(
                coordinators=[
                    cls.Coordinator(key=k, node_id=NODE_ID, host="127.0.0.1", port=self.port)
                    for k in body.coordinator_keys
                ]
            )
        return cls(node_id=NODE_ID, host="127.0.0.1", port=self.port, error_message=None)

    def join_group(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[11]
        if not body.member_id and version >= 4:
            member = f"{header.client_id}-{uuid.UUID(int=len(self.members) + 1)}"
            self.members.append(member)
            return cls(error_code=ErrorCode.MEMBER_ID_REQUIRED, member_id=member)
        member = body.member_id or f"{header.client_id}-{uuid.UUID(int=len(self.members) + 1)}"
        if member not in self.members:
            self.members.append(member)
        self.generation += 1
        proto = body.protocols[0]
        self.protocol_name = proto.name
        return cls(
            generation_id=self.generation,
            protocol_type=body.protocol_type,
            protocol_name=proto.name,
            leader=member,
            member_id=member,
            members=[cls.JoinGroupResponseMember(member_id=member, metadata=bytes(proto.metadata))],
        )

    def sync_group(self, header: Any, body: Any, version: int) -> Any:
        for a in body.assignments:
            self.assignment[a.member_id] = bytes(a.assignment)
        return RESPONSES[14](
            protocol_type="consumer",
            protocol_name=self.protocol_name,
            assignment=self.assignment.get(body.member_id, b""),
        )

    def heartbeat(self, header: Any, body: Any, version: int) -> Any:
        return RESPONSES[12]()

    def leave_group(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[13]
        members = [
            cls.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id)
            for m in body.members
        ]
        return cls(members=members)

    def offset_commit(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[8]
        topics = []
        for t in body.topics:
            parts = []
            for p in t.partitions:
                self.committed[(t.name, p.partition_index)] = p.committed_offset
                parts.append(
                    cls.OffsetCommitResponseTopic.OffsetCommitResponsePartition(
                        partition_index=p.partition_index
                    )
                )
            topics.append(cls.OffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=parts))
        return cls(topics=topics)

    def offset_fetch(self, header: Any, body: Any, version: int) -> Any:
        cls = RESPONSES[9]
        if version >= 8:
            groups = []
            for g in body.groups:
                topics = []
                for t in g.topics or []:
                    P = cls.OffsetFetchResponseGroup.OffsetFetchResponseTopics.OffsetFetchResponsePartitions
                    parts = [
                        P(
                            partition_index=i,
                            committed_offset=self.committed.get((t.name, i), -1),
                            metadata="",
                        )
                        for i in t.partition_indexes
                    ]
                    topics.append(
                        cls.OffsetFetchResponseGroup.OffsetFetchResponseTopics(
                            name=t.name, topic_id=t.topic_id, partitions=parts
                        )
                    )
                groups.append(cls.OffsetFetchResponseGroup(group_id=g.group_id, topics=topics))
            return cls(groups=groups)
        topics = []
        for t in body.topics or []:
            P = cls.OffsetFetchResponseTopic.OffsetFetchResponsePartition
            parts = [
                P(partition_index=i, committed_offset=self.committed.get((t.name, i), -1), metadata="")
                for i in t.partition_indexes
            ]
            topics.append(cls.OffsetFetchResponseTopic(name=t.name, partitions=parts))
        return cls(topics=topics)


# --- client scenarios -----------------------------------------------------------------------------


def run_kafka_python(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=cfg["producer_client_id"],
        acks="all",
        compression_type=cfg["codec"],
        linger_ms=500,
    )
    for r in cfg["records"]:
        producer.send(
            cfg["topic"],
            key=r["key"].encode(),
            value=r["value"].encode(),
            headers=[(k, v.encode()) for k, v in r["headers"]],
        )
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=cfg["consumer_client_id"],
        group_id=cfg["group_id"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    consumer.subscribe([cfg["topic"]])
    got: list[tuple[bytes, bytes]] = []
    for _ in range(100):
        for records in consumer.poll(timeout_ms=200).values():
            got.extend((r.key, r.value) for r in records)
        if len(got) >= len(cfg["records"]):
            break
    consumer.commit()
    consumer.close()
    return got


async def _run_aiokafka(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=cfg["producer_client_id"],
        acks=1,
        compression_type=cfg["codec"],
        linger_ms=500,
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        for r in cfg["records"]:
            batch.append(
                key=r["key"].encode(),
                value=r["value"].encode(),
                timestamp=None,
                headers=[(k, v.encode()) for k, v in r["headers"]],
            )
        fut = await producer.send_batch(batch, cfg["topic"], partition=0)
        await fut
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        cfg["topic"],
        bootstrap_servers=bootstrap,
        client_id=cfg["consumer_client_id"],
        group_id=cfg["group_id"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend((r.key, r.value) for r in records)
            if len(got) >= len(cfg["records"]):
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def run_aiokafka(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return asyncio.run(_run_aiokafka(bootstrap, cfg))


def run_confluent(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from confluent_kafka import Consumer, Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": cfg["producer_client_id"],
            "acks": "all",
            "compression.type": cfg["codec"],
            "linger.ms": 500,
        }
    )
    for r in cfg["records"]:
        producer.produce(
            cfg["topic"],
            key=r["key"].encode(),
            value=r["value"].encode(),
            headers=[(k, v.encode()) for k, v in r["headers"]],
            partition=0,
        )
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": cfg["consumer_client_id"],
            "group.id": cfg["group_id"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([cfg["topic"]])
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(200):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            got.append((msg.key(), msg.value()))
            if len(got) >= len(cfg["records"]):
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


RUNNERS = {"kafka-python": run_kafka_python, "aiokafka": run_aiokafka, "confluent-kafka": run_confluent}


def record(client: str) -> list[Path]:
    out_dir = GOLDEN / client
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()
    rec = Recorder(client, out_dir)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(rec.serve(ready, stop)), daemon=True)
    thread.start()
    ready.wait(10)
    cfg = configured(client)
    try:
        got = RUNNERS[client](f"127.0.0.1:{rec.port}", cfg)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    want = [(r["key"].encode(), r["value"].encode()) for r in cfg["records"]]
    if got != want:
        raise SystemExit(f"{client}: consumed {got!r}, expected {want!r}")
    return sorted(rec.saved.values())


# --- record batches from Apache Kafka's own client library ----------------------------------------

JAVA_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
JAVA_CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
JAVA_BATCH = {
    "base_offset": 100,
    "producer_id": 4242,
    "producer_epoch": 3,
    "base_sequence": 7,
    "partition_leader_epoch": 5,
}


def java_records() -> list[dict[str, Any]]:
    """Five records: a null key, a null value (tombstone), headers, a timestamp going backwards."""
    out = []
    for i in range(5):
        out.append(
            {
                "key": None if i == 3 else f"key-{i}",
                "value": None if i == 4 else f"java golden record {i} " * (i + 1),
                "headers": [["h", f"v{i}"], ["null-header", None]] if i % 2 else [],
                "timestamp": JAVA_T0 - 5 if i == 2 else JAVA_T0 + 10 * i,
            }
        )
    return out


JAVA_SOURCE = r"""
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.*;

public class GoldenBatches {
    static byte[] bytes(String s) { return s == null ? null : s.getBytes(StandardCharsets.UTF_8); }
    static String str(ByteBuffer b) {
        if (b == null) return "null";
        byte[] a = new byte[b.remaining()]; b.get(a);
        return "\"" + Base64.getEncoder().encodeToString(a) + "\"";
    }
    static void write(Path dir, String name, MemoryRecords records) throws Exception {
        ByteBuffer b = records.buffer().duplicate();
        byte[] a = new byte[b.remaining()]; b.get(a);
        Files.write(dir.resolve(name), a);
    }
    // args: outDir, oursDir, then lines on stdin: timestamp \t key|-NULL- \t value|-NULL- \t h1=v1;h2=-NULL-
    public static void main(String[] args) throws Exception {
        Path out = Paths.get(args[0]);
        Path ours = Paths.get(args[1]);
        List<String[]> recs = new ArrayList<>();
        Scanner in = new Scanner(System.in, "UTF-8");
        while (in.hasNextLine()) { String l = in.nextLine(); if (!l.isEmpty()) recs.add(l.split("\t", -1)); }
        String[] codecs = {"none", "gzip", "snappy", "lz4", "zstd"};
        for (String codec : codecs) {
            ByteBuffer buf = ByteBuffer.allocate(1 << 16);
            MemoryRecordsBuilder b = MemoryRecords.builder(buf, RecordBatch.CURRENT_MAGIC_VALUE,
                Compression.of(codec).build(), TimestampType.CREATE_TIME, 100L, RecordBatch.NO_TIMESTAMP,
                4242L, (short) 3, 7, false, 5);
            for (String[] r : recs) {
                List<Header> hs = new ArrayList<>();
                if (!r[3].isEmpty()) for (String kv : r[3].split(";")) {
                    String[] p = kv.split("=", 2);
                    hs.add(new RecordHeader(p[0], p[1].equals("-NULL-") ? null : bytes(p[1])));
                }
                b.append(Long.parseLong(r[0]), r[1].equals("-NULL-") ? null : bytes(r[1]),
                    r[2].equals("-NULL-") ? null : bytes(r[2]), hs.toArray(new Header[0]));
            }
            MemoryRecords mr = b.build();
            write(out, "batch_" + codec + ".bin", mr);
            if (codec.equals("none")) {
                MutableRecordBatch batch = mr.batches().iterator().next();
                batch.setMaxTimestamp(TimestampType.LOG_APPEND_TIME, 1767225601000L);
                write(out, "batch_none_log_append_time.bin", mr);
            }
        }
        write(out, "control_commit.bin", MemoryRecords.withEndTransactionMarker(200L, 1767225600000L, 5, 4242L,
            (short) 3, new EndTransactionMarker(ControlRecordType.COMMIT, 17)));
        write(out, "control_abort.bin", MemoryRecords.withEndTransactionMarker(201L, 1767225600000L, 5, 4242L,
            (short) 3, new EndTransactionMarker(ControlRecordType.ABORT, 17)));
        // Read what protocol.records built: validate CRCs and print every record as JSON lines.
        try (DirectoryStream<Path> files = Files.newDirectoryStream(ours, "*.bin")) {
            List<Path> sorted = new ArrayList<>(); files.forEach(sorted::add); Collections.sort(sorted);
            for (Path f : sorted) {
                MemoryRecords mr = MemoryRecords.readableRecords(ByteBuffer.wrap(Files.readAllBytes(f)));
                for (MutableRecordBatch batch : mr.batches()) {
                    batch.ensureValid();
                    for (org.apache.kafka.common.record.internal.Record r : batch) {
                        StringBuilder h = new StringBuilder("[");
                        for (Header x : r.headers()) {
                            if (h.length() > 1) h.append(",");
                            h.append("[\"").append(x.key()).append("\",")
                             .append(x.value() == null ? "null" : "\"" + Base64.getEncoder().encodeToString(x.value()) + "\"").append("]");
                        }
                        h.append("]");
                        System.out.println("{\"file\":\"" + f.getFileName() + "\",\"codec\":\"" + batch.compressionType().name
                            + "\",\"offset\":" + r.offset() + ",\"timestamp\":" + r.timestamp() + ",\"key\":" + str(r.key())
                            + ",\"value\":" + str(r.value()) + ",\"headers\":" + h + "}");
                    }
                }
            }
        }
    }
}
"""


def record_java() -> list[Path]:
    import base64
    import os
    import subprocess
    import tempfile

    from kbroker_protocol.records import Record, build_batch

    libs = ROOT / ".cache" / f"kafka-{os.environ.get('REFERENCE_KAFKA_VERSION', '4.4.0')}" / "libs"
    if not libs.is_dir():
        raise SystemExit(f"no {libs}: run scripts/reference_kafka.py once to fetch Kafka's jars")
    out_dir = GOLDEN / "java"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()
    recs = java_records()
    ours = [
        Record(
            key=None if r["key"] is None else r["key"].encode(),
            value=None if r["value"] is None else r["value"].encode(),
            headers=tuple((k, None if v is None else v.encode()) for k, v in r["headers"]),
            timestamp=r["timestamp"],
        )
        for r in recs
    ]
    lines = "".join(
        "\t".join(
            [
                str(r["timestamp"]),
                "-NULL-" if r["key"] is None else r["key"],
                "-NULL-" if r["value"] is None else r["value"],
                ";".join(f"{k}={'-NULL-' if v is None else v}" for k, v in r["headers"]),
            ]
        )
        + "\n"
        for r in recs
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "GoldenBatches.java"
        src.write_text(JAVA_SOURCE)
        ours_dir = Path(tmp) / "ours"
        ours_dir.mkdir()
        for name, codec in JAVA_CODECS.items():
            (ours_dir / f"ours_{name}.bin").write_bytes(build_batch(ours, compression=codec, **JAVA_BATCH))
            if codec == 2:
                (ours_dir / "ours_snappy_raw.bin").write_bytes(
                    build_batch(ours, compression=codec, snappy_xerial=False, **JAVA_BATCH)
                )
        classpath = os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))
        proc = subprocess.run(
            ["java", "-cp", classpath, str(src), str(out_dir), str(ours_dir)],
            input=lines,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"java failed:\n{proc.stderr}")
    read_back = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def b64(s: str | None) -> str | None:
        return None if s is None else base64.b64decode(s).decode()

    verified = {}
    for f in sorted({r["file"] for r in read_back}):
        got = [r for r in read_back if r["file"] == f]
        as_ours = [
            {
                "key": b64(r["key"]),
                "value": b64(r["value"]),
                "headers": [[k, b64(v)] for k, v in r["headers"]],
                "timestamp": r["timestamp"],
            }
            for r in got
        ]
        if as_ours != recs or [r["offset"] for r in got] != list(range(100, 105)):
            raise SystemExit(f"Kafka's client read {f} differently:\n{got}")
        verified[f] = got[0]["codec"]
    if len(verified) != len(JAVA_CODECS) + 1:
        raise SystemExit(f"Kafka's client read only {sorted(verified)}")
    doc = {
        "kafka_clients": "4.4.0",
        "batch": JAVA_BATCH,
        "records": recs,
        "log_append_time": JAVA_T0 + 1000,
        "control": {
            "base_offset": {"commit": 200, "abort": 201},
            "timestamp": JAVA_T0,
            "coordinator_epoch": 17,
        },
        "verified_by_kafka_clients": verified,
    }
    (out_dir / "batches.json").write_text(json.dumps(doc, indent=1) + "\n")
    return sorted(out_dir.glob("*"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", action="append", choices=sorted(RUNNERS))
    parser.add_argument("--java", action="store_true", help="record Kafka-built record batches only")
    args = parser.parse_args()
    if args.java:
        for p in record_java():
            print(f"  {p.relative_to(ROOT)}")
        return
    for client in args.client or sorted(RUNNERS):
        paths = record(client)
        print(f"{client}: {len(paths)} fixtures")
        for p in paths:
            print(f"  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
