"""The transaction coordinator: transactional ids, their producer ids and epochs, and markers.

The class is split by concern: ``txn_coordinator_core`` (state, ``__transaction_state`` loading,
replicated writes, request checks), ``txn_markers`` (markers and completion) and this module
(lifecycle and leadership, the transactional APIs, timeouts and expirations, admin views).

State lives in the compacted internal topic ``__transaction_state`` (see txn_log.py), created
lazily as in Kafka (``transaction.state.log.num.partitions`` partitions): by the first
FindCoordinator for a transactional id, which answers COORDINATOR_NOT_AVAILABLE meanwhile, or by
the first transactional request coming without one; a restart loads the existing topic. Every
change is made the same way: build the next :class:`TxnMetadata`, append its record to the id's
partition, then *replay* the record into memory. Start-up replays each partition from its start
through the same function, so normal operation and recovery share one code path.

Transitions (Kafka's TransactionMetadata, Transactions V1)::

    Empty/CompleteCommit/CompleteAbort --AddPartitions/AddOffsets--> Ongoing
    Ongoing --EndTxn(commit)--> PrepareCommit --markers--> CompleteCommit
    Ongoing --EndTxn(abort) / timeout / re-InitProducerId--> PrepareAbort --markers--> CompleteAbort
    Empty/Complete* --InitProducerId--> Empty (epoch + 1, or a new producer id when exhausted)

Transactions V2 (KIP-890 part 2: Produce v12, EndTxn v5, TxnOffsetCommit v5): the first
transactional batch in a partition adds the partition (no AddPartitionsToTxn), TxnOffsetCommit
adds the group's offsets partition (no AddOffsetsToTxn), and every EndTxn bumps the epoch (the
Prepare record carries the new epoch, markers are written with it, EndTxn returns it).

With one node every partition is local, so markers are written synchronously by the request
that ends the transaction: EndTxn answers after the Complete* record, and never has to return
CONCURRENT_TRANSACTIONS. A Prepare* record found at start-up means the broker stopped between
the two records: its markers are (re)written and the transaction completed before serving.
(Writing a marker twice is harmless: the second finds no open transaction.)

A periodic task aborts Ongoing transactions older than their timeout (bumping the epoch, which
fences the producer) and expires idle transactional ids (``transactional.id.expiration.ms``,
tombstones). The partitions' producer state is not the coordinator's: its producer-id expiration
and snapshots are the replica manager's (kbroker/replication/producer_housekeeping.py), as they are
Kafka's log layer's.

The epoch fence (InitProducerId on an Ongoing transaction, or its timeout) is Kafka's
PrepareEpochFence: never a logged state, the abort is logged as PrepareAbort with the bumped epoch
(as transaction.version 2 or 1 bumps it), and InitProducerId answers CONCURRENT_TRANSACTIONS.

Deliberately left out: KIP-939 two-phase commit (InitProducerId v6 ``enable2Pc``/``keepPreparedTxn``
are ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kbroker.coordinator.txn_coordinator_core import (
    OFFSETS_TOPIC,
    TimerHandle,
    TxnClock,
    TxnError,
    log,
)
from kbroker.coordinator.txn_log import MAX_EPOCH, TRANSACTION_STATE_TOPIC, TxnMetadata, TxnState
from kbroker.coordinator.txn_markers import TxnMarkers
from kbroker.replication.producer_manager import partition_state
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_state import ProducerEntry

__all__ = ["OFFSETS_TOPIC", "TimerHandle", "TransactionCoordinator", "TxnClock", "TxnError"]


class TransactionCoordinator(TxnMarkers):
    """The transaction coordinator: lifecycle and leadership, the transactional APIs
    (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and the produce-side checks),
    the periodic timeouts and expirations, and the admin views."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        # The topic is created on first use; one that exists (a restart) is loaded now.
        # Only the partitions this broker leads (Kafka's onElection); the others load when their
        # leadership comes here (on_partition_leadership), as the broker applies the metadata.
        topic = self.broker.image.topic(TRANSACTION_STATE_TOPIC)
        for index in sorted(topic.partitions) if topic is not None else ():
            partition = self.broker.partition(TRANSACTION_STATE_TOPIC, index)
            if partition is not None and partition.is_leader:
                self._load_partition(partition)
                self.led_partitions.add(index)
        self.loaded = True
        for txn in list(self.txns.values()):
            if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                log.info("completing transaction %r (%s) found at start-up", txn.transactional_id, txn.state.display)
                self._spawn(self._write_markers_and_complete(txn))
        if self.clock is None:
            self._task = asyncio.get_running_loop().create_task(self._periodic())
        else:  # the same checks, each on the manual clock at its interval
            self._clock_timers = [
                self.clock.call_every(self._cfg("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
                                      self._guarded(self.abort_timed_out)),
                self.clock.call_every(self._cfg("transaction.remove.expired.transaction.cleanup.interval.ms"),
                                      self._guarded(self.expire_transactional_ids)),
            ]

    def _guarded(self, check: Callable[[], Awaitable[object]]) -> Callable[[], None]:
        """A manual-clock timer running ``check`` (a coroutine function: it writes the transaction
        log and waits for the write's replication) as a task on the broker's loop."""
        def run() -> None:
            async def guarded() -> None:
                try:
                    await check()
                except Exception:  # noqa: BLE001 - a failed check must not stop the clock's others
                    log.exception("transaction coordinator periodic task failed")
            self._spawn(guarded())
        return run

    # -- leadership of __transaction_state partitions (Kafka's TransactionCoordinator.onElection/onResignation)

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        """The broker's hook: this broker became (or stopped being) the leader of a partition."""
        if topic != TRANSACTION_STATE_TOPIC or not self.loaded:
            return
        if leader:
            self.on_election(index)
        else:
            self.on_resignation(index)

    def on_election(self, index: int) -> None:
        """Load the transactions of ``__transaction_state-<index>`` from the log and complete those
        found prepared (their markers written, as Kafka's coordinator does after loading)."""
        partition = self.broker.partition(TRANSACTION_STATE_TOPIC, index)
        if partition is None or index in self.led_partitions:
            return
        self._load_partition(partition)
        self.led_partitions.add(index)
        loaded = [t for tid, t in self.txns.items() if self.partition_for(tid) == index]
        log.info("loaded %d transactional ids of %s-%d (now its leader)", len(loaded), TRANSACTION_STATE_TOPIC,
                 index)
        for txn in loaded:
            if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                log.info("completing transaction %r (%s) found on election", txn.transactional_id,
                         txn.state.display)
                self._spawn(self._write_markers_and_complete(txn))

    def on_resignation(self, index: int) -> None:
        """Forget the transactions of a partition this broker no longer leads (NOT_COORDINATOR)."""
        if index not in self.led_partitions:
            return
        self.led_partitions.discard(index)
        dropped = [tid for tid in self.txns if self.partition_for(tid) == index]
        for tid in dropped:
            self.txns.pop(tid, None)
        log.info("unloaded %d transactional ids of %s-%d (no longer its leader)", len(dropped),
                 TRANSACTION_STATE_TOPIC, index)

    async def stop(self) -> None:
        for timer in self._clock_timers:
            timer.cancel()
        self._clock_timers = []
        for task in list(self._marker_tasks):
            task.cancel()
        await asyncio.gather(*self._marker_tasks, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- InitProducerId --------------------------------------------------------------------

    async def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int = -1,
                         producer_epoch: int = -1) -> tuple[int, int]:
        """Returns (producer id, epoch) or raises TxnError.

        As Kafka 4.4's TransactionCoordinator.handleInitProducerId / prepareInitProducerIdTransit:
        a request naming a producer id and epoch (KIP-360, a producer recovering from an error)
        must name the id's producer id; in a completed state its epoch must be the current one
        (bumped, the old one remembered as the last epoch) or that last epoch (a retry of a bump
        that succeeded: the current epoch, not bumped again), else PRODUCER_FENCED. A request
        without one (a new producer instance) bumps the epoch and forgets the last one, fencing
        every older instance. An Ongoing transaction is aborted with its epoch bumped (the fence,
        :meth:`_abort_with_fence`) and CONCURRENT_TRANSACTIONS answered once its PrepareAbort
        is written, even when its markers are already written: the client retries, and its retry
        bumps the epoch a second time (or takes a new producer id when the fence exhausted the
        epochs). Under transaction.version 2 the fenced epoch becomes the last epoch, so a
        producer that asked for a bump gets the fenced epoch on its retry while a new instance
        gets one more. Prepare* answers CONCURRENT_TRANSACTIONS."""
        if transactional_id and self.loaded:  # the first use of __transaction_state may create it
            await self.await_topic()
        self._check_ready(transactional_id)
        if timeout_ms <= 0 or timeout_ms > self._cfg("transaction.max.timeout.ms"):
            raise TxnError(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        txn = self.txns.get(transactional_id)
        if transactional_id in self._pending:
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        if txn is None:
            pid = self.broker.producer_ids.allocate()
            new = TxnMetadata(transactional_id, pid, 0, timeout_ms, TxnState.EMPTY, set(), -1, self._now_ms())
            await self._write(new)
            return pid, 0
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)  # (Kafka: pending, checked first)
        expected = (producer_id, producer_epoch) if producer_id >= 0 else None
        if expected is not None and not (
            txn.producer_epoch < 0 or producer_id == txn.producer_id
            or producer_id == txn.previous_producer_id and producer_epoch >= MAX_EPOCH - 1
        ):
            raise TxnError(ErrorCode.PRODUCER_FENCED)
        if txn.state == TxnState.ONGOING:
            # Fence the producer that has the transaction and abort it (Kafka's
            # PrepareEpochFence); the fenced epoch is never returned: the caller retries.
            await self._abort_with_fence(txn)
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        new = self._next_epoch(txn, expected)
        new = new.copy(state=TxnState.EMPTY, partitions=set(), timeout_ms=timeout_ms, start_ms=-1,
                       last_update_ms=self._now_ms(), next_producer_id=-1, next_producer_epoch=-1)
        await self._write(new)
        return new.producer_id, new.producer_epoch

    def _next_epoch(self, txn: TxnMetadata, expected: tuple[int, int] | None) -> TxnMetadata:
        """The producer id and epoch InitProducerId gives in a completed state (Kafka's
        prepareIncrementProducerEpoch, or prepareProducerIdRotation once the epochs are exhausted)."""
        epoch = txn.producer_epoch
        if epoch >= MAX_EPOCH - 1 and (expected is None or expected[1] == epoch):  # exhausted: a new id
            return txn.copy(producer_id=self.broker.producer_ids.allocate(), producer_epoch=0,
                            previous_producer_id=txn.producer_id,
                            last_producer_epoch=epoch if expected is not None else -1)
        if expected is None:  # a new instance: fences every older one, including a retrying one
            return txn.copy(producer_epoch=epoch + 1, previous_producer_id=-1, last_producer_epoch=-1)
        if epoch < 0 or expected[1] == epoch:  # the producer recovering: bumped, the old epoch kept
            return txn.copy(producer_epoch=epoch + 1, previous_producer_id=-1, last_producer_epoch=epoch)
        if expected[1] == txn.last_producer_epoch:  # the retry of a bump (or fence) that succeeded
            return txn.copy()
        log.info("InitProducerId for %r with epoch %d: the current epoch is %d, the last %d: fenced",
                 txn.transactional_id, expected[1], epoch, txn.last_producer_epoch)
        raise TxnError(ErrorCode.PRODUCER_FENCED)

    async def _abort_with_fence(self, txn: TxnMetadata) -> TxnMetadata:
        """Abort an Ongoing transaction with its epoch bumped, so its producer's later requests are
        fenced: Kafka's prepareFenceProducerEpoch then endTransaction(ABORT) on the server's
        behalf, at the finalized ``transaction.version`` (InitProducerId on an Ongoing
        transaction, and the timed-out transactions' abort).

        Transactions V2: PrepareAbort with epoch + 1 (none past Short.MAX_VALUE) and the fenced
        epoch as the last epoch; when the epochs are exhausted a new producer id is chosen now and
        taken at completion. Transactions V1: the epoch + 1 (the same again after a fence whose
        write failed) takes effect in memory before the write, the last epoch forgotten, so the
        producer is fenced even if the PrepareAbort record cannot be written."""
        if txn.transactional_id in self._pending:  # (Kafka: a pending transition, the fence waits)
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        epoch = txn.producer_epoch
        now = self._now_ms()
        if self.broker.image.features.get("transaction.version", 0) >= 2:
            prepared = txn.copy(producer_epoch=min(epoch + 1, MAX_EPOCH), state=TxnState.PREPARE_ABORT,
                                last_update_ms=now, last_producer_epoch=epoch, client_txn_version=2)
            if epoch >= MAX_EPOCH - 1:
                prepared.next_producer_id = self.broker.producer_ids.allocate()
                prepared.next_producer_epoch = 0
            await self._write(prepared)
        else:
            fenced = txn.copy(producer_epoch=epoch if txn.failed_epoch_fence or epoch >= MAX_EPOCH else epoch + 1,
                              last_producer_epoch=-1)
            self.txns[txn.transactional_id] = fenced
            prepared = fenced.copy(state=TxnState.PREPARE_ABORT, last_update_ms=now, client_txn_version=0,
                                   failed_epoch_fence=False)
            try:
                await self._write(prepared)
            except TxnError as exc:
                if self.txns.get(txn.transactional_id) is fenced:
                    fenced.failed_epoch_fence = True
                    log.warning("the epoch fence of %r failed (%s): epoch %d kept in memory, not returned",
                                txn.transactional_id, exc.code.name, fenced.producer_epoch)
                raise
        return await self._complete_soon(prepared)

    # -- AddPartitionsToTxn / AddOffsetsToTxn -----------------------------------------------

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: list[tuple[str, int]], client_txn_version: int | None = None) -> None:
        self._check_ready(transactional_id)
        txn = self._current(transactional_id, producer_id, producer_epoch)
        wanted = set(partitions)
        if txn.state == TxnState.ONGOING and wanted <= txn.partitions:
            return
        now = self._now_ms()
        start = txn.start_ms if txn.state == TxnState.ONGOING else now
        new = txn.copy(state=TxnState.ONGOING, partitions=txn.partitions | wanted, start_ms=start, last_update_ms=now)
        if client_txn_version is not None:
            new.client_txn_version = client_txn_version
        await self._write(new)

    async def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str,
                    client_txn_version: int | None = None) -> None:
        index = self._offsets_partition(group_id)
        await self.add_partitions(transactional_id, producer_id, producer_epoch, [(OFFSETS_TOPIC, index)],
                                  client_txn_version)

    def check_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str) -> None:
        """TxnOffsetCommit: the group's offsets partition must be part of the producer's transaction."""
        self._check_ready(transactional_id)
        txn = self._current(transactional_id, producer_id, producer_epoch)
        index = self._offsets_partition(group_id)
        if txn.state != TxnState.ONGOING or (OFFSETS_TOPIC, index) not in txn.partitions:
            raise TxnError(ErrorCode.INVALID_TXN_STATE)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        """AddPartitionsToTxn VerifyOnly (v4+), as Kafka 4's coordinator answers it: NONE for a partition
        in the transaction, TRANSACTION_ABORTABLE for one that is not; NOT_COORDINATOR or
        COORDINATOR_LOAD_IN_PROGRESS from a broker that does not (yet) coordinate the id (Kafka's
        getTransactionState), which the partition leader turns into a retriable error for the
        producer, where an answer from its memory would have been INVALID_PRODUCER_ID_MAPPING."""
        txn = self.txns.get(transactional_id)
        try:
            self._check_ready(transactional_id)
        except TxnError as exc:
            return dict.fromkeys(partitions, exc.code)
        if txn is None or txn.producer_id != producer_id:
            code = ErrorCode.INVALID_PRODUCER_ID_MAPPING
        elif txn.producer_epoch != producer_epoch:
            code = ErrorCode.PRODUCER_FENCED
        elif txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            code = ErrorCode.CONCURRENT_TRANSACTIONS
        else:
            return {tp: ErrorCode.NONE if tp in txn.partitions else ErrorCode.TRANSACTION_ABORTABLE
                    for tp in partitions}
        return dict.fromkeys(partitions, code)

    def _owner_error(self, transactional_id: str, producer_id: int, producer_epoch: int) -> ErrorCode:
        """Produce-side check that the producer still owns the transactional id (NONE if it does)."""
        txn = self.txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return ErrorCode.INVALID_TXN_STATE
        if producer_epoch < txn.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if producer_epoch > txn.producer_epoch:
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    def verify_partition(self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
                         index: int) -> ErrorCode:
        """Produce-side verification: is ``topic-index`` part of this producer's ongoing transaction?"""
        code = self._owner_error(transactional_id, producer_id, producer_epoch)
        if code != ErrorCode.NONE:
            return code
        txn = self.txns[transactional_id]
        if txn.state != TxnState.ONGOING or (topic, index) not in txn.partitions:
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    async def add_partition_from_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                         topic: str, index: int) -> ErrorCode:
        """Transactions V2 (Produce v12+): the first batch of a transaction in a partition adds it
        (answered once the Ongoing record is replicated, as every transaction log write)."""
        try:
            self._check_ready(transactional_id)
        except TxnError as exc:
            return exc.code
        code = self._owner_error(transactional_id, producer_id, producer_epoch)
        if code != ErrorCode.NONE:
            return code
        try:
            await self.add_partitions(transactional_id, producer_id, producer_epoch, [(topic, index)],
                                      client_txn_version=2)
        except TxnError as exc:
            return exc.code
        return ErrorCode.NONE

    # -- EndTxn ----------------------------------------------------------------------------

    async def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                v2: bool = False) -> tuple[int, int]:
        """Ends the transaction; returns the producer id and epoch to use next.

        Transactions V2 (EndTxn v5) bumps the epoch with every transaction end: the markers carry
        the new epoch, so a late batch of the finished transaction is fenced, and a retried EndTxn
        is recognised by its epoch being one below the current one.
        """
        self._check_ready(transactional_id)
        txn = self.txns.get(transactional_id)
        if txn is None:
            raise TxnError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        preparing = txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)
        if v2 and (preparing or transactional_id in self._pending):
            # The markers are on their way (Kafka: a pending Complete* transition, checked before
            # anything else under Transactions V2; EndTxn v0-v4 checks the producer id and epoch
            # first, below): the producer retries, then gets the answer for the completed state
            # (a Transactions V2 producer may send its next EndTxn, at the bumped epoch, by then).
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        matching_complete = (txn.state == TxnState.COMPLETE_COMMIT and commit
                             or txn.state == TxnState.COMPLETE_ABORT and not commit)
        if v2 and txn.state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT) and (
            producer_id == txn.producer_id and producer_epoch == txn.producer_epoch - 1
            or producer_id == txn.previous_producer_id and producer_epoch == MAX_EPOCH - 1 and txn.producer_epoch == 0
        ):
            # A retry of the EndTxn that completed it: the same outcome is answered again, the
            # other is an invalid transition (Kafka's table in endTransaction: not PRODUCER_FENCED).
            if matching_complete:
                return txn.producer_id, txn.producer_epoch
            raise TxnError(ErrorCode.INVALID_TXN_STATE)
        if txn.producer_id != producer_id:
            raise TxnError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if txn.producer_epoch != producer_epoch:
            raise TxnError(ErrorCode.PRODUCER_FENCED)
        if transactional_id in self._pending or preparing:
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)  # (either outcome: Kafka's pending check)
        state = txn.state
        if state == TxnState.ONGOING or v2 and not commit and txn.completed:
            # (A V2 producer may abort a transaction whose partitions never reached us: it
            # still gets its epoch bumped.)
            prepared = txn.copy(state=TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT,
                                last_update_ms=self._now_ms())
            if state != TxnState.ONGOING:
                prepared = prepared.copy(partitions=set())
            if v2:
                prepared = self._bump_epoch(prepared)
            await self._write(prepared)
            # (Once the Prepare record is replicated the outcome is decided: the markers and the
            # Complete record follow, retried by this coordinator or redone by the next one.)
            done = await self._complete_soon(prepared)
            if done.next_producer_id >= 0:  # (V2, epochs exhausted: the id taken at completion)
                return done.next_producer_id, done.next_producer_epoch
            return done.producer_id, done.producer_epoch
        if matching_complete and not v2:
            return txn.producer_id, txn.producer_epoch  # a retry of the EndTxn that completed it
        raise TxnError(ErrorCode.INVALID_TXN_STATE)

    def _bump_epoch(self, txn: TxnMetadata) -> TxnMetadata:
        """Transactions V2 (Kafka's prepareAbortOrCommit): epoch + 1 (not past Short.MAX_VALUE);
        when the epochs are exhausted (the current one is Short.MAX_VALUE - 1), the next producer
        id is chosen now (logged with the Prepare record, whose markers carry Short.MAX_VALUE) and
        taken at epoch 0 when the transaction completes."""
        bumped = txn.copy(producer_epoch=min(txn.producer_epoch + 1, MAX_EPOCH), client_txn_version=2,
                          last_producer_epoch=txn.producer_epoch)
        if txn.producer_epoch >= MAX_EPOCH - 1:
            bumped.next_producer_id = self.broker.producer_ids.allocate()
            bumped.next_producer_epoch = 0
        return bumped

    # -- periodic work ---------------------------------------------------------------------

    async def _periodic(self) -> None:
        """The transaction coordinator's two scheduled tasks in Kafka: the abort of timed-out
        transactions (``transaction.abort.timed.out.transaction.cleanup.interval.ms``) and
        transactional-id expiration (``transaction.remove.expired.transaction.cleanup.interval.ms``)."""
        abort_every = self._cfg("transaction.abort.timed.out.transaction.cleanup.interval.ms") / 1000
        remove_every = self._cfg("transaction.remove.expired.transaction.cleanup.interval.ms") / 1000
        loop = asyncio.get_running_loop()
        next_remove = loop.time() + remove_every
        while True:
            await asyncio.sleep(min(abort_every, remove_every))
            try:
                await self.abort_timed_out()
                if loop.time() >= next_remove:
                    next_remove = loop.time() + remove_every
                    await self.expire_transactional_ids()
            except Exception:  # noqa: BLE001 - keep the task alive
                log.exception("transaction coordinator periodic task failed")

    async def abort_timed_out(self, now_ms: int | None = None) -> list[str]:
        now = self._now_ms() if now_ms is None else now_ms
        aborted = []
        for txn in list(self.txns.values()):
            if txn.state == TxnState.ONGOING and txn.start_ms >= 0 and now > txn.start_ms + txn.timeout_ms:
                log.info("aborting transaction %r of producer %d: timed out after %d ms", txn.transactional_id,
                         txn.producer_id, txn.timeout_ms)
                try:
                    await self._abort_with_fence(txn)
                except TxnError as exc:
                    log.warning("cannot abort timed-out transaction %r: %s", txn.transactional_id, exc)
                    continue
                aborted.append(txn.transactional_id)
        return aborted

    async def expire_transactional_ids(self, now_ms: int | None = None) -> list[str]:
        now = self._now_ms() if now_ms is None else now_ms
        expiration = self._cfg("transactional.id.expiration.ms")
        doomed = [t.transactional_id for t in self.txns.values()
                  if t.completed and t.last_update_ms >= 0 and now - t.last_update_ms >= expiration]
        expired = []
        for tid in doomed:
            log.info("transactional id %r expired", tid)
            try:
                await self._write(None, tid)
            except TxnError as exc:
                log.info("cannot expire transactional id %r: %s", tid, exc.code.name)
                continue
            expired.append(tid)
        return expired

    # -- admin views -----------------------------------------------------------------------

    def list_transactions(self, states: list[str], producer_ids: list[int], duration_ms: int,
                          pattern: str | None) -> list[TxnMetadata]:
        now = self._now_ms()
        regex = re.compile(pattern) if pattern else None
        out = []
        for txn in self.txns.values():
            if states and txn.state.display not in states:
                continue
            if producer_ids and txn.producer_id not in producer_ids:
                continue
            if txn.state == TxnState.DEAD or duration_ms >= 0 and now - txn.start_ms <= duration_ms:
                continue
            if regex is not None and not regex.fullmatch(txn.transactional_id):
                continue
            out.append(txn)
        return sorted(out, key=lambda t: t.transactional_id)

    def producers_of(self, partition: Partition) -> list[tuple[ProducerEntry, int]]:
        """DescribeProducers: (entry, current transaction start offset) of a partition's producers."""
        state = partition_state(partition)
        return [(e, e.txn_first_offset) for e in state.producers.values()]
