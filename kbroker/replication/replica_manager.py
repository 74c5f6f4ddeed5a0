"""Appends from clients and reads for fetchers, over the partitions this broker leads.

``append_from_client`` is the Produce hot path: header checks, the records checked against the
header (inline when small, else in the validation pool: ``kbroker.replication.validation``),
producer-state checks (through ``producer_state``, installed by the transaction layer), the append
itself (offsets patched, bytes stored as received unless the topic asks for a re-encode), the high
watermark, and waking fetches that wait for data. Appends to one partition keep request order.

Replication (Kafka's ``ReplicaManager.applyDelta``): ``apply_partition_state`` makes a local
replica leader or follower when a partition record names it (``kbroker/replication/leadership.py``);
followers fetch from their leaders (``kbroker/replication/replica_fetcher.py``); the leader
records each follower's fetch position, moves the high watermark, wakes acks=all produces
(``wait_for_replication``) and asks the controller for ISR changes with AlterPartition over
``alter_partition_channel`` (``send(api_key, request) -> response``, the node-to-controller
channel), checking for out-of-sync followers every ``replica.lag.time.max.ms`` / 2. High
watermarks are kept in each log directory's ``replication-offset-checkpoint``
(``kbroker/replication/hw_checkpoint.py``) and restored when a replicated partition is opened.

The producer state's housekeeping, which Kafka's logs do (producer-id expiration every
``producer.id.expiration.check.interval.ms``, producer snapshots when the logs close), runs from
:meth:`ReplicaManager.start` to :meth:`ReplicaManager.close`
(``kbroker/replication/producer_housekeeping.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kbroker.log import LogClosedError, LogCorruptedError, RecordBatchTooLargeError
from kbroker.log.errors import LogError
from kbroker.log.group_commit import GroupCommit, NotDurableError
from kbroker.replication import leadership
from kbroker.replication.deadline import Deadline, WaitClock
from kbroker.replication.hw_checkpoint import HighWatermarkCheckpoints
from kbroker.replication.parked_fetches import ParkedFollowerFetches
from kbroker.replication.partition import PendingIsr
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.producer_housekeeping import ProducerHousekeeping
from kbroker.replication.producer_manager import apply_appended, partition_state
from kbroker.replication.replica_fetcher import FetcherHost, ReplicaFetcherManager
from kbroker.replication.txn_verification import TxnVerification
from kbroker.replication.validation import (
    INLINE_DECOMPRESSED_BYTES,
    INLINE_REBUILD_BYTES,
    INLINE_RECORDS,
    ValidationPool,
    check_batch_header,
    check_request_batch,
    raise_for_outcome,
    validation_policy,
)
from kbroker_protocol import record_walk
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest
from kbroker_protocol.record_batch import BatchHeader, parse_header
from kbroker_protocol.record_validation import (
    Outcome,
    OverBudget,
    Policy,
    validate_records,
)
from kbroker_protocol.records import Buffer

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.metadata.broker_lifecycle import Channel
    from kbroker.metadata.image import MetadataImage, PartitionState
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_manager import ProducerStateManager
    from kbroker.replication.producer_state import VerificationGuard
    from kbroker_protocol.messages.alter_partition import AlterPartitionResponse

log = logging.getLogger(__name__)


class DelayedDivert(Protocol):
    """The broker's delayed delivery (``kbroker/delayed.py``) as a client append reaches it."""

    @property
    def enabled(self) -> bool: ...

    def divert(self, partition: Partition, records: Buffer, version: int, acks: int, transactional_id: str | None,
               now_ms: int) -> AppendResult | Awaitable[AppendResult] | None: ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class ReplicaClock(WaitClock, Protocol):
    """The manual clock (``kbroker.control.clock.ManualClock``) as the replica manager uses it:
    deadlines, and the ISR expiration check on clock time."""

    def call_at(self, due_ms: int, fn: Callable[[], None]) -> TimerHandle: ...


class ReplicaHost(FetcherHost, Protocol):
    """What the replica manager reads of its broker (``kbroker.broker.Broker`` provides it):
    identity, config and image, the local partitions, whether it is stopping, the manual clock
    (None: real time), its delayed delivery (None: none), and what its replica fetchers read
    (:class:`FetcherHost`)."""

    config: BrokerConfig
    image: MetadataImage
    partitions: dict[tuple[str, int], Partition]

    @property
    def node_id(self) -> int: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def clock(self) -> ReplicaClock | None: ...

    @property
    def delayed(self) -> DelayedDivert | None: ...


ALTER_PARTITION = 56
RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
ALTER_PARTITION_RETRY_MS = 50  # Kafka's AlterPartitionManager retries after a short backoff


class ReplicaManager(TxnVerification, HighWatermarkCheckpoints):
    broker: ReplicaHost

    def __init__(self, broker: ReplicaHost) -> None:
        self.broker = broker  # the owning broker: its image, config, clock and partitions
        self.validation_pool = ValidationPool()
        # Installed by the idempotence/transactions layer: validates producer epochs/sequences.
        self.producer_state: ProducerStateManager | None = None
        # The node-to-controller channel for AlterPartition: ``async send(api_key, request)``.
        # Installed by the broker's start-up in a cluster; None: ISR changes are not sent.
        self.alter_partition_channel: Channel | None = None
        self.fetchers = ReplicaFetcherManager(self)
        self.parked_fetches = ParkedFollowerFetches()  # followers' held fetches, by follower
        self._isr_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._no_channel_logged = False
        # ISR changes this broker's partitions made, as leader (Kafka's IsrExpandsPerSec and
        # IsrShrinksPerSec meters: marked when the controller accepted them), read by the metrics.
        self.isr_expands = 0
        self.isr_shrinks = 0
        self._init_checkpoints()
        # producer-id expiration and the producer snapshots at close (Kafka's log layer does them)
        self.producer_housekeeping = ProducerHousekeeping(broker)

    def start(self) -> None:
        """Start the periodic work that does not wait for a partition: the producer-id expiration
        check (the ISR and checkpoint timers start with the first partition that needs them)."""
        self.producer_housekeeping.start()

    # -- time, config, image -----------------------------------------------------------------

    def now_ms(self) -> int:
        clock = self.broker.clock
        return clock.now_ms() if clock is not None else int(time.time() * 1000)

    @property
    def node_id(self) -> int:
        return self.broker.node_id

    @property
    def lag_ms(self) -> int:
        lag_ms: int = self.broker.config["replica.lag.time.max.ms"]
        return lag_ms

    def broker_epoch(self, broker_id: int) -> int:
        reg = self.broker.image.brokers.get(broker_id)
        return reg.epoch if reg is not None else -1

    def eligible(self, replica_id: int, fetch_broker_epoch: int | None) -> bool:
        """May ``replica_id`` join the ISR (Kafka's ``isReplicaIsrEligible``): registered, not
        fenced, and fetching with its registered broker epoch (or with -1, no epoch)."""
        reg = self.broker.image.brokers.get(replica_id)
        if reg is None or reg.fenced or reg.in_controlled_shutdown:
            return False
        return fetch_broker_epoch is not None and fetch_broker_epoch in (-1, reg.epoch)

    # -- becoming leader or follower ---------------------------------------------------------

    def apply_partition_state(self, partition: Partition, state: PartitionState) -> None:
        """A partition record for a local replica (Kafka's ``applyDelta``): lead or follow."""
        if partition.partition_epoch < 0:  # just opened
            self._restore_high_watermark(partition, len(state.replicas))
            self.producer_housekeeping.watch_rolls(partition)
            self._ensure_checkpoint_timer()
        if state.leader == self.node_id:
            self.fetchers.remove_partition(partition)
            try:
                made = leadership.make_leader(partition, state, self.now_ms(), self.lag_ms, self.eligible)
            except OSError as exc:  # its log dir failed (reported by the log): Kafka skips the change
                log.error("%s-%d: skipped become-leader at epoch %d: storage error %s", partition.topic,
                          partition.index, state.leader_epoch, exc)
                return
            if made and partition.followers:
                self._ensure_isr_timer()
            return
        if leadership.make_follower(partition, state) or not self.fetchers.has_partition(partition):
            self.fetchers.remove_partition(partition)
            # a log in a failed dir does not fetch (Kafka's offline partition): caught up by no
            # append, it would look in sync to the leader
            if state.leader >= 0 and getattr(partition.log, "offline", None) is None:
                self.fetchers.add_partition(partition)

    def handle_log_dir_failure(self, log_dir: Path) -> None:
        """The log dir ``log_dir`` failed (others remain): its partitions stop fetching, as
        Kafka's ReplicaManager.handleLogDirFailure removes their fetchers."""
        for partition in list(self.broker.partitions.values()):
            if Path(partition.log.directory).parent == log_dir:
                self.fetchers.remove_partition(partition)

    def stop_replica(self, partition: Partition) -> None:
        """The partition is deleted (or this broker is no longer a replica): stop fetching it and
        stop leading it (produces waiting on it answer NOT_LEADER_OR_FOLLOWER)."""
        self.fetchers.remove_partition(partition)
        partition.leader_id = -1
        partition.epoch_start_offset = None
        partition.followers.clear()
        partition.pending_isr = None
        partition.notify_hw()

    # -- leader: followers' fetches, high watermark, ISR ---------------------------------------

    def on_follower_fetch(self, partition: Partition, replica_id: int, fetch_offset: int, log_start_offset: int,
                          leader_end: int, broker_epoch: int) -> None:
        now = self.now_ms()
        moved = leadership.update_follower_fetch_state(partition, replica_id, fetch_offset, log_start_offset, now,
                                                       leader_end, broker_epoch)
        pending = leadership.expand_candidate(partition, replica_id, self.eligible)
        if pending is not None:
            self._submit(partition, pending)
        if moved and leadership.maybe_increment_hw(partition, now, self.lag_ms, self.eligible):
            partition.notify_hw()

    def _ensure_isr_timer(self) -> None:
        if self._isr_timer is not None or self._closed:
            return
        period = max(1, self.lag_ms // 2)
        clock = self.broker.clock
        if clock is not None:
            self._isr_timer = clock.call_at(clock.now_ms() + period, self._isr_tick)
        else:
            self._isr_timer = asyncio.get_running_loop().call_later(period / 1000, self._isr_tick)

    def _isr_tick(self) -> None:
        """Kafka's isr-expiration task: shrink the ISR of every led partition with stuck or slow
        followers."""
        self._isr_timer = None
        if self._closed:
            return
        self.maybe_shrink_isrs()
        if any(p.is_leader and p.followers for p in self.broker.partitions.values()):
            self._ensure_isr_timer()

    def maybe_shrink_isrs(self) -> None:
        now, lag = self.now_ms(), self.lag_ms
        for partition in list(self.broker.partitions.values()):
            if partition.is_leader and partition.followers:
                pending = leadership.shrink_candidate(partition, now, lag)
                if pending is not None:
                    self._submit(partition, pending)
                # A follower out of the ISR that stopped fetching (its log dir failed) holds the
                # high watermark while it counts as caught up; once it no longer does, the high
                # watermark moves on with no fetch or append to recompute it.
                elif leadership.maybe_increment_hw(partition, now, lag, self.eligible):
                    partition.notify_hw()

    def _submit(self, partition: Partition, pending: PendingIsr) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._alter_partition(partition, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def alter_partition_request(self, partition: Partition, pending: PendingIsr) -> AlterPartitionRequest:
        return leadership.alter_partition_request(partition, pending, self.node_id, self.broker_epoch)

    async def _alter_partition(self, partition: Partition, pending: PendingIsr) -> None:
        """Send ``pending`` to the controller until it answers (or the metadata moves on)."""
        while not self._closed and partition.pending_isr is pending:
            channel = self.alter_partition_channel
            if channel is None:
                if not self._no_channel_logged:
                    self._no_channel_logged = True
                    log.warning("no controller channel: the ISR change of %s-%d to %s is not sent", partition.topic,
                                partition.index, pending.new_isr)
                return
            try:
                response = await channel.send(ALTER_PARTITION, self.alter_partition_request(partition, pending))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ControllerUnavailable, a closed connection: try again
                log.info("AlterPartition for %s-%d failed: %s; retrying", partition.topic, partition.index, exc)
                await asyncio.sleep(ALTER_PARTITION_RETRY_MS / 1000)
                continue
            outcome = self._apply_alter_partition_response(partition, pending, response)
            if outcome != "retry":
                return
            await asyncio.sleep(ALTER_PARTITION_RETRY_MS / 1000)

    def _apply_alter_partition_response(self, partition: Partition, pending: PendingIsr, response: AlterPartitionResponse) -> str:
        if response.error_code != ErrorCode.NONE:
            log.info("AlterPartition for %s-%d: %s", partition.topic, partition.index,
                     leadership._name(response.error_code))
            return "retry"
        for t in response.topics:
            if t.topic_id != partition.topic_id:
                continue
            for rp in t.partitions:
                if rp.partition_index != partition.index:
                    continue
                outcome = leadership.apply_alter_partition_result(
                    partition, pending, rp.error_code, rp.leader_epoch, list(rp.isr), rp.partition_epoch)
                if outcome == "applied":
                    if pending.expand:
                        self.isr_expands += 1
                    else:
                        self.isr_shrinks += 1
                if outcome in ("applied", "reset"):
                    leadership.maybe_increment_hw(partition, self.now_ms(), self.lag_ms, self.eligible)
                    partition.notify_hw()
                return outcome
        return "retry"

    # -- KIP-392: the closest replica for a consumer ----------------------------------------------

    def preferred_read_replica(self, partition: Partition, rack: str | None, fetch_offset: int,
                               listener: str) -> int | None:
        """The follower a consumer in ``rack`` should fetch from (Kafka's
        ``findPreferredReadReplica`` with ``RackAwareReplicaSelector``, see
        ``leadership.rack_aware_read_replica``); None: fetch from the leader."""
        if self.broker.config["replica.selector.class"] != RACK_AWARE_SELECTOR or not rack:
            return None
        return leadership.rack_aware_read_replica(self.broker.image, partition, self.node_id, rack, fetch_offset,
                                                  listener, self.now_ms())

    # -- acks=all ------------------------------------------------------------------------------

    async def wait_for_replication(self, partition: Partition, required_offset: int, deadline: Deadline) -> ErrorCode:
        """Wait (Kafka's DelayedProduce) until the high watermark reaches ``required_offset``;
        REQUEST_TIMED_OUT at ``deadline`` (on the loop's clock, or the broker's manual clock)."""
        loop = asyncio.get_running_loop()
        while True:
            if self.broker.partitions.get((partition.topic, partition.index)) is not partition \
                    or self.broker.stopping:
                return ErrorCode.NOT_LEADER_OR_FOLLOWER  # (shutting down: the client retries elsewhere)
            done, error = leadership.replication_check(partition, required_offset)
            if done:
                return error
            if deadline.passed or self._closed:
                return ErrorCode.REQUEST_TIMED_OUT
            fut = loop.create_future()
            partition.add_hw_waiter(fut)
            try:
                await deadline.wait(fut)
            finally:
                partition.remove_hw_waiter(fut)

    def append_from_client(
        self, partition: Partition, records: Buffer | None, version: int, acks: int
, transactional_id: str | None,
        now_ms: int,
    ) -> AppendResult | Awaitable[AppendResult]:
        """Validate and append one partition's batch: an :class:`AppendResult` when it could be done
        at once, else an awaitable of it (validation in the pool, or an earlier append to the same
        partition still pending). Raises/returns :class:`ProduceError` for a rejected batch."""
        config = partition.config
        # Kafka's order: the request's rules (KafkaApis), the leader's min ISR for acks=all
        # (Partition.appendRecordsToLeader), then the log's checks of the batch (UnifiedLog.append)
        found, records = check_request_batch(records, version)
        if acks == -1 and len(partition.isr) < (min_isr := leadership.effective_min_isr(partition)):
            raise ProduceError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {len(partition.isr)} is insufficient to satisfy the min.isr "
                f"requirement of {min_isr} for partition {partition.topic}-{partition.index}",
            )
        header, records = check_batch_header(records, found, config["max.message.bytes"],
                                             f"{partition.topic}-{partition.index}")
        policy = validation_policy(partition, now_ms)
        rebuild = policy.target_codec is not None and policy.target_codec != header.compression
        seen = record_walk.delay_headers_seen
        try:
            outcome: Outcome | None = validate_records(
                records, header, policy, budget_records=INLINE_RECORDS,
                budget_bytes=INLINE_REBUILD_BYTES if rebuild else INLINE_DECOMPRESSED_BYTES)
        except OverBudget:
            # the pool's worker still starting: a batch of moderate size is checked here meanwhile
            outcome = self.validation_pool.check_while_cold(records, header, policy, rebuild)
        order = partition.append_order
        verify = self._needs_remote_verification(partition, header, transactional_id, version)
        if outcome is not None:
            batch = raise_for_outcome(outcome)
            if record_walk.delay_headers_seen != seen:  # kbroker-deliver-* headers: kbroker/delayed.py
                outcome.delay_headers = True
            if not order.busy and not verify:
                if outcome.delay_headers:
                    diverted = self._divert(partition, records, version, acks, transactional_id, now_ms)
                    if diverted is not None:
                        return diverted
                return self._append(partition, header, batch, transactional_id, version, stored=batch is records)
        prev, mine = order.enqueue()  # now, before any later request for this partition is handled
        task = asyncio.ensure_future(self._append_later(
            partition, header, records, policy, outcome, transactional_id, version, prev, mine, verify, acks, now_ms))
        task.add_done_callback(lambda _task: order.done(mine))  # even if cancelled before it ran
        # The append goes ahead even if the client goes away (as in Kafka, a request being handled
        # completes): the handler awaits a shield, and the order queue always moves on.
        return asyncio.shield(task)

    async def _append_later(self, partition: Partition, header: BatchHeader, records: Buffer, policy: Policy,
                            outcome: Outcome | None, transactional_id: str | None, version: int,
                            prev: asyncio.Future[None] | None, mine: asyncio.Future[None], verify: bool = False, acks: int = 1,
                            now_ms: int = 0) -> AppendResult:
        order = partition.append_order
        try:
            guard = None
            if verify:
                assert transactional_id is not None
                guard = await self._verify_remotely(partition, header, transactional_id, version)
            if outcome is None:
                outcome = await self.validation_pool.validate(records, policy)
            if prev is not None:
                await prev
            batch = raise_for_outcome(outcome)
            if outcome.delay_headers:  # kbroker-deliver-* headers: kbroker/delayed.py
                diverted = self._divert(partition, records, version, acks, transactional_id, now_ms)
                if diverted is not None:
                    return await diverted if inspect.isawaitable(diverted) else diverted
            result = self._append(partition, header, batch, transactional_id, version, guard, stored=batch is records)
        finally:
            order.done(mine)
        # (a group-commit fsync is waited for after the next append may go ahead)
        return await result if inspect.isawaitable(result) else result

    def _append(self, partition: Partition, header: BatchHeader, records: Buffer, transactional_id: str | None,
                version: int, guard: VerificationGuard | None = None,
                stored: bool = False) -> AppendResult | Awaitable[AppendResult]:
        """The append of a client batch; an awaitable when ``flush.messages`` is reached: the result
        once a group-commit fsync covers the batch (kbroker/log/group_commit.py). ``stored``: the
        batch is the one ``header`` was parsed from (not rebuilt nor patched by the record checks),
        so the log reads its fields from ``header`` instead of unpacking them again."""
        offline = getattr(partition.log, "offline", None)
        if offline is not None:
            # An offline log (its dir failed, or it loaded corrupt) answers KAFKA_STORAGE_ERROR before
            # the producer state is consulted, as Kafka's getPartitionOrException (HostedPartition.
            # Offline) and UnifiedLog.append (checkIfMemoryMappedBufferClosed, then the sequence
            # check): a batch after a failed one must not be answered OUT_OF_ORDER_SEQUENCE_NUMBER (on
            # which librdkafka bumps its epoch), nor a retry answered as a duplicate.
            # (before the leader check, as getPartitionOrException)
            raise ProduceError(ErrorCode.KAFKA_STORAGE_ERROR, str(offline))
        if not partition.is_leader:  # leadership moved while the batch was being validated
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                               f"Broker {self.node_id} is not the leader of {partition.topic}-{partition.index}")
        producer_state = self.producer_state
        if producer_state is not None and (header.producer_id >= 0 or transactional_id is not None):
            duplicate = producer_state.check_append(partition, header, transactional_id, version, guard)
            if duplicate is not None:
                return duplicate
        plog = partition.log
        try:
            info = plog.append(records, leader_epoch=partition.leader_epoch, sync=False, header=header if stored else None)
        except RecordBatchTooLargeError as exc:
            raise ProduceError(ErrorCode.MESSAGE_TOO_LARGE, str(exc)) from None
        except LogClosedError:
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "The partition is being deleted") from None
        except (LogCorruptedError, OSError) as exc:
            log.error("append to %s-%d failed: %s", partition.topic, partition.index, exc)
            raise ProduceError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from None
        if producer_state is not None and header.producer_id >= 0:
            producer_state.on_append(partition, header, info.first_offset, info.last_offset)
        partition.bytes_in += len(records)
        partition.messages_in += header.records_count
        result = AppendResult(ErrorCode.NONE, info.first_offset, info.log_append_time, last_offset=info.last_offset)
        if plog.flush_due():
            commit = partition.group_commit
            if commit is None:
                commit = partition.group_commit = GroupCommit(lambda: partition.log)
            return self._when_durable(partition, commit.wait(info.last_offset + 1), result)
        self.on_leader_append(partition)
        return result

    async def _when_durable(self, partition: Partition, durable: asyncio.Future[None],
                            result: AppendResult) -> AppendResult:
        """The result of an append once an fsync covers it; the high watermark moves then (as in
        Kafka, where the append returns after its flush)."""
        try:
            await durable
        except (LogClosedError, NotDurableError):
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                               f"{partition.topic}-{partition.index} changed before its fsync") from None
        except (LogError, OSError) as exc:
            log.error("fsync of %s-%d failed: %s", partition.topic, partition.index, exc)
            raise ProduceError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from None
        self.on_leader_append(partition)
        return result

    def partition(self, topic: str, index: int) -> Partition | None:
        """This broker's replica of ``topic``-``index`` (Kafka's ``ReplicaManager.getPartition``)."""
        found: Partition | None = self.broker.partitions.get((topic, index))
        return found

    @staticmethod
    def under_min_isr(partition: Partition) -> bool:
        """The leader's ISR is below ``min.insync.replicas``: an acks=-1 append is refused."""
        return leadership.is_under_min_isr(partition)

    def _divert(self, partition: Partition, records: Buffer, version: int, acks: int, transactional_id: str | None,
                now_ms: int) -> AppendResult | Awaitable[AppendResult] | None:
        """A batch with a delay header goes to the broker's delayed delivery (kbroker/delayed.py),
        if it has one: its result, or None for the normal append."""
        delayed = self.broker.delayed
        if delayed is None or not delayed.enabled:
            return None
        return delayed.divert(partition, records, version, acks, transactional_id, now_ms)

    def append_internal(self, partition: Partition, batch: bytes | bytearray | memoryview) -> int:
        """Append a batch the broker built itself (coordinator records, transaction markers).
        Only the leader writes: a follower's log holds the leader's batches alone.

        As Kafka's appends of origin COORDINATOR (``UnifiedLog.appendAsLeader``: the group
        coordinator's transactional offset commits and their markers, the markers WriteTxnMarkers
        writes), a batch with a producer id updates the partition's producer state: a transactional
        batch opens the producer's transaction (the last stable offset stays at its first offset),
        a COMMIT/ABORT marker closes it (an ABORT's entry goes to the ``.txnindex``). The callers
        have made their own checks (the coordinators' fencing, ``write_marker``'s epochs); no
        sequence is checked, as for Kafka's coordinator appends."""
        if not partition.is_leader:
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                               f"Broker {self.node_id} is not the leader of {partition.topic}-{partition.index}")
        header = parse_header(batch)
        # loaded before the append: a rebuild after it would hold the batch already
        state = partition_state(partition) if header.producer_id >= 0 else None
        info = partition.log.append(batch, leader_epoch=partition.leader_epoch)
        if state is not None:
            apply_appended(partition, state, header, batch, info.first_offset, info.last_offset)
        self.on_leader_append(partition)
        return info.first_offset

    def close(self) -> None:
        if not self._closed and self.broker.partitions:
            self.checkpoint_high_watermarks()
        self._closed = True
        if self._isr_timer is not None:
            self._isr_timer.cancel()
            self._isr_timer = None
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        for task in list(self._tasks):
            task.cancel()
        self.fetchers.close()
        # no append comes after this (the fetchers are closed, the clients' connections before):
        # the producer states are snapshotted at their logs' ends, as Kafka's logs close
        self.producer_housekeeping.close()
        self.validation_pool.close()

    def on_leader_append(self, partition: Partition) -> None:
        # With no followers the ISR is this broker, so everything appended is committed.
        if partition.followers:
            # followers whose held fetch lacks this partition (just made its replicas) fetch again
            self.parked_fetches.wake_uncovering(partition, partition.followers)
        if not partition.followers:
            if partition.is_leader:
                partition.log.high_watermark_to_end()
                partition.notify_hw()
                return
        elif leadership.maybe_increment_hw(partition, self.now_ms(), self.lag_ms, self.eligible):
            partition.notify_hw()
            return
        partition.notify()
