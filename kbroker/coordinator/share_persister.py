"""The share partition leader's persister (Kafka's ``DefaultStatePersister``): reads, initializes
and writes a share partition's state through the share coordinator of its key.

The share coordinator of a share partition (group id, topic id, partition) is the leader of
partition ``abs(javaHashCode("group:topicId:partition")) % partitions`` of ``__share_group_state``
(what FindCoordinator key type 2 answers). When that leader is this broker, or on a single node,
the share partition uses the local :class:`~kbroker.coordinator.share_state.ShareStateStore`
directly (the synchronous path of :mod:`~kbroker.coordinator.share_manager`); otherwise this
module sends ReadShareGroupState (84), InitializeShareGroupState (83) and WriteShareGroupState
(85, v1) to that broker over the inter-broker listener, as Kafka's ``PersisterStateManager`` does.

Errors as Kafka's persister and ``SharePartition.fetchPersisterError`` treat them:
NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS and an unreachable broker
are retried (the coordinator looked up again each time) with backoff, up to
``MAX_ATTEMPTS``; what is left is mapped for the share partition: those three become
COORDINATOR_NOT_AVAILABLE, FENCED_LEADER_EPOCH NOT_LEADER_OR_FOLLOWER, FENCED_STATE_EPOCH,
GROUP_ID_NOT_FOUND and UNKNOWN_TOPIC_OR_PARTITION stay, anything else UNKNOWN_SERVER_ERROR.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.coordinator.hosts import CoordinatorHost
from kbroker.coordinator.share_partition import StateBatch
from kbroker.coordinator.share_state import STATE_TOPIC, ShareState, ShareStateStore
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.replica_fetcher import InternodeSecurity
    from kbroker_protocol.primitives import Message


log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # Kafka's persister: maxRPCRetryAttempts
BACKOFF_INITIAL_MS, BACKOFF_MAX_MS = 100, 1000
REQUEST_TIMEOUT_S = 30.0  # PersisterStateManager: its SendThread's fixed request timeout (30 s)

INITIALIZE, READ, WRITE = 83, 84, 85
RETRIABLE = frozenset({ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                       ErrorCode.COORDINATOR_LOAD_IN_PROGRESS})
READ_UNINITIALIZED = "Read operation on uninitialized share partition not allowed."


class PersisterHost(CoordinatorHost, Protocol):
    """What the persister uses of its broker: the share state topic's coordinator
    (:class:`~kbroker.coordinator.hosts.CoordinatorHost`) and the inter-broker listener's security
    (its requests to the share coordinator on another broker)."""

    @property
    def internode_security(self) -> InternodeSecurity: ...


class PersisterError(Exception):
    """A persister call that failed for good; ``code`` is the error for the share partition."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code


def share_partition_error(code: ErrorCode) -> ErrorCode:
    """Kafka's ``SharePartition.fetchPersisterError``: the error a share partition reports for a
    persister error."""
    if code in RETRIABLE:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if code == ErrorCode.FENCED_LEADER_EPOCH:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if code in (ErrorCode.FENCED_STATE_EPOCH, ErrorCode.GROUP_ID_NOT_FOUND, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
        return code
    return ErrorCode.UNKNOWN_SERVER_ERROR


class _Retry(Exception):
    def __init__(self, code: ErrorCode, why: str) -> None:
        super().__init__(why)
        self.code = code


class SharePersister:
    def __init__(self, broker: PersisterHost, store: ShareStateStore) -> None:
        self.broker = broker
        self.store = store

    # -- where the state lives ------------------------------------------------------------------------

    def coordinator_node(self, group_id: str, topic_id: uuid.UUID, partition: int) -> int | None:
        """The node id leading the state partition of this key (None: no leader known yet)."""
        image: MetadataImage = self.broker.image
        if image.topic(STATE_TOPIC) is None:
            return None
        state = image.partition(STATE_TOPIC, self.store.partition_for(group_id, topic_id, partition))
        if state is None or state.leader < 0:
            return None
        return state.leader

    def is_local(self, group_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        """True when this broker's own store is the share coordinator of the key: one broker in the
        cluster (the store creates the topic on first use), or this broker leads the state
        partition."""
        if len(self.broker.image.brokers) < 2:
            return True
        node_id: int = self.broker.node_id
        return self.coordinator_node(group_id, topic_id, partition) == node_id

    # -- the RPCs ---------------------------------------------------------------------------------------

    async def read(self, group_id: str, topic_id: uuid.UUID, partition: int, leader_epoch: int
                   ) -> ShareState | None:
        """ReadShareGroupState; None for a share partition never initialized."""
        from kbroker_protocol.messages.read_share_group_state import ReadShareGroupStateRequest as Req

        request = Req(group_id=group_id, topics=[Req.ReadStateData(topic_id=topic_id, partitions=[
            Req.ReadStateData.PartitionData(partition=partition, leader_epoch=leader_epoch)])])
        result = await self._call(group_id, topic_id, partition, READ, 0, request)
        code = ErrorCode(result.error_code)
        if code == ErrorCode.INVALID_REQUEST and result.error_message == READ_UNINITIALIZED:
            return None
        if code != ErrorCode.NONE:
            raise PersisterError(code, result.error_message)
        return ShareState(state_epoch=result.state_epoch, leader_epoch=leader_epoch,
                          start_offset=result.start_offset,
                          batches=[StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
                                   for b in result.state_batches])

    async def initialize(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int,
                         start_offset: int) -> None:
        from kbroker_protocol.messages.initialize_share_group_state import (
            InitializeShareGroupStateRequest as Req,
        )

        request = Req(group_id=group_id, topics=[Req.InitializeStateData(topic_id=topic_id, partitions=[
            Req.InitializeStateData.PartitionData(partition=partition, state_epoch=state_epoch,
                                                  start_offset=start_offset)])])
        result = await self._call(group_id, topic_id, partition, INITIALIZE, 0, request)
        if result.error_code != ErrorCode.NONE:
            raise PersisterError(ErrorCode(result.error_code), result.error_message)

    async def write(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int, leader_epoch: int,
                    start_offset: int, batches: list[StateBatch], delivery_complete_count: int) -> None:
        from kbroker_protocol.messages.write_share_group_state import WriteShareGroupStateRequest as Req

        P = Req.WriteStateData.PartitionData
        request = Req(group_id=group_id, topics=[Req.WriteStateData(topic_id=topic_id, partitions=[P(
            partition=partition, state_epoch=state_epoch, leader_epoch=leader_epoch, start_offset=start_offset,
            delivery_complete_count=delivery_complete_count,
            state_batches=[P.StateBatch(first_offset=b.first_offset, last_offset=b.last_offset,
                                        delivery_state=b.state, delivery_count=b.delivery_count)
                           for b in batches])])])
        result = await self._call(group_id, topic_id, partition, WRITE, 1, request)
        if result.error_code != ErrorCode.NONE:
            raise PersisterError(ErrorCode(result.error_code), result.error_message)

    async def _call(self, group_id: str, topic_id: uuid.UUID, partition: int, api_key: int, version: int,
                    request: Message) -> Any:
        """Send ``request`` to the share coordinator of the key and return the key's partition
        result, retrying Kafka's retriable errors; PersisterError once the attempts are spent."""
        backoff = BACKOFF_INITIAL_MS
        last = ErrorCode.COORDINATOR_NOT_AVAILABLE
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._attempt(group_id, topic_id, partition, api_key, version, request)
            except _Retry as r:
                last = r.code
                log.info("share state API %d for %s:%s:%d, attempt %d: %s", api_key, group_id, topic_id, partition,
                         attempt, r)
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(backoff / 1000)
                backoff = min(backoff * 2, BACKOFF_MAX_MS)
        raise PersisterError(last, f"share coordinator not reachable after {MAX_ATTEMPTS} attempts")

    async def _attempt(self, group_id: str, topic_id: uuid.UUID, partition: int, api_key: int, version: int,
                       request: Message) -> Any:
        from kbroker.replication.broker_connection import BrokerConnection, setup_timeout_s

        if self.broker.image.topic(STATE_TOPIC) is None:
            self.store.ensure_topic()  # created through the controller, as a coordinator's first use does
            raise _Retry(ErrorCode.COORDINATOR_NOT_AVAILABLE, f"{STATE_TOPIC} does not exist yet")
        node = self.coordinator_node(group_id, topic_id, partition)
        reg = self.broker.image.brokers.get(node) if node is not None else None
        listener = self.broker.config.inter_broker_listener
        if reg is None or reg.fenced or listener not in reg.endpoints:
            raise _Retry(ErrorCode.COORDINATOR_NOT_AVAILABLE, f"no share coordinator (leader {node})")
        host, port, _protocol = reg.endpoints[listener]
        conn = BrokerConnection(host, port, f"broker-{self.broker.node_id}-share-persister", 1 << 24,
                                self.broker.internode_security.inter_broker, node,
                                receive_buffer=self.broker.config["socket.receive.buffer.bytes"])
        try:
            await conn.open(setup_timeout_s(self.broker.config))  # its NetworkClient's connection setup timeout
            response = await conn.request(request, version, REQUEST_TIMEOUT_S)
        except Exception as exc:  # refused, reset, timed out: Kafka's persister retries a network error
            raise _Retry(ErrorCode.COORDINATOR_NOT_AVAILABLE, f"broker {node}: {exc}") from None
        finally:
            conn.close()
        for t in response.results:
            if t.topic_id != topic_id:
                continue
            for p in t.partitions:
                if p.partition == partition:
                    code = ErrorCode(p.error_code)
                    if code in RETRIABLE:
                        raise _Retry(code, f"broker {node}: {code.name}")
                    return p
        raise PersisterError(ErrorCode.UNKNOWN_SERVER_ERROR, f"broker {node} answered without {topic_id}-{partition}")
