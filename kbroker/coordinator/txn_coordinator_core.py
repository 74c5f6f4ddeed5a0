"""The transaction coordinator's core (``txn_coordinator``): its state, the ``__transaction_state``
partitions it leads (creation, loading and replay of their records), the replicated writes to
them (Kafka's TransactionStateManager.appendTransactionToLog) and the checks every request
makes before it changes a transaction."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.coordinator.partitioning import partition_for
from kbroker.coordinator.txn_log import (
    TRANSACTION_STATE_TOPIC,
    TxnMetadata,
    TxnState,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import InvalidRecordBatch
from kbroker_protocol.records import Record, build_batch, iter_records

if TYPE_CHECKING:
    from collections.abc import Callable

    from kbroker.coordinator.hosts import TxnHost
    from kbroker.replication.partition import Partition

log = logging.getLogger("kbroker.coordinator.txn_coordinator")  # the logger of the module before the split

OFFSETS_TOPIC = "__consumer_offsets"


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class TxnClock(Protocol):
    """The clock the coordinator may be given (kbroker.control.clock.ManualClock)."""

    def now_ms(self) -> int: ...

    def call_every(self, period_ms: int, fn: Callable[[], None]) -> TimerHandle: ...

class TxnError(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.name)
        self.code = code


def _append_error(code: ErrorCode) -> ErrorCode:
    """A transaction log append error as the coordinator answers it (Kafka's appendTransactionToLog)."""
    if code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_ENOUGH_REPLICAS,
                ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.NOT_COORDINATOR
    if code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE):
        return ErrorCode.UNKNOWN_SERVER_ERROR
    return code


def _now_ms() -> int:
    return int(time.time() * 1000)


class TxnCoordinatorCore:
    """State and partitions of the transaction coordinator; the operations are in its subclasses
    (``txn_markers.TxnMarkers``, ``txn_coordinator.TransactionCoordinator``)."""

    def __init__(self, broker: TxnHost, clock: TxnClock | None = None) -> None:
        self.broker = broker
        # kbroker.clock=manual (kbroker.control.clock.ManualClock, injected): transactions are
        # stamped with its time and the periodic timeout and expiration checks run on it.
        self.clock = clock
        self._clock_timers: list[TimerHandle] = []
        self.txns: dict[str, TxnMetadata] = {}
        self.loaded = False
        # Partitions of __transaction_state whose transactions are loaded here (this broker leads them).
        self.led_partitions: set[int] = set()
        self._marker_tasks: set[asyncio.Task[object]] = set()
        # Transactional ids with a record appended and not yet replicated (Kafka's pendingState):
        # other requests for them answer CONCURRENT_TRANSACTIONS meanwhile.
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- configuration ---------------------------------------------------------------------

    def _cfg(self, key: str) -> int:
        value: int = self.broker.config[key]
        return value

    def _now_ms(self) -> int:
        return _now_ms() if self.clock is None else self.clock.now_ms()

    @property
    def num_partitions(self) -> int:
        """Partitions of ``__transaction_state``: the topic's own count once it exists."""
        topic = self.broker.image.topic(TRANSACTION_STATE_TOPIC)
        if topic is not None and topic.partitions:
            return len(topic.partitions)
        return self._cfg("transaction.state.log.num.partitions")

    def _offsets_partition(self, group_id: str) -> int:
        """The ``__consumer_offsets`` partition of a group, as the group coordinator places it."""
        group_coordinator = self.broker.group_coordinator
        if group_coordinator is not None:
            return group_coordinator.partition_for(group_id)
        topic = self.broker.image.topic(OFFSETS_TOPIC)
        n = len(topic.partitions) if topic is not None and topic.partitions else \
            self._cfg("offsets.topic.num.partitions")
        return partition_for(group_id, n)


    topic_name = TRANSACTION_STATE_TOPIC

    def partition_for(self, transactional_id: str) -> int:
        """The ``__transaction_state`` partition of a transactional id."""
        return partition_for(transactional_id, self.num_partitions)

    def topic_configs(self) -> dict[str, str]:
        """The configs ``__transaction_state`` is created with (Kafka's transactionTopicConfigs)."""
        from kbroker.replication.topics import internal_min_isr

        return {
            "cleanup.policy": "compact",
            "segment.bytes": str(self._cfg("transaction.state.log.segment.bytes")),
            "min.insync.replicas": str(internal_min_isr(self.broker, "transaction.state.log.min.isr")),
        }

    def topic_partitions(self) -> int:
        """The partitions ``__transaction_state`` is created with."""
        return self._cfg("transaction.state.log.num.partitions")

    def ensure_topic(self) -> bool:
        """Create ``__transaction_state`` if it does not exist yet; True once it exists.

        Kafka creates the topic lazily, when a transactional id first needs it (FindCoordinator,
        or here a transactional InitProducerId coming without one)."""
        from kbroker.replication.topics import ensure_internal_topic, internal_replication_factor

        return ensure_internal_topic(self.broker, TRANSACTION_STATE_TOPIC, self.topic_partitions(),
                                     self.topic_configs(),
                                     internal_replication_factor(self.broker, "transaction.state.log.replication.factor"))

    async def await_topic(self) -> bool:
        """:meth:`ensure_topic` with a bounded wait for the controller's answer (none while the
        broker is stopping), for the APIs that may come before any FindCoordinator."""
        from kbroker.replication.topics import await_internal_topic, internal_replication_factor

        if self.broker.stopping:
            return self.ensure_topic()
        return await await_internal_topic(
            self.broker, TRANSACTION_STATE_TOPIC, self.topic_partitions(), self.topic_configs(),
            internal_replication_factor(self.broker, "transaction.state.log.replication.factor"))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(coro)
        self._marker_tasks.add(task)
        task.add_done_callback(self._marker_tasks.discard)
        return task

    def _load_partition(self, partition: Partition) -> None:
        for header, data in partition.log.iter_batches():
            if header.is_control:
                continue
            try:
                records = list(iter_records(data))
            except InvalidRecordBatch as exc:
                log.warning("skipping unreadable batch at %d of %s-%d: %s", header.base_offset,
                            partition.topic, partition.index, exc)
                continue
            for record in records:
                if record.key is None:
                    continue
                try:
                    tid = decode_key(record.key)
                    if tid is None:
                        continue
                    txn = None if record.value is None else decode_value(tid, record.value)
                except Exception as exc:  # noqa: BLE001 - a bad record must not stop the broker
                    log.warning("skipping unreadable transaction log record at %s: %s", record.offset, exc)
                    continue
                self._replay(tid, txn)

    def _replay(self, transactional_id: str, txn: TxnMetadata | None) -> None:
        if txn is None:
            self.txns.pop(transactional_id, None)
        else:
            self.txns[transactional_id] = txn

    def _log_partition(self, transactional_id: str) -> Partition | None:
        partition: Partition | None = self.broker.partition(TRANSACTION_STATE_TOPIC,
                                                            self.partition_for(transactional_id))
        return partition

    def coordinator_epoch(self, transactional_id: str) -> int:
        partition = self._log_partition(transactional_id)
        return partition.leader_epoch if partition is not None else 0

    async def _write(self, txn: TxnMetadata | None, transactional_id: str | None = None) -> None:
        """Append the record of ``txn`` (a tombstone when None) and, once it is replicated, replay it.

        As Kafka's TransactionStateManager.appendTransactionToLog: the append is acks=-1 (its
        timeout the transaction's), the new state takes effect only once the record is below the
        high watermark, other requests for the id answer CONCURRENT_TRANSACTIONS meanwhile, and
        an append error is normalised for the client: NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
        REQUEST_TIMED_OUT, UNKNOWN_TOPIC_OR_PARTITION -> COORDINATOR_NOT_AVAILABLE;
        NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR -> NOT_COORDINATOR (also when the partition's
        leadership changed while waiting); MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE ->
        UNKNOWN_SERVER_ERROR. On an error the state in memory is unchanged."""
        from kbroker.log import LogError, RecordBatchTooLargeError
        from kbroker.replication import leadership
        from kbroker.replication.deadline import Deadline
        from kbroker.replication.produce_batch import ProduceError
        from kbroker.replication.producer_manager import MARKER_TIMEOUT_MS

        tid = transactional_id if txn is None else txn.transactional_id
        assert tid is not None
        partition = self._log_partition(tid)
        if partition is None:
            raise TxnError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not partition.is_leader:
            raise TxnError(ErrorCode.NOT_COORDINATOR)
        if tid in self._pending:
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        if len(partition.isr) < leadership.effective_min_isr(partition):
            raise TxnError(_append_error(ErrorCode.NOT_ENOUGH_REPLICAS))
        leader_epoch = partition.leader_epoch
        now = self._now_ms()
        value = None if txn is None else encode_value(txn)
        batch = build_batch([Record(key=encode_key(tid), value=value, timestamp=now)])
        replica_manager = self.broker.replica_manager
        try:
            replica_manager.append_internal(partition, batch)
        except ProduceError as exc:
            raise TxnError(_append_error(exc.code)) from None
        except RecordBatchTooLargeError as exc:
            # Kafka's appendTransactionToLog: MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE -> UNKNOWN_SERVER_ERROR
            log.error("transaction log record for %r too large: %s", tid, exc)
            raise TxnError(ErrorCode.UNKNOWN_SERVER_ERROR) from None
        except (LogError, OSError) as exc:  # KAFKA_STORAGE_ERROR (the log dir failed) -> NOT_COORDINATOR
            log.error("transaction log append for %r failed: %s", tid, exc)
            raise TxnError(ErrorCode.NOT_COORDINATOR) from None
        self._pending.add(tid)
        try:
            timeout_ms = txn.timeout_ms if txn is not None else MARKER_TIMEOUT_MS
            deadline = Deadline(timeout_ms, self.broker.clock)
            code = await replica_manager.wait_for_replication(partition, partition.log.log_end_offset, deadline)
        finally:
            self._pending.discard(tid)
        if code != ErrorCode.NONE:
            log.info("transaction log append for %r failed: %s", tid, code.name)
            raise TxnError(_append_error(code))
        if (self._log_partition(tid) is not partition or not partition.is_leader
                or partition.leader_epoch != leader_epoch or partition.index not in self.led_partitions):
            raise TxnError(ErrorCode.NOT_COORDINATOR)  # emigrated while waiting: the next coordinator has it
        self._replay(tid, txn)

    # -- checks shared by the APIs ---------------------------------------------------------

    def _check_ready(self, transactional_id: str) -> None:
        """Kafka's TransactionStateManager: COORDINATOR_LOAD_IN_PROGRESS while the id's partition
        loads, NOT_COORDINATOR when this broker does not (or no longer, shutting down) lead it."""
        if not transactional_id:
            raise TxnError(ErrorCode.INVALID_REQUEST)
        if not self.loaded:
            raise TxnError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        if self.broker.stopping:
            raise TxnError(ErrorCode.NOT_COORDINATOR)
        if not self.ensure_topic():
            raise TxnError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not self.is_coordinator_for(transactional_id):
            raise TxnError(ErrorCode.NOT_COORDINATOR)
        if self.partition_for(transactional_id) not in self.led_partitions:
            raise TxnError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)

    def is_coordinator_for(self, transactional_id: str) -> bool:
        """Whether this broker leads the ``__transaction_state`` partition of the id."""
        state = self.broker.image.partition(TRANSACTION_STATE_TOPIC, self.partition_for(transactional_id))
        return state is not None and state.leader == self.broker.node_id

    def _current(self, transactional_id: str, producer_id: int, producer_epoch: int) -> TxnMetadata:
        """The id's transaction if the producer owns it, in the order of Kafka 4.4's
        handleAddPartitionsToTransaction: a pending transition first (a record being written, or
        the markers of a Prepare* one: Kafka's pending Complete*) answers CONCURRENT_TRANSACTIONS
        whatever the producer id and epoch, then INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED."""
        txn = self.txns.get(transactional_id)
        if txn is None:
            raise TxnError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if transactional_id in self._pending or txn.state in (
                TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE):
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        if txn.producer_id != producer_id:
            raise TxnError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if txn.producer_epoch != producer_epoch:
            raise TxnError(ErrorCode.PRODUCER_FENCED)
        return txn

