"""Transaction markers (``txn_coordinator``): once a Prepare* record is replicated, the markers
are written to every partition of the transaction (local appends for the partitions led here,
WriteTxnMarkers to the leaders of the others, each leader on its own through the marker channel
``txn_marker_channel`` as Kafka's TransactionMarkerChannelManager, retried while leadership
moves), then the Complete* record. A ``__consumer_offsets`` partition gets one
marker like any other, however many groups hashing to it took part: the group coordinator writes
it and commits or drops the producer's offsets of every group of the partition with it."""

from __future__ import annotations

import asyncio
import functools

from kbroker.coordinator.txn_coordinator_core import OFFSETS_TOPIC, TxnCoordinatorCore, TxnError, log
from kbroker.coordinator.txn_log import TxnMetadata, TxnState
from kbroker.coordinator.txn_marker_channel import MarkerChannel, PendingMarkers
from kbroker.coordinator.txn_marker_errors import (
    MARKER_FATAL,
    MARKER_FENCED,
    MARKER_RETRIABLE,
    MARKER_SKIPPED,
    marker_retried,
)
from kbroker_protocol.errors import ErrorCode

__all__ = ["MARKER_FATAL", "MARKER_FENCED", "MARKER_RETRIABLE", "MARKER_SKIPPED", "TxnMarkers", "marker_retried"]


class TxnMarkers(TxnCoordinatorCore):
    """Markers and completion of prepared transactions."""

    async def _complete_soon(self, prepared: TxnMetadata) -> TxnMetadata:
        """After a replicated Prepare* record: as Kafka, the request is answered now and the markers
        and Complete* follow in a task (the Prepare* state is returned), except when every
        partition involved has no other replica (a single node): then nothing can hold the
        markers, and the completed state is returned."""
        if self._unreplicated(prepared):
            return await self._write_markers_and_complete(prepared)
        self._spawn(self._write_markers_and_complete(prepared))
        return prepared

    def _unreplicated(self, txn: TxnMetadata) -> bool:
        log_partition = self._log_partition(txn.transactional_id)
        if log_partition is None or log_partition.followers:
            return False
        for topic, index in txn.partitions:
            partition = self.broker.partition(topic, index)
            if partition is None or not partition.is_leader or partition.followers:
                return False
        return True

    async def _write_markers_and_complete(self, txn: TxnMetadata) -> TxnMetadata:
        """Write the transaction's markers and its Complete* record. Markers go to the partitions'
        leaders with acks=-1. When every partition is led here they are written at once and
        awaited until replicated, then Complete* is written and the completed state returned.
        Otherwise (a leader elsewhere, or a local marker not replicated in time) they go through
        the marker channel (Kafka's TransactionMarkerChannelManager: one queue and sender per
        leader, the partitions led here written by this broker), the transaction stays Prepare*
        (other requests answer CONCURRENT_TRANSACTIONS), a task writes Complete* once every
        partition has its marker, and the Prepare* state is returned."""
        commit = txn.state == TxnState.PREPARE_COMMIT
        coordinator_epoch = self.coordinator_epoch(txn.transactional_id)
        partitions = sorted(txn.partitions)
        if any(self._led_elsewhere(*tp) for tp in partitions):
            pending = partitions
        else:
            failed = await self._write_local_markers(txn, partitions, commit, coordinator_epoch)
            if failed is None:
                return txn  # fenced: this coordinator no longer completes it
            pending = failed
            if not pending:
                try:
                    return await self._complete(txn)
                except TxnError as exc:
                    if exc.code == ErrorCode.NOT_COORDINATOR:
                        return txn  # the next coordinator completes it
                    log.info("completing transaction %r: %s; retrying", txn.transactional_id, exc.code.name)
        self._spawn(self._send_markers_then_complete(txn, pending, commit, coordinator_epoch))
        return txn

    def _led_elsewhere(self, topic: str, index: int) -> bool:
        p = self.broker.partition(topic, index)
        if p is not None and p.is_leader:
            return False
        state = self.broker.image.partition(topic, index)
        return state is not None and state.leader != self.broker.node_id and len(self.broker.image.brokers) > 1

    @functools.cached_property
    def marker_channel(self) -> MarkerChannel:
        """The markers' queues and senders per destination broker."""
        return MarkerChannel(self)

    def marker_current(self, pending: PendingMarkers) -> bool:
        """Whether the markers of ``pending`` are still this coordinator's to write: the
        transaction is the one it holds (not resigned, reloaded or fenced meanwhile), the broker
        is not stopping and the markers were not given up."""
        return (self.txns.get(pending.txn.transactional_id) is pending.txn and not self.broker.stopping
                and not pending.done.done())

    async def _send_markers_then_complete(self, txn: TxnMetadata, remote: list[tuple[str, int]], commit: bool,
                                          coordinator_epoch: int) -> None:
        """Have the marker channel write the markers of ``remote`` (each leader independently,
        retried while leadership moves), then complete the transaction if this coordinator
        still owns it in that Prepare* state (Kafka's maybeWriteTxnCompletion)."""
        broker = self.broker
        pending = PendingMarkers(txn, commit, coordinator_epoch, set(remote))
        try:
            self.marker_channel.add(pending, remote)
            if not await pending.done:
                return  # fenced, resigned or stopping: the next coordinator completes it
            while self.txns.get(txn.transactional_id) is txn and not broker.stopping:
                try:
                    await self._complete(txn)
                    break
                except TxnError as exc:
                    if exc.code not in (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.CONCURRENT_TRANSACTIONS):
                        log.info("completing transaction %r: %s", txn.transactional_id, exc.code.name)
                        break
                await asyncio.sleep(0.1)  # the Complete record was not replicated: retry (Kafka retries it)
        except Exception:
            log.exception("completing transaction %r failed", txn.transactional_id)
        finally:
            pending.finish(False)  # (cancelled: the channel drops its markers)

    async def _write_local_markers(self, txn: TxnMetadata, parts: list[tuple[str, int]], commit: bool,
                                   coordinator_epoch: int) -> list[tuple[str, int]] | None:
        """Write the markers of ``parts`` (partitions led here) and wait until they are replicated;
        returns those to retry (not replicated in time, or leadership moved), or None when a
        marker failed for good (fenced: no more markers for the transaction from here)."""
        broker = self.broker
        producer_state = broker.replica_manager.producer_state
        if producer_state is None:
            raise RuntimeError("the replica manager has no producer state to write markers with")

        async def one(topic: str, index: int) -> bool | None:
            partition = broker.partition(topic, index)
            if partition is None:
                log.info("no marker for %s-%d (partition gone) in transaction %r", topic, index,
                         txn.transactional_id)
                return False
            code: ErrorCode
            if topic == OFFSETS_TOPIC:
                # the group coordinator writes it: one marker for the partition, completing the
                # producer's offsets of every group of it (Kafka's TransactionMarkerChannelManager
                # sends one per partition of the transaction, the offsets partitions included)
                group_coordinator = broker.group_coordinator
                if group_coordinator is None:
                    return False
                code = await group_coordinator.write_txn_marker(txn.producer_id, index, commit, txn.producer_epoch,
                                                                coordinator_epoch)
            else:
                code = await producer_state.write_marker_replicated(
                    broker.replica_manager, partition, txn.producer_id, txn.producer_epoch, commit, coordinator_epoch)
            return marker_retried(txn, topic, index, code)

        retried = await asyncio.gather(*(one(topic, index) for topic, index in parts))
        if None in retried:
            return None
        return [tp for tp, again in zip(parts, retried, strict=True) if again]

    async def _complete(self, txn: TxnMetadata) -> TxnMetadata:
        """The Complete* record, once every partition has its marker (the offsets partitions' too:
        their transactional offsets were committed or dropped with the marker)."""
        commit = txn.state == TxnState.PREPARE_COMMIT
        done = txn.copy(state=TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT, partitions=set(),
                        last_update_ms=self._now_ms())
        if txn.next_producer_id >= 0:
            done = done.copy(producer_id=txn.next_producer_id, producer_epoch=txn.next_producer_epoch,
                             previous_producer_id=txn.producer_id, next_producer_id=-1, next_producer_epoch=-1)
        await self._write(done)
        return done
