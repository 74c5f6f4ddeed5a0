"""The transaction coordinator façade on its own (no cluster): Kafka 4.4's transaction state
machine as InitProducerId, AddPartitionsToTxn and EndTxn drive it, markers written by a fake
marker writer, the transaction timeout on a manual clock (nothing sleeps). The broker around it is
tests/unit/txn_fakes.py; the in-process cluster tests are tests/replication/test_txn_*."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from kbroker.coordinator.txn_coordinator import TransactionCoordinator, TxnError
from kbroker.coordinator.txn_log import TRANSACTION_STATE_TOPIC, TxnState, decode_key, decode_value
from kbroker.log import LogClosedError, RecordBatchTooLargeError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import iter_records
from tests.unit.txn_fakes import NODE_ID, START_MS, FakeTxnBroker, settle, started_coordinator

TID = "txn-a"
TIMEOUT_MS = 60_000


def logged_states(broker: FakeTxnBroker) -> list[str]:
    """The states of the records appended to ``__transaction_state``, in order."""
    out = []
    for batch in broker.replica_manager.appended:
        for record in iter_records(batch):
            assert record.key is not None
            tid = decode_key(record.key)
            assert tid is not None
            out.append("tombstone" if record.value is None else decode_value(tid, record.value).state.display)
    return out


async def fails(code: ErrorCode, call: Awaitable[object]) -> None:
    with pytest.raises(TxnError) as info:
        await call
    assert info.value.code == code, info.value.code.name


async def ongoing(coordinator: TransactionCoordinator, broker: FakeTxnBroker, *, replicated: bool = True,
                  ) -> tuple[int, int]:
    """A producer with an Ongoing transaction on ``data-0`` (replicated: markers asynchronous)."""
    broker.add_partition("data", 0, followers=[2] if replicated else None)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    await coordinator.add_partitions(TID, pid, epoch, [("data", 0)])
    return pid, epoch


# -- InitProducerId --------------------------------------------------------------------------

async def test_init_producer_id_gives_a_new_id_at_epoch_zero_logged_empty() -> None:
    coordinator, broker, _clock = started_coordinator()
    assert await coordinator.init_producer_id(TID, TIMEOUT_MS) == (5000, 0)
    txn = coordinator.txns[TID]
    assert (txn.state, txn.timeout_ms) == (TxnState.EMPTY, TIMEOUT_MS)
    assert logged_states(broker) == ["Empty"]


async def test_re_init_bumps_the_epoch_and_fences_the_old_one() -> None:
    coordinator, broker, _clock = started_coordinator()
    broker.add_partition("data", 0)
    pid, old = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    assert await coordinator.init_producer_id(TID, TIMEOUT_MS) == (pid, old + 1)
    # The old instance's transactional requests are fenced (Kafka: PRODUCER_FENCED) ...
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.add_partitions(TID, pid, old, [("data", 0)]))
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.end_txn(TID, pid, old, commit=False))
    # ... its KIP-360 re-init naming the stale epoch too, and its produce to a partition gets
    # INVALID_PRODUCER_EPOCH (the produce-side check).
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.init_producer_id(TID, TIMEOUT_MS, pid, old))
    assert coordinator.verify_partition(TID, pid, old, "data", 0) == ErrorCode.INVALID_PRODUCER_EPOCH
    # The new epoch works.
    await coordinator.add_partitions(TID, pid, old + 1, [("data", 0)])
    assert coordinator.txns[TID].state == TxnState.ONGOING


async def test_kip360_re_init_with_the_current_epoch_bumps_and_its_retry_gets_the_same() -> None:
    coordinator, _broker, _clock = started_coordinator()
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    bumped = await coordinator.init_producer_id(TID, TIMEOUT_MS, pid, epoch)
    assert bumped == (pid, epoch + 1)
    assert await coordinator.init_producer_id(TID, TIMEOUT_MS, pid, epoch) == bumped  # the retry
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.init_producer_id(TID, TIMEOUT_MS, pid + 1, epoch))


async def test_init_producer_id_refuses_a_timeout_over_the_maximum() -> None:
    coordinator, broker, _clock = started_coordinator()
    await fails(ErrorCode.INVALID_TRANSACTION_TIMEOUT,
                coordinator.init_producer_id(TID, broker.config["transaction.max.timeout.ms"] + 1))
    await fails(ErrorCode.INVALID_TRANSACTION_TIMEOUT, coordinator.init_producer_id(TID, 0))
    assert TID not in coordinator.txns


# -- AddPartitionsToTxn -> Ongoing -------------------------------------------------------------

async def test_add_partitions_makes_the_transaction_ongoing_from_the_clock_time() -> None:
    coordinator, broker, clock = started_coordinator()
    broker.add_partition("data", 0)
    broker.add_partition("data", 1)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    clock.advance(500)
    await coordinator.add_partitions(TID, pid, epoch, [("data", 0)])
    clock.advance(500)
    await coordinator.add_partitions(TID, pid, epoch, [("data", 1)])
    txn = coordinator.txns[TID]
    assert txn.state == TxnState.ONGOING
    assert txn.partitions == {("data", 0), ("data", 1)}
    assert txn.start_ms == START_MS + 500  # the transaction's start, not the last addition
    assert logged_states(broker) == ["Empty", "Ongoing", "Ongoing"]
    await fails(ErrorCode.INVALID_PRODUCER_ID_MAPPING, coordinator.add_partitions(TID, pid + 1, epoch, [("data", 0)]))


# -- EndTxn -> Prepare* -> Complete* once the markers are written ----------------------------

@pytest.mark.parametrize("commit", [True, False])
async def test_end_txn_prepares_then_completes_once_the_markers_are_written(commit: bool) -> None:
    coordinator, broker, _clock = started_coordinator()
    markers = broker.replica_manager.producer_state
    pid, epoch = await ongoing(coordinator, broker)
    markers.hold = True
    prepare, complete = ((TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT) if commit
                         else (TxnState.PREPARE_ABORT, TxnState.COMPLETE_ABORT))
    assert await coordinator.end_txn(TID, pid, epoch, commit) == (pid, epoch)
    await settle()
    assert coordinator.txns[TID].state == prepare
    assert markers.held == 1 and markers.markers == []
    markers.release()
    await settle()
    assert markers.markers == [("data", 0, pid, epoch, commit)]
    txn = coordinator.txns[TID]
    assert (txn.state, txn.partitions) == (complete, set())
    assert logged_states(broker) == ["Empty", "Ongoing", prepare.display, complete.display]


async def test_single_replica_partitions_complete_before_end_txn_answers() -> None:
    coordinator, broker, _clock = started_coordinator()
    pid, epoch = await ongoing(coordinator, broker, replicated=False)
    await coordinator.end_txn(TID, pid, epoch, commit=True)
    assert coordinator.txns[TID].state == TxnState.COMPLETE_COMMIT
    assert broker.replica_manager.producer_state.markers == [("data", 0, pid, epoch, True)]


async def test_end_txn_v2_bumps_the_epoch_and_its_retry_gets_the_same_answer() -> None:
    coordinator, broker, _clock = started_coordinator()
    pid, epoch = await ongoing(coordinator, broker, replicated=False)
    assert await coordinator.end_txn(TID, pid, epoch, commit=True, v2=True) == (pid, epoch + 1)
    # The markers carry the bumped epoch, fencing late batches of the finished transaction.
    assert broker.replica_manager.producer_state.markers == [("data", 0, pid, epoch + 1, True)]
    assert await coordinator.end_txn(TID, pid, epoch, commit=True, v2=True) == (pid, epoch + 1)
    # (The retry asking for the other outcome: an invalid transition, as in Kafka's table below.)
    await fails(ErrorCode.INVALID_TXN_STATE, coordinator.end_txn(TID, pid, epoch, commit=False, v2=True))
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.end_txn(TID, pid, epoch - 1, commit=True, v2=True))


async def test_requests_while_the_markers_are_pending_answer_concurrent_transactions() -> None:
    coordinator, broker, _clock = started_coordinator()
    markers = broker.replica_manager.producer_state
    pid, epoch = await ongoing(coordinator, broker)
    markers.hold = True
    await coordinator.end_txn(TID, pid, epoch, commit=True)
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.end_txn(TID, pid, epoch, commit=True))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.end_txn(TID, pid, epoch, commit=False))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.add_partitions(TID, pid, epoch, [("data", 0)]))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.init_producer_id(TID, TIMEOUT_MS))
    markers.release()
    await settle()
    # Completed: the retry of the same EndTxn succeeds, the other outcome is refused.
    assert await coordinator.end_txn(TID, pid, epoch, commit=True) == (pid, epoch)
    await fails(ErrorCode.INVALID_TXN_STATE, coordinator.end_txn(TID, pid, epoch, commit=False))


async def test_a_request_while_a_log_write_replicates_answers_concurrent_transactions() -> None:
    coordinator, broker, _clock = started_coordinator()
    broker.add_partition("data", 0)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    broker.replica_manager.hold = True
    adding = asyncio.get_running_loop().create_task(coordinator.add_partitions(TID, pid, epoch, [("data", 0)]))
    await settle()
    assert broker.replica_manager.waiting == 1
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.end_txn(TID, pid, epoch, commit=True))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.init_producer_id(TID, TIMEOUT_MS))
    assert coordinator.txns[TID].state == TxnState.EMPTY  # not in effect before it is replicated
    broker.replica_manager.replicate()
    await adding
    assert coordinator.txns[TID].state == TxnState.ONGOING


async def test_end_txn_without_a_transaction_is_an_invalid_state() -> None:
    coordinator, broker, _clock = started_coordinator()
    await fails(ErrorCode.INVALID_PRODUCER_ID_MAPPING, coordinator.end_txn(TID, 1, 0, commit=True))
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    await fails(ErrorCode.INVALID_TXN_STATE, coordinator.end_txn(TID, pid, epoch, commit=True))
    await fails(ErrorCode.INVALID_TXN_STATE, coordinator.end_txn(TID, pid, epoch, commit=False))
    await fails(ErrorCode.INVALID_TXN_STATE, coordinator.end_txn(TID, pid, epoch, commit=True, v2=True))
    assert logged_states(broker) == ["Empty"]


# -- the transaction timeout on the manual clock -----------------------------------------------

async def test_the_timeout_aborts_an_ongoing_transaction_and_fences_its_producer() -> None:
    coordinator, broker, clock = started_coordinator()
    pid, epoch = await ongoing(coordinator, broker, replicated=False)
    interval = broker.config["transaction.abort.timed.out.transaction.cleanup.interval.ms"]
    clock.advance(TIMEOUT_MS)  # the checks so far find it not yet past its timeout
    await settle()
    assert coordinator.txns[TID].state == TxnState.ONGOING
    clock.advance(interval)
    await settle()
    txn = coordinator.txns[TID]
    assert txn.state == TxnState.COMPLETE_ABORT
    assert txn.producer_epoch == epoch + 1  # the fence (transaction.version 2)
    assert broker.replica_manager.producer_state.markers == [("data", 0, pid, epoch + 1, False)]
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.end_txn(TID, pid, epoch, commit=True))
    await coordinator.stop()


async def test_init_producer_id_on_an_ongoing_transaction_aborts_it_and_answers_concurrent() -> None:
    coordinator, broker, _clock = started_coordinator()
    pid, epoch = await ongoing(coordinator, broker, replicated=False)
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.init_producer_id(TID, TIMEOUT_MS))
    assert coordinator.txns[TID].state == TxnState.COMPLETE_ABORT
    assert broker.replica_manager.producer_state.markers == [("data", 0, pid, epoch + 1, False)]
    # The client's retry gets one more epoch; the fenced producer is refused.
    assert await coordinator.init_producer_id(TID, TIMEOUT_MS) == (pid, epoch + 2)
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.add_partitions(TID, pid, epoch, [("data", 0)]))


# Kafka 4.4's table for EndTxn under Transactions V2 (TransactionCoordinator.endTransaction) in the
# states where no transaction is open: "retry" sends the epoch before the last EndTxn's bump,
# "current" the epoch the coordinator has. EB: accepted, the epoch bumped (an abort with no
# partitions); NONE: the retry answered with the current epoch, nothing written.
EB = "EB"
V2_TABLE = [
    # state,            commit, retry,  outcome
    ("Empty",          False, True,  ErrorCode.PRODUCER_FENCED),
    ("Empty",          False, False, EB),
    ("Empty",          True,  True,  ErrorCode.PRODUCER_FENCED),
    ("Empty",          True,  False, ErrorCode.INVALID_TXN_STATE),
    ("CompleteAbort",  False, True,  ErrorCode.NONE),
    ("CompleteAbort",  False, False, EB),
    ("CompleteAbort",  True,  True,  ErrorCode.INVALID_TXN_STATE),
    ("CompleteAbort",  True,  False, ErrorCode.INVALID_TXN_STATE),
    ("CompleteCommit", False, True,  ErrorCode.INVALID_TXN_STATE),
    ("CompleteCommit", False, False, EB),
    ("CompleteCommit", True,  True,  ErrorCode.NONE),
    ("CompleteCommit", True,  False, ErrorCode.INVALID_TXN_STATE),
]


def _ids(value: object) -> str | None:
    return value.name if isinstance(value, ErrorCode) else None


@pytest.mark.parametrize(("state", "commit", "retry", "outcome"), V2_TABLE, ids=_ids)
async def test_end_txn_v2_without_an_open_transaction_follows_kafkas_table(
        state: str, commit: bool, retry: bool, outcome: object) -> None:
    coordinator, broker, _clock = started_coordinator()
    broker.add_partition("data", 0)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    if state == "Empty":
        pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS, pid, epoch)  # epoch 1: a retry is 0
    else:
        await coordinator.add_partitions(TID, pid, epoch, [("data", 0)])
        pid, epoch = await coordinator.end_txn(TID, pid, epoch, commit=state == "CompleteCommit", v2=True)
    assert coordinator.txns[TID].state.display == state
    records = len(broker.replica_manager.appended)
    sent = epoch - 1 if retry else epoch
    call = coordinator.end_txn(TID, pid, sent, commit=commit, v2=True)
    if outcome == EB:
        assert await call == (pid, epoch + 1)
        assert coordinator.txns[TID].state == TxnState.COMPLETE_ABORT
        assert logged_states(broker)[records:] == ["PrepareAbort", "CompleteAbort"]
    elif outcome == ErrorCode.NONE:
        assert await call == (pid, epoch)
        assert len(broker.replica_manager.appended) == records
    else:
        assert isinstance(outcome, ErrorCode)
        await fails(outcome, call)
        assert len(broker.replica_manager.appended) == records
        assert coordinator.txns[TID].state.display == state


# -- transactional id expiration on the manual clock ------------------------------------------

async def test_an_idle_transactional_id_expires_with_a_tombstone() -> None:
    coordinator, broker, clock = started_coordinator(transactional_id_expiration_ms=60_000,
                                                     transaction_remove_expired_transaction_cleanup_interval_ms=10_000)
    await coordinator.init_producer_id(TID, TIMEOUT_MS)
    clock.advance(50_000)
    await settle()
    assert TID in coordinator.txns
    clock.advance(10_000)
    await settle()
    assert TID not in coordinator.txns
    assert logged_states(broker) == ["Empty", "tombstone"]
    await coordinator.stop()


async def test_an_ongoing_transaction_does_not_expire() -> None:
    coordinator, broker, clock = started_coordinator(transactional_id_expiration_ms=60_000,
                                                     transaction_remove_expired_transaction_cleanup_interval_ms=10_000)
    broker.add_partition("data", 0)
    pid, epoch = await coordinator.init_producer_id(TID, 900_000)
    await coordinator.add_partitions(TID, pid, epoch, [("data", 0)])
    clock.advance(120_000)
    await settle()
    assert coordinator.txns[TID].state == TxnState.ONGOING
    await coordinator.stop()


# -- readiness, the transaction log's writes and the coordinator's leadership ----------------

async def test_requests_before_loading_answer_load_in_progress() -> None:
    coordinator, broker, _clock = started_coordinator()
    coordinator.loaded = False  # (as between construction and start)
    await fails(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, coordinator.init_producer_id(TID, TIMEOUT_MS))
    await fails(ErrorCode.INVALID_REQUEST, coordinator.init_producer_id("", TIMEOUT_MS))
    assert broker.replica_manager.appended == []


@pytest.mark.parametrize(("replication", "answered"), [
    (ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.REQUEST_TIMED_OUT, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_COORDINATOR),
], ids=_ids)
async def test_a_failed_log_write_changes_nothing_and_answers_as_kafka(replication: ErrorCode,
                                                                        answered: ErrorCode) -> None:
    coordinator, broker, _clock = started_coordinator()
    broker.add_partition("data", 0)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    broker.replica_manager.hold = True
    adding = asyncio.get_running_loop().create_task(coordinator.add_partitions(TID, pid, epoch, [("data", 0)]))
    await settle()
    broker.replica_manager.replicate(replication)
    await fails(answered, adding)
    assert coordinator.txns[TID].state == TxnState.EMPTY
    await coordinator.add_partitions(TID, pid, epoch, [("data", 0)])  # the client's retry goes through
    assert coordinator.txns[TID].state == TxnState.ONGOING


@pytest.mark.parametrize(("error", "answered"), [
    (RecordBatchTooLargeError("batch of 2000000 bytes exceeds max.message.bytes 1048588"), ErrorCode.UNKNOWN_SERVER_ERROR),
    (LogClosedError("log of __transaction_state-0 is closed"), ErrorCode.NOT_COORDINATOR),
    (OSError(28, "No space left on device"), ErrorCode.NOT_COORDINATOR),
], ids=["too-large", "closed", "os-error"])
async def test_an_append_error_answers_as_kafkas_append_transaction_to_log(error: Exception,
                                                                           answered: ErrorCode) -> None:
    """TransactionStateManager.appendTransactionToLog: MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE ->
    UNKNOWN_SERVER_ERROR (the client does not retry); KAFKA_STORAGE_ERROR -> NOT_COORDINATOR (it
    finds the coordinator again). Nothing changes in memory."""
    coordinator, broker, _clock = started_coordinator()
    broker.add_partition("data", 0)
    pid, epoch = await coordinator.init_producer_id(TID, TIMEOUT_MS)
    appended = len(broker.replica_manager.appended)

    def failing(partition: object, batch: bytes) -> None:
        raise error

    broker.replica_manager.append_internal = failing  # type: ignore[method-assign]
    await fails(answered, coordinator.add_partitions(TID, pid, epoch, [("data", 0)]))
    assert coordinator.txns[TID].state == TxnState.EMPTY
    assert len(broker.replica_manager.appended) == appended


async def test_resignation_forgets_the_ids_and_election_reloads_them_from_the_log() -> None:
    coordinator, broker, _clock = started_coordinator()
    pid, epoch = await ongoing(coordinator, broker)
    state = broker.image.partition(TRANSACTION_STATE_TOPIC, 0)
    assert state is not None
    state.leader = 2
    broker.partitions[(TRANSACTION_STATE_TOPIC, 0)].is_leader = False
    coordinator.on_partition_leadership(TRANSACTION_STATE_TOPIC, 0, False)
    assert coordinator.txns == {}
    await fails(ErrorCode.NOT_COORDINATOR, coordinator.end_txn(TID, pid, epoch, commit=True))
    state.leader = NODE_ID
    broker.partitions[(TRANSACTION_STATE_TOPIC, 0)].is_leader = True
    coordinator.on_partition_leadership(TRANSACTION_STATE_TOPIC, 0, True)
    txn = coordinator.txns[TID]
    assert (txn.producer_id, txn.producer_epoch, txn.state, txn.partitions) == (
        pid, epoch, TxnState.ONGOING, {("data", 0)})
    await coordinator.end_txn(TID, pid, epoch, commit=True)
    await settle()
    assert coordinator.txns[TID].state == TxnState.COMPLETE_COMMIT


async def test_a_restarted_coordinator_completes_a_transaction_found_prepared() -> None:
    coordinator, broker, clock = started_coordinator()
    markers = broker.replica_manager.producer_state
    pid, epoch = await ongoing(coordinator, broker)
    markers.hold = True
    await coordinator.end_txn(TID, pid, epoch, commit=False)
    await settle()
    assert coordinator.txns[TID].state == TxnState.PREPARE_ABORT
    await coordinator.stop()  # stopped between the PrepareAbort record and the markers
    markers.hold = False
    restarted, _broker, _clock = started_coordinator(broker, clock)
    await settle()
    assert markers.markers == [("data", 0, pid, epoch, False)]
    assert restarted.txns[TID].state == TxnState.COMPLETE_ABORT
    assert logged_states(broker)[-2:] == ["PrepareAbort", "CompleteAbort"]
    await restarted.stop()


# -- the order of the checks while the markers are written -----------------------------------
# (Kafka sets the Complete* transition pending when the Prepare* record is written, before the
# markers: AddPartitionsToTxn, InitProducerId and EndTxn v5 check it first, EndTxn v0-v4 after
# the producer id and epoch.)

async def test_during_the_markers_add_partitions_and_init_answer_concurrent_first() -> None:
    coordinator, broker, _clock = started_coordinator()
    markers = broker.replica_manager.producer_state
    pid, epoch = await ongoing(coordinator, broker)
    markers.hold = True
    await coordinator.end_txn(TID, pid, epoch, commit=True)
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.add_partitions(TID, pid, epoch + 1, [("data", 0)]))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.add_partitions(TID, pid + 1, epoch, [("data", 0)]))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.init_producer_id(TID, TIMEOUT_MS, pid + 1, epoch))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.end_txn(TID, pid, epoch + 1, commit=True, v2=True))
    markers.release()
    await settle()


async def test_end_txn_v1_during_the_markers_checks_the_producer_before_answering_concurrent() -> None:
    coordinator, broker, _clock = started_coordinator()
    markers = broker.replica_manager.producer_state
    pid, epoch = await ongoing(coordinator, broker)
    markers.hold = True
    await coordinator.end_txn(TID, pid, epoch, commit=True)
    await fails(ErrorCode.INVALID_PRODUCER_ID_MAPPING, coordinator.end_txn(TID, pid + 1, epoch, commit=True))
    await fails(ErrorCode.PRODUCER_FENCED, coordinator.end_txn(TID, pid, epoch + 1, commit=True))
    await fails(ErrorCode.CONCURRENT_TRANSACTIONS, coordinator.end_txn(TID, pid, epoch, commit=False))
    markers.release()
    await settle()
    assert coordinator.txns[TID].state == TxnState.COMPLETE_COMMIT
