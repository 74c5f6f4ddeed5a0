"""The look-alike broker of scripts/record_golden.py: a small in-process Kafka look-alike (asyncio,
127.0.0.1, ephemeral port) answering just enough of the APIs a client needs to produce one batch and
consume it in a group, saving the first raw request frame of each (API, version) it is sent, with the
JSON view of the decoded message and what each client's scenario told it to send (``configured``)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbroker_protocol.api import decode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import UnsupportedVersionError
from kbroker_protocol.messages import REQUESTS, RESPONSES
from kbroker_protocol.record_batch import iter_batch_headers, patch_base_offset

ROOT = Path(__file__).resolve().parent.parent

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
