"""Transaction markers (``txn_coordinator``): once a Prepare* record is replicated, the markers
are written to every partition of the transaction (local appends for the partitions led here,
WriteTxnMarkers to the leaders of the others, as Kafka's TransactionMarkerChannelManager, retried
while leadership moves), then the Complete* record. A ``__consumer_offsets`` partition gets one
marker like any other, however many groups hashing to it took part: the group coordinator writes
it and commits or drops the producer's offsets of every group of the partition with it."""

from __future__ import annotations

import asyncio

from kbroker.coordinator.txn_coordinator_core import OFFSETS_TOPIC, TxnCoordinatorCore, TxnError, log
from kbroker.coordinator.txn_log import TxnMetadata, TxnState
from kbroker_protocol.errors import ErrorCode

# How a leader's answer to a marker is taken, as Kafka 4.4's
# TransactionMarkerRequestCompletionHandler: written (the partition leaves the set waiting for
# markers), retried (sent again to the partition's leader, which may have moved), or the end of
# this coordinator's markers for the transaction (it stays Prepare* here; a newer coordinator, or
# this one after reloading the partition, completes it).
MARKER_RETRIABLE = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.KAFKA_STORAGE_ERROR,
})
# (A partition whose leader cannot take markers could not have taken the producer's records.)
MARKER_SKIPPED = frozenset({ErrorCode.NONE, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, ErrorCode.UNSUPPORTED_VERSION})
# The producer or the coordinator epoch moved on: this transaction is no longer this coordinator's
# to complete. (Any other error is unexpected, and stops the markers the same way: Kafka's handler
# throws, and nothing sends them again.)
MARKER_FENCED = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.TRANSACTION_COORDINATOR_FENCED})


def marker_retried(txn: TxnMetadata, topic: str, index: int, code: ErrorCode) -> bool | None:
    """Whether the marker answered ``code`` for ``topic-index`` is sent again (False: written or
    skipped), or None: no more markers for ``txn`` from this coordinator (logged)."""
    if code in MARKER_SKIPPED:
        if code != ErrorCode.NONE:
            log.info("marker for %s-%d of transaction %r: %s; the partition no longer waits for it", topic, index,
                     txn.transactional_id, code.name)
        return False
    if code in MARKER_RETRIABLE:
        log.info("marker for %s-%d of transaction %r not written: %s; retrying", topic, index,
                 txn.transactional_id, code.name)
        return True
    if code in MARKER_FENCED:
        log.info("marker for %s-%d of transaction %r failed for good: %s; no more markers for it from this "
                 "coordinator", topic, index, txn.transactional_id, code.name)
    else:
        log.error("unexpected error %s writing the marker for %s-%d of transaction %r; no more markers for it "
                  "from this coordinator", code.name, topic, index, txn.transactional_id)
    return None


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
        leaders with acks=-1: those led here are written at once and awaited until replicated,
        those led by other brokers get a WriteTxnMarkers request (Kafka's
        TransactionMarkerChannelManager). While a marker is missing (leader elsewhere, or a local
        one not replicated in time) the transaction stays Prepare* (other requests answer
        CONCURRENT_TRANSACTIONS), a task retries until every leader has it and then writes
        Complete*, and the Prepare* state is returned; otherwise the completed state is."""
        commit = txn.state == TxnState.PREPARE_COMMIT
        coordinator_epoch = self.coordinator_epoch(txn.transactional_id)
        remote = [tp for tp in sorted(txn.partitions) if self._led_elsewhere(*tp)]
        local = [tp for tp in sorted(txn.partitions) if tp not in remote]
        failed = await self._write_local_markers(txn, local, commit, coordinator_epoch)
        if failed is None:
            return txn  # fenced: this coordinator no longer completes it
        pending = remote + failed
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

    async def _send_markers_then_complete(self, txn: TxnMetadata, remote: list[tuple[str, int]], commit: bool,
                                          coordinator_epoch: int) -> None:
        """Send WriteTxnMarkers to the leaders of ``remote`` until each has written its marker
        (retrying while leadership moves), then complete the transaction if this coordinator
        still owns it in that Prepare* state."""
        from kbroker.replication.broker_connection import BrokerConnection, setup_timeout_s
        from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest as Req

        broker = self.broker
        pending = set(remote)
        connections: dict[int, BrokerConnection] = {}
        try:
            while pending:
                if self.txns.get(txn.transactional_id) is not txn or broker.stopping:
                    return  # resigned, fenced or stopping: the next coordinator completes it
                by_leader: dict[int, list[tuple[str, int]]] = {}
                for topic, index in sorted(pending):
                    state = broker.image.partition(topic, index)
                    if state is None:
                        log.info("no marker for %s-%d (partition gone) in transaction %r", topic, index,
                                 txn.transactional_id)
                        pending.discard((topic, index))
                    elif state.leader >= 0:
                        by_leader.setdefault(state.leader, []).append((topic, index))
                for leader, parts in by_leader.items():
                    if leader == broker.node_id:
                        failed = await self._write_local_markers(txn, parts, commit, coordinator_epoch)
                        if failed is None:
                            return  # fenced: the transaction does not complete on this coordinator
                        pending.difference_update(tp for tp in parts if tp not in failed)
                        continue
                    reg = broker.image.brokers.get(leader)
                    listener = broker.config.inter_broker_listener
                    if reg is None or reg.fenced or listener not in reg.endpoints:
                        continue
                    topics: dict[str, list[int]] = {}
                    for topic, index in parts:
                        topics.setdefault(topic, []).append(index)
                    request = Req(markers=[Req.WritableTxnMarker(
                        producer_id=txn.producer_id, producer_epoch=txn.producer_epoch, transaction_result=commit,
                        coordinator_epoch=coordinator_epoch,
                        topics=[Req.WritableTxnMarker.WritableTxnMarkerTopic(name=t, partition_indexes=i)
                                for t, i in topics.items()])])
                    try:
                        conn = connections.get(leader)
                        if conn is None:
                            host, port, _protocol = reg.endpoints[listener]
                            conn = BrokerConnection(host, port, f"broker-{broker.node_id}-txn-markers", 100 << 20,
                                                    receive_buffer=broker.config["socket.receive.buffer.bytes"])
                            # Kafka's TransactionMarkerChannelManager: its NetworkClient's connection setup
                            # timeout and request.timeout.ms
                            await conn.open(setup_timeout_s(broker.config))
                            connections[leader] = conn
                        response = await conn.request(request, 1, broker.config["request.timeout.ms"] / 1000)
                    except Exception as exc:  # refused, reset, timed out: retry on a new connection
                        log.info("WriteTxnMarkers to broker %d failed: %s; retrying", leader, exc)
                        bad = connections.pop(leader, None)
                        if bad is not None:
                            bad.close()
                        continue
                    fenced = False
                    for result in response.markers:
                        for t in result.topics:
                            for pr in t.partitions:
                                # (UNKNOWN_TOPIC_OR_PARTITION is retried: the leader may not have
                                # opened the partition yet.)
                                retried = marker_retried(txn, t.name, pr.partition_index, ErrorCode(pr.error_code))
                                if retried is None:
                                    fenced = True
                                elif not retried:
                                    pending.discard((t.name, pr.partition_index))
                    if fenced:
                        return  # Kafka's removeMarkersForTxn: no Complete* record from this coordinator
                if pending:
                    await asyncio.sleep(0.1)  # leaders moving or unreachable: retry (Kafka's backoff)
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
            for conn in connections.values():
                conn.close()

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
