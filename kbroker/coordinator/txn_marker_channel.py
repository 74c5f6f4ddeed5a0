"""The transaction coordinator's marker channel (``txn_markers``), as Kafka 4.4's
TransactionMarkerChannelManager and TransactionMarkerRequestCompletionHandler: the markers of the
prepared transactions wait in one queue per destination broker (the partition's leader), and
each destination has its own sender, so a slow or unreachable leader holds up only the markers
it leads. A sender has at most one request in flight; the markers queued meanwhile, of however
many transactions, go together in its next WriteTxnMarkers. The partitions led here are written
by this broker itself, each transaction's markers at once, as they were before the channel (no
request to wait for: Kafka's coordinator sends them to itself, one request at a time).

A leader's answer is taken per partition: written (or skipped: UNSUPPORTED_VERSION...), the
partition stops waiting; retriable (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
NOT_ENOUGH_REPLICAS...), it is queued again for its leader looked up anew (it may have moved);
fenced or unexpected, no more markers for the transaction from this coordinator. A request that
fails (refused, reset, timed out) has its markers queued again the same way. A partition
missing from the metadata (its topic deleted) is dropped; one whose leader is not known or not
reachable waits in a queue of its own, looked up again after a backoff. When no partition waits,
the transaction's ``done`` future is True and the coordinator writes Complete*; False when its
markers were given up (fenced, or this coordinator no longer owns the transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.coordinator.txn_coordinator_core import log
from kbroker.coordinator.txn_marker_errors import marker_retried
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.coordinator.hosts import TxnHost
    from kbroker.coordinator.txn_log import TxnMetadata
    from kbroker.replication.broker_connection import BrokerConnection

TopicPartition = tuple[str, int]

# A destination whose leader is not known, or not reachable (not registered, fenced, without the
# inter-broker listener): Kafka's markersQueueForUnknownBroker.
UNKNOWN = -1
# Between two requests to a destination after a failed request or retried markers, and between two
# look-ups of the unknown destinations' leaders (Kafka's sender thread retries at its next poll).
RETRY_BACKOFF_S = 0.1
WRITE_TXN_MARKERS_VERSION = 1


@dataclass(eq=False)
class PendingMarkers:
    """A prepared transaction whose markers are being written (Kafka's PendingCompleteTxn):
    ``waiting``, its partitions without their marker yet."""

    txn: TxnMetadata
    commit: bool
    coordinator_epoch: int
    waiting: set[TopicPartition]
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def finish(self, written: bool) -> None:
        if not self.done.done():
            self.done.set_result(written)


Batch = list[tuple[PendingMarkers, list[TopicPartition]]]


class MarkerHost(Protocol):
    """What the channel uses of the coordinator (``txn_markers.TxnMarkers``)."""

    broker: TxnHost

    def marker_current(self, pending: PendingMarkers) -> bool: ...

    async def _write_local_markers(self, txn: TxnMetadata, parts: list[TopicPartition], commit: bool,
                                   coordinator_epoch: int) -> list[TopicPartition] | None: ...

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]: ...


class MarkerChannel:
    """Per-destination queues and senders of the markers."""

    def __init__(self, host: MarkerHost) -> None:
        self.host = host
        # destination broker -> the partitions queued for it, per transaction (in queuing order)
        self.queues: dict[int, dict[PendingMarkers, set[TopicPartition]]] = {}
        self._senders: dict[int, asyncio.Task[object]] = {}

    def queued(self, destination: int) -> dict[PendingMarkers, set[TopicPartition]]:
        return self.queues.get(destination, {})

    # -- routing (Kafka's addTxnMarkersToBrokerQueue) --------------------------------------

    def add(self, pending: PendingMarkers, parts: Iterable[TopicPartition]) -> None:
        """Queue the markers of ``parts`` for their leaders (looked up now), and complete
        ``pending`` if none is left waiting."""
        if not self.host.marker_current(pending):
            pending.finish(False)
            return
        broker = self.host.broker
        woken: set[int] = set()
        for topic, index in sorted(parts):
            state = broker.image.partition(topic, index)
            if state is None:
                # Kafka: no leader endpoint for the partition, likely deleted: it no longer waits
                log.info("no marker for %s-%d (partition gone) in transaction %r", topic, index,
                         pending.txn.transactional_id)
                pending.waiting.discard((topic, index))
                continue
            destination = state.leader if state.leader >= 0 and self._reachable(state.leader) else UNKNOWN
            self.queues.setdefault(destination, {}).setdefault(pending, set()).add((topic, index))
            woken.add(destination)
        for destination in sorted(woken):
            self._wake(destination)
        if not pending.waiting:
            pending.finish(True)

    def _reachable(self, node: int) -> bool:
        broker = self.host.broker
        if node == broker.node_id:
            return True
        reg = broker.image.brokers.get(node)
        return reg is not None and not reg.fenced and broker.config.inter_broker_listener in reg.endpoints

    def _wake(self, destination: int) -> None:
        sender = self._senders.get(destination)
        if sender is None or sender.done():
            self._senders[destination] = self.host._spawn(self._send_loop(destination))

    # -- the senders -----------------------------------------------------------------------

    def _drain(self, destination: int) -> Batch:
        """The queued markers for ``destination`` still to send, at most one per producer id (the
        answer is keyed by it; a second stays queued for the next request)."""
        queue = self.queues.get(destination)
        batch: Batch = []
        if not queue:
            return batch
        producer_ids: set[int] = set()
        for pending in list(queue):
            if not self.host.marker_current(pending):
                del queue[pending]
                pending.finish(False)
            elif pending.txn.producer_id not in producer_ids:
                producer_ids.add(pending.txn.producer_id)
                batch.append((pending, sorted(queue.pop(pending))))
        if not queue:
            del self.queues[destination]
        return batch

    async def _send_loop(self, destination: int) -> None:
        """Send the markers queued for ``destination`` until none is left, one request at a time."""
        conn: BrokerConnection | None = None
        current = asyncio.current_task()
        try:
            while True:
                if destination == UNKNOWN:
                    await asyncio.sleep(RETRY_BACKOFF_S)
                batch = self._drain(destination)
                if not batch:
                    return
                if destination == self.host.broker.node_id:
                    for pending, parts in batch:  # each transaction's at once: no request to wait for
                        self.host._spawn(self._write_local(pending, parts))
                    continue
                try:
                    if destination == UNKNOWN:
                        retried = self._reroute(batch)
                    else:
                        conn, retried = await self._send(destination, batch, conn)
                except Exception:
                    log.exception("sending the transaction markers for broker %d failed", destination)
                    for pending, _parts in batch:
                        pending.finish(False)
                    continue
                if retried and destination != UNKNOWN:
                    await asyncio.sleep(RETRY_BACKOFF_S)
        finally:
            if conn is not None:
                conn.close()
            if self._senders.get(destination) is current:
                del self._senders[destination]

    def _reroute(self, batch: Batch) -> bool:
        for pending, parts in batch:
            self.add(pending, parts)
        return True

    async def _write_local(self, pending: PendingMarkers, parts: list[TopicPartition]) -> None:
        """The markers of ``parts``, led here, written by this broker (Kafka's coordinator sends
        them to itself) and awaited until replicated; those not written are queued again after a
        backoff, for their leaders then."""
        try:
            failed = await self.host._write_local_markers(pending.txn, parts, pending.commit,
                                                          pending.coordinator_epoch)
        except Exception:
            log.exception("writing the transaction markers of %r failed", pending.txn.transactional_id)
            failed = None
        if failed is None or not self.host.marker_current(pending):
            pending.finish(False)  # fenced: no more markers for the transaction from here
            return
        pending.waiting.difference_update(tp for tp in parts if tp not in failed)
        if failed:
            await asyncio.sleep(RETRY_BACKOFF_S)
        self.add(pending, failed)

    async def _send(self, destination: int, batch: Batch,
                    conn: BrokerConnection | None) -> tuple[BrokerConnection | None, bool]:
        """One WriteTxnMarkers to ``destination`` with the markers of ``batch``, its answer taken
        per partition (Kafka's TransactionMarkerRequestCompletionHandler). Returns the connection
        to send the next one on (None: a new one) and whether markers were queued again."""
        from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest as Req

        request = Req(markers=[])
        for pending, parts in batch:
            topics: dict[str, list[int]] = {}
            for topic, index in parts:
                topics.setdefault(topic, []).append(index)
            request.markers.append(Req.WritableTxnMarker(
                producer_id=pending.txn.producer_id, producer_epoch=pending.txn.producer_epoch,
                transaction_result=pending.commit, coordinator_epoch=pending.coordinator_epoch,
                topics=[Req.WritableTxnMarker.WritableTxnMarkerTopic(name=t, partition_indexes=i)
                        for t, i in topics.items()]))
        try:
            if conn is None:
                conn = await self._connect(destination)
            response = await conn.request(request, WRITE_TXN_MARKERS_VERSION,
                                          self.host.broker.config["request.timeout.ms"] / 1000)
        except Exception as exc:  # refused, reset, timed out: queued again, for their leaders now
            log.info("WriteTxnMarkers to broker %d failed: %s; retrying", destination, exc)
            if conn is not None:
                conn.close()
            for pending, parts in batch:
                self.add(pending, parts)
            return None, True
        codes: dict[int, dict[TopicPartition, ErrorCode]] = {}
        for result in response.markers:
            answered = codes.setdefault(result.producer_id, {})
            for t in result.topics:
                for p in t.partitions:
                    answered[(t.name, p.partition_index)] = ErrorCode(p.error_code)
        retried = False
        for pending, parts in batch:
            retried = self._answered(pending, parts, codes.get(pending.txn.producer_id, {})) or retried
        return conn, retried

    async def _connect(self, destination: int) -> BrokerConnection:
        from kbroker.replication.broker_connection import BrokerConnection, setup_timeout_s

        broker = self.host.broker
        reg = broker.image.brokers.get(destination)
        listener = broker.config.inter_broker_listener
        if reg is None or listener not in reg.endpoints:
            raise ConnectionError(f"broker {destination} has no {listener} endpoint")
        host, port, _protocol = reg.endpoints[listener]
        # the inter-broker listener's security, as the replica fetchers' (Kafka's
        # TransactionMarkerChannelManager: the inter-broker listener's ChannelBuilder)
        conn = BrokerConnection(host, port, f"broker-{broker.node_id}-txn-markers", 100 << 20,
                                broker.internode_security.inter_broker, destination,
                                receive_buffer=broker.config["socket.receive.buffer.bytes"])
        # Kafka's TransactionMarkerChannelManager: its NetworkClient's connection setup timeout
        await conn.open(setup_timeout_s(broker.config))
        return conn

    def _answered(self, pending: PendingMarkers, parts: list[TopicPartition],
                  codes: dict[TopicPartition, ErrorCode]) -> bool:
        """Take a leader's answer for the markers of ``parts``; whether some are queued again."""
        if not self.host.marker_current(pending):
            pending.finish(False)  # resigned or fenced meanwhile: the next coordinator completes it
            return False
        retry: list[TopicPartition] = []
        for topic, index in parts:
            # (a partition left out of the answer is sent again)
            again = marker_retried(pending.txn, topic, index, codes.get((topic, index), ErrorCode.REQUEST_TIMED_OUT))
            if again is None:
                pending.finish(False)  # Kafka's removeMarkersForTxn: no Complete* from this coordinator
                return False
            if again:
                retry.append((topic, index))
            else:
                pending.waiting.discard((topic, index))
        self.add(pending, retry)
        return bool(retry)
