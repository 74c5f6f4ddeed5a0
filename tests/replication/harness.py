"""Several kbroker brokers in one event loop, given the same metadata records without a controller.

Each :class:`Cluster` broker is a real :class:`kbroker.broker.Broker` (an ``EmbeddedBroker`` on an
ephemeral port, its own data directory). The harness plays the controller quorum: it commits the
same records to every running broker (``RegisterBrokerRecord`` of each with its real endpoint,
``TopicRecord``, ``PartitionRecord``, ``PartitionChangeRecord``), so each broker's image applies
them and the broker becomes leader or follower as in a cluster. :class:`FakeController` answers
AlterPartition like the controller does (partition and leader epochs checked) and applies the
accepted ISR as a ``PartitionChangeRecord`` to every broker.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.metadata import metadata_records as mr
from kbroker.replication.broker_connection import BrokerConnection
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.alter_partition import AlterPartitionResponse
from kbroker_protocol.records import Record, build_batch
from tests.integration.waiting import async_wait_until

LEADER_UNCHANGED = -2
FAST = {
    "replica.fetch.backoff.ms": "20",
    "replica.fetch.wait.max.ms": "200",
}


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, message: str = "condition",
                   details: Callable[[], Any] | None = None) -> Any:
    """Poll ``predicate`` on the loop until it holds or the deadline passes (the sleep is the
    polling interval, never synchronisation)."""
    return await async_wait_until(predicate, timeout, 0.01, message=message, details=details)


class FakeController:
    """AlterPartition as the controller answers it, over the channel contract
    ``send(api_key, request) -> response``; accepted changes go to every broker."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.requests: list[Any] = []
        self.hold: asyncio.Event | None = None  # set: answer; None: answer at once

    def channel(self, node_id: int) -> Any:
        controller = self

        class Channel:
            async def send(self, api_key: int, request: Any) -> Any:
                assert api_key == 56
                assert request.broker_id == node_id
                return await controller.alter_partition(request)

        return Channel()

    async def alter_partition(self, request: Any) -> Any:
        self.requests.append(request)
        if self.hold is not None:
            await self.hold.wait()
        image = self.cluster.reference_image()
        Resp = AlterPartitionResponse
        topics = []
        for t in request.topics:
            topic = image.topic_by_id(t.topic_id)
            parts = []
            for p in t.partitions:
                out = Resp.TopicData.PartitionData(partition_index=p.partition_index, error_code=ErrorCode.NONE)
                parts.append(out)
                state = topic.partitions.get(p.partition_index) if topic else None
                if state is None:
                    out.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                if request.broker_id != state.leader or p.leader_epoch < state.leader_epoch:
                    out.error_code = ErrorCode.FENCED_LEADER_EPOCH
                    continue
                if p.partition_epoch != state.partition_epoch:
                    out.error_code = ErrorCode.INVALID_UPDATE_VERSION
                    continue
                new_isr = [b.broker_id for b in p.new_isr_with_epochs]
                if new_isr != state.isr:
                    self.cluster.change(topic.name, p.partition_index, isr=new_isr)
                state = self.cluster.reference_image().topic_by_id(t.topic_id).partitions[p.partition_index]
                out.leader_id = state.leader
                out.leader_epoch = state.leader_epoch
                out.isr = list(state.isr)
                out.partition_epoch = state.partition_epoch
            topics.append(Resp.TopicData(topic_id=t.topic_id, partitions=parts))
        return Resp(throttle_time_ms=0, error_code=ErrorCode.NONE, topics=topics)


class Cluster:
    def __init__(self, size: int, config: dict[str, str] | None = None,
                 per_node: dict[int, dict[str, str]] | None = None, racks: dict[int, str] | None = None) -> None:
        self.size = size
        self.racks = racks or {}
        self.config = {**FAST, **(config or {})}
        self.per_node = per_node or {}
        self.nodes: dict[int, EmbeddedBroker] = {}
        self.controller = FakeController(self)
        self.data_dirs: dict[int, str] = {}
        # Every record batch given to the brokers, with the nodes that have it (a stopped broker
        # catches up on start, as a Raft observer would).
        self.history: list[tuple[list[Any], set[int]]] = []

    async def __aenter__(self) -> Cluster:
        try:
            for node in range(1, self.size + 1):
                self.data_dirs[node] = tempfile.mkdtemp(prefix=f"kbroker-repl-{node}-")
                await self._start(node)
            registrations = [self._registration(n) for n in self.nodes]
            for node, embedded in self.nodes.items():
                embedded.broker.controller.commit([r for r in registrations
                                                   if r.broker_id != node or node in self.racks])
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for embedded in self.nodes.values():
            await embedded.stop()
        self.nodes.clear()
        for d in self.data_dirs.values():
            shutil.rmtree(d, ignore_errors=True)

    async def _start(self, node: int, faults: list[dict[str, Any]] | None = None) -> None:
        cfg = {**self.config, **self.per_node.get(node, {}), "node.id": str(node)}
        embedded = EmbeddedBroker(cfg, data_dir=self.data_dirs[node], faults=faults)
        await embedded.start()
        self.nodes[node] = embedded
        embedded.broker.replica_manager.alter_partition_channel = self.controller.channel(node)

    async def stop(self, node: int) -> None:
        await self.nodes.pop(node).stop()

    async def start(self, node: int, faults: list[dict[str, Any]] | None = None) -> None:
        """Start a stopped broker on its data (with ``faults`` from its first request): it
        registers again (new port and epoch), the others learn its registration, and it catches
        up on the records given while it was down."""
        await self._start(node, faults)
        registration = self._registration(node)
        for other, embedded in self.nodes.items():
            if other != node:
                embedded.broker.controller.commit([registration])
        broker = self.broker(node)
        for records, applied in self.history:
            if node not in applied:
                broker.controller.commit(records)
                applied.add(node)

    def broker(self, node: int) -> Any:
        return self.nodes[node].broker

    def bootstrap(self, node: int) -> str:
        return self.nodes[node].bootstrap_servers

    def reference_image(self) -> Any:
        return next(iter(self.nodes.values())).broker.image

    def _registration(self, node: int) -> Any:
        broker = self.broker(node)
        reg = broker.image.brokers[node]
        return mr.RegisterBrokerRecord(
            broker_id=node, incarnation_id=reg.incarnation_id, broker_epoch=reg.epoch,
            end_points=[mr.RegisterBrokerRecord.BrokerEndpoint(name=name, host=host, port=port, security_protocol=0)
                        for name, host, port in broker.advertised_endpoints()],
            features=[], rack=self.racks.get(node), fenced=False)

    def apply(self, records: list[Any]) -> None:
        """Commit ``records`` to every running broker's metadata (as the quorum would)."""
        for embedded in self.nodes.values():
            embedded.broker.controller.commit(records)
        self.history.append((records, set(self.nodes)))

    def create_topic(self, name: str, replicas: list[list[int]], isr: list[list[int]] | None = None,
                     configs: dict[str, str] | None = None) -> uuid.UUID:
        """A topic whose partition ``i`` has ``replicas[i]`` (the first the leader)."""
        topic_id = uuid.uuid4()
        records: list[Any] = [mr.TopicRecord(name=name, topic_id=topic_id)]
        for key, value in (configs or {}).items():
            records.append(mr.ConfigRecord(resource_type=2, resource_name=name, name=key, value=value))
        for i, rs in enumerate(replicas):
            records.append(mr.PartitionRecord(
                partition_id=i, topic_id=topic_id, replicas=list(rs), isr=list((isr or replicas)[i]),
                leader=rs[0], leader_epoch=0, partition_epoch=0))
        self.apply(records)
        return topic_id

    def change(self, topic: str, partition: int, *, leader: int = LEADER_UNCHANGED, isr: list[int] | None = None,
               replicas: list[int] | None = None) -> None:
        topic_id = self.reference_image().topic(topic).topic_id
        self.apply([mr.PartitionChangeRecord(partition_id=partition, topic_id=topic_id, isr=isr, leader=leader,
                                             replicas=replicas)])

    def partition(self, node: int, topic: str, index: int = 0) -> Any:
        return self.broker(node).partition(topic, index)

    def log_bytes(self, node: int, topic: str, index: int = 0) -> bytes:
        plog = self.partition(node, topic, index).log
        return b"".join(data for _header, data in plog.iter_batches())

    async def connect(self, node: int) -> BrokerConnection:
        host, port = self.bootstrap(node).split(",")[0].rsplit(":", 1)
        conn = BrokerConnection(host, int(port), "replication-test", 100 << 20)
        await conn.open(10)
        return conn


def batch(values: list[bytes], base_timestamp: int = 1_700_000_000_000) -> bytes:
    return build_batch([Record(key=None, value=v, timestamp=base_timestamp + i) for i, v in enumerate(values)])


async def produce(conn: BrokerConnection, topic: str, records: bytes, *, acks: int = -1, partition: int = 0,
                  timeout_ms: int = 10000, version: int = 11) -> Any:
    Req = REQUESTS[0]
    request = Req(transactional_id=None, acks=acks, timeout_ms=timeout_ms, topic_data=[Req.TopicProduceData(
        name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=partition, records=records)])])
    response = await conn.request(request, version, 30)
    return response


async def fetch(conn: BrokerConnection, topic: str, offset: int = 0, *, partition: int = 0, leader_epoch: int = -1,
                version: int = 12, max_wait_ms: int = 0, isolation: int = 0, topic_id: Any = None) -> Any:
    Req = REQUESTS[1]
    request = Req(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20, isolation_level=isolation,
                  session_id=0, session_epoch=-1, topics=[Req.FetchTopic(
                      topic=topic, topic_id=topic_id or uuid.UUID(int=0), partitions=[
                      Req.FetchTopic.FetchPartition(partition=partition, current_leader_epoch=leader_epoch,
                                                    fetch_offset=offset, partition_max_bytes=1 << 20)])],
                  forgotten_topics_data=[], rack_id="")
    return await conn.request(request, version, 30)
