"""Shared helpers of the transaction and idempotence tests (no tests here).

``ensure_find_coordinator`` gives the broker a FindCoordinator answering "this broker" for every
key when no FindCoordinator handler is installed (the group coordinator owns that API); with one
node that is the right answer for transactional ids.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

from wire import Wire

from kbroker.api import load_handlers
from kbroker.api.registry import HANDLERS, ApiHandler
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.find_coordinator import FindCoordinatorResponse


def _find_coordinator(ctx, request):
    host, port = ctx.broker.listener_endpoint(ctx.connection.endpoint.listener)
    node = ctx.broker.node_id
    if ctx.api_version < 4:
        return FindCoordinatorResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None,
                                       node_id=node, host=host, port=port)
    return FindCoordinatorResponse(throttle_time_ms=0, coordinators=[
        FindCoordinatorResponse.Coordinator(key=k, node_id=node, host=host, port=port, error_code=ErrorCode.NONE,
                                            error_message=None)
        for k in request.coordinator_keys
    ])


def ensure_find_coordinator() -> None:
    load_handlers()
    if 10 not in HANDLERS:
        HANDLERS[10] = ApiHandler(10, 0, 6, _find_coordinator, __name__)


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class RawClient(Wire):
    """The shared wire client, called with the response class as these tests do."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, timeout=10)

    def receive(self, response_cls=None, version: int | None = None):  # type: ignore[override]
        return super().receive()

    def call(self, request, response_cls, version: int):  # type: ignore[override]
        self.send(request, version)
        return super().receive()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def produce(client: RawClient, topic: str, partition: int, records: bytes, transactional_id: str | None = None,
            version: int = 9):
    """One Produce request for one partition (acks=-1); returns the partition response."""
    from kbroker_protocol.messages.produce import ProduceRequest, ProduceResponse

    request = ProduceRequest(transactional_id=transactional_id, acks=-1, timeout_ms=10000, topic_data=[
        ProduceRequest.TopicProduceData(name=topic, partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)])])
    response = client.call(request, ProduceResponse, version)
    return response.responses[0].partition_responses[0]


def init_producer_id(client: RawClient, transactional_id: str | None = None, timeout_ms: int = 60000,
                     producer_id: int = -1, producer_epoch: int = -1, version: int = 4):
    from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse

    return client.call(InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=timeout_ms,
                                             producer_id=producer_id, producer_epoch=producer_epoch),
                       InitProducerIdResponse, version)


def list_offset(client: RawClient, topic: str, partition: int = 0, isolation: int = 0) -> int:
    """The latest offset: the high watermark, or with ``isolation=1`` the last stable offset."""
    from kbroker_protocol.messages.list_offsets import ListOffsetsRequest, ListOffsetsResponse

    request = ListOffsetsRequest(replica_id=-1, isolation_level=isolation, topics=[
        ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
            ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(partition_index=partition, timestamp=-1)])])
    response = client.call(request, ListOffsetsResponse, 5)
    p = response.topics[0].partitions[0]
    assert p.error_code == 0, p
    return p.offset


def data_batch(pid: int, epoch: int, seq: int, values: list[bytes], transactional: bool = False) -> bytes:
    from kbroker_protocol.records import Record, build_batch

    now = int(time.time() * 1000)
    return build_batch([Record(value=v, timestamp=now) for v in values], producer_id=pid, producer_epoch=epoch,
                       base_sequence=seq, transactional=transactional)


class DroppingProxy:
    """A TCP proxy in front of the broker that cuts the connection instead of delivering the first
    ``drops`` Produce responses: the request was handled, the client never hears of it and retries."""

    def __init__(self, target_port: int, listen_port: int, drops: int = 1) -> None:
        import threading

        self.target_port = target_port
        self.drops = drops
        self.dropped = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            produce_ids: set[int] = set()
            threading.Thread(target=self._pump, args=(client, upstream, produce_ids, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, produce_ids, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, produce_ids: set[int], requests: bool) -> None:
        buf = b""
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                    size = struct.unpack_from(">i", buf)[0]
                    frame, buf = buf[: 4 + size], buf[4 + size:]
                    if requests:
                        api_key, _version, correlation = struct.unpack_from(">hhi", frame, 4)
                        if api_key == 0:
                            produce_ids.add(correlation)
                    else:
                        (correlation,) = struct.unpack_from(">i", frame, 4)
                        if correlation in produce_ids:
                            with self.lock:
                                drop = self.dropped < self.drops
                                if drop:
                                    self.dropped += 1
                            if drop:
                                raise ConnectionAbortedError("dropping a produce response")
                    dst.sendall(frame)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.closed = True
        self.server.close()
