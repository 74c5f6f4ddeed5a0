"""The share coordinator façade on its own (no cluster): the share-group state operations
(Initialize/Read/Write/Delete ShareGroupState through its store) with Kafka 4.4's fencing, loading
``__share_group_state`` at start and on leadership, pruning on its timer, share sessions and their
end when the connection closes, and the group coordinator's hooks. The broker around it is
tests/unit/share_fakes.py; time is a manual clock (nothing sleeps). The wire-level and cluster
tests are tests/share/."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kbroker.coordinator.share_coordinator import ShareCoordinator, share_groups_enabled
from kbroker.coordinator.share_manager import INT_MAX, ShareSessionError, next_epoch
from kbroker.coordinator.share_partition import ACKNOWLEDGED, ACQUIRED, AVAILABLE, FetchedBatch, StateBatch
from kbroker.coordinator.share_state import (
    SNAPSHOT_TYPE,
    STATE_TOPIC,
    UPDATE_TYPE,
    decode_key,
    decode_snapshot_value,
    encode_key,
    encode_update_value,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch, iter_records
from tests.unit.share_fakes import (
    PRUNE_MS,
    START_MS,
    FakeShareBroker,
    FakeShareTimer,
    started_share_coordinator,
)

G = "share-g"
TOPIC = "data"
TID = uuid.UUID(int=0xDA7A)


def logged(broker: FakeShareBroker, index: int = 0) -> list[tuple[str, str, int, object]]:
    """What ``__share_group_state-<index>`` holds: (kind, group, partition, state epoch or None)."""
    out: list[tuple[str, str, int, object]] = []
    for _header, data in broker.state_log(index).iter_batches():
        for record in iter_records(data):
            assert record.key is not None
            kind, group, _tid, p = decode_key(record.key)
            name = "snapshot" if kind == SNAPSHOT_TYPE else "update"
            value = None if record.value is None else (
                decode_snapshot_value(record.value).state_epoch if kind == SNAPSHOT_TYPE else "update")
            out.append((name, group, p, value))
    return out


def batches(*runs: tuple[int, int, int, int]) -> list[StateBatch]:
    return [StateBatch(*run) for run in runs]


# -- the state RPCs (ShareStateStore through the façade) ----------------------------------------------


def test_initialize_then_read_gives_a_fresh_state_at_the_start_offset() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    store = coordinator.store
    assert store.read(G, TID, 0) is None
    assert store.initialize(G, TID, 0, state_epoch=1, start_offset=10) == ErrorCode.NONE
    state = store.read(G, TID, 0)
    assert state is not None
    assert (state.state_epoch, state.start_offset, state.batches, state.snapshot_epoch) == (1, 10, [], 0)
    assert (state.create_timestamp, state.write_timestamp) == (START_MS, START_MS)
    assert logged(broker) == [("snapshot", G, 0, 1)]


def test_initialize_with_an_older_state_epoch_is_fenced() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    store = coordinator.store
    store.initialize(G, TID, 0, 2, 0)
    assert store.initialize(G, TID, 0, 1, 5) == ErrorCode.FENCED_STATE_EPOCH
    state = store.read(G, TID, 0)
    assert state is not None and (state.state_epoch, state.start_offset) == (2, 0)
    assert len(logged(broker)) == 1  # nothing written for the fenced call


def test_write_merges_batches_moves_the_start_and_keeps_the_highest_leader_epoch() -> None:
    coordinator, _broker, timer = started_share_coordinator()
    store = coordinator.store
    store.initialize(G, TID, 0, 1, 0)
    assert store.write(G, TID, 0, 1, 4, -1, batches((0, 9, ACQUIRED, 1))) == ErrorCode.NONE
    timer.advance(50)
    assert store.write(G, TID, 0, 1, 5, 5, batches((5, 6, ACKNOWLEDGED, 1))) == ErrorCode.NONE
    state = store.read(G, TID, 0)
    assert state is not None
    # the start moved to 5 (below it dropped); the new batch overwrote where it overlapped
    assert state.start_offset == 5
    assert state.batches == batches((5, 6, ACKNOWLEDGED, 1), (7, 9, ACQUIRED, 1))
    assert (state.leader_epoch, state.snapshot_epoch) == (5, 2)
    assert (state.create_timestamp, state.write_timestamp) == (START_MS, START_MS + 50)


@pytest.mark.parametrize(("state_epoch", "leader_epoch", "code"), [
    (0, 5, ErrorCode.FENCED_STATE_EPOCH),   # an older state epoch
    (1, 3, ErrorCode.FENCED_LEADER_EPOCH),  # an older leader epoch
    (1, -1, ErrorCode.NONE),                # no leader epoch: not checked
    (2, 4, ErrorCode.NONE),                 # a newer state epoch, the same leader epoch
])
def test_write_fencing(state_epoch: int, leader_epoch: int, code: ErrorCode) -> None:
    coordinator, _broker, _timer = started_share_coordinator()
    store = coordinator.store
    store.initialize(G, TID, 0, 1, 0)
    assert store.write(G, TID, 0, 1, 4, -1, []) == ErrorCode.NONE
    assert store.write(G, TID, 0, state_epoch, leader_epoch, 3, []) == code
    state = store.read(G, TID, 0)
    assert state is not None
    assert state.start_offset == (3 if code == ErrorCode.NONE else 0)


def test_delete_writes_tombstones_and_forgets_the_state() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    store = coordinator.store
    store.initialize(G, TID, 0, 1, 0)
    store.initialize(G, TID, 1, 1, 0)
    assert store.delete(G, TID, 0) == ErrorCode.NONE
    assert store.read(G, TID, 0) is None and store.read(G, TID, 1) is not None
    assert logged(broker)[-2:] == [("snapshot", G, 0, None), ("update", G, 0, None)]
    appended = broker.replica_manager.appends
    assert store.delete(G, TID, 0) == ErrorCode.NONE  # nothing stored: nothing written
    assert broker.replica_manager.appends == appended


# -- loading __share_group_state ---------------------------------------------------------------------


def test_start_loads_what_a_previous_coordinator_wrote_with_updates_on_their_snapshot() -> None:
    first, broker, timer = started_share_coordinator()
    first.store.initialize(G, TID, 0, 1, 0)
    first.store.write(G, TID, 0, 1, 4, -1, batches((0, 4, ACQUIRED, 1)))
    first.store.initialize("other", TID, 0, 3, 7)
    first.store.delete("other", TID, 0)
    snapshot_epoch = first.store.states[(G, TID, 0)].snapshot_epoch
    # Kafka's share coordinator also writes ShareUpdate records: one on the latest snapshot is
    # applied on load, one naming another snapshot epoch is not.
    part = broker.partitions[(STATE_TOPIC, 0)]
    key = encode_key(UPDATE_TYPE, G, TID, 0)
    broker.replica_manager.append_internal(part, build_batch([
        Record(key=key, value=encode_update_value(snapshot_epoch, 6, 2, batches((2, 3, ACKNOWLEDGED, 1)), 2),
               timestamp=START_MS),
        Record(key=key, value=encode_update_value(snapshot_epoch + 9, 7, 4, [], 0), timestamp=START_MS)]))
    first.stop()

    second, _broker, _timer = started_share_coordinator(broker, FakeShareTimer(timer.now))
    state = second.store.read(G, TID, 0)
    assert state is not None
    assert (state.state_epoch, state.start_offset, state.leader_epoch) == (1, 2, 6)
    assert state.batches == batches((2, 3, ACKNOWLEDGED, 1), (4, 4, ACQUIRED, 1))
    assert state.delivery_complete_count == 2
    assert second.store.read("other", TID, 0) is None
    assert second.loaded and second.store.loaded


def test_becoming_leader_of_a_state_partition_reloads_it_from_the_log() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    coordinator.store.initialize(G, TID, 0, 1, 0)
    # Another coordinator (the partition's leader meanwhile) wrote a newer state to the log.
    other, _b, _t = started_share_coordinator(broker)
    other.store.initialize(G, TID, 0, 5, 42)
    assert coordinator.store.read(G, TID, 0).state_epoch == 1  # type: ignore[union-attr]
    coordinator.on_partition_leadership(STATE_TOPIC, 0, leader=True)
    state = coordinator.store.read(G, TID, 0)
    assert state is not None and (state.state_epoch, state.start_offset) == (5, 42)


def test_topic_partitions_and_configs_of_the_state_topic() -> None:
    coordinator, broker, _timer = started_share_coordinator(FakeShareBroker(state_partitions=3))
    assert (ShareCoordinator.topic_name, coordinator.topic_partitions()) == (STATE_TOPIC, 3)
    configs = coordinator.topic_configs()
    assert (configs["cleanup.policy"], configs["retention.ms"]) == ("delete", "-1")
    assert configs["segment.bytes"] == str(broker.config["share.coordinator.state.topic.segment.bytes"])
    # keys spread over the partitions as Kafka's SharePartitionKey: the same key, the same partition
    indexes = {coordinator.store.partition_for(G, TID, p) for p in range(30)}
    assert indexes <= {0, 1, 2} and len(indexes) > 1
    for p in range(3):
        coordinator.store.initialize(G, TID, p, 1, 0)
        assert logged(broker, coordinator.store.partition_for(G, TID, p))[-1] == ("snapshot", G, p, 1)


def test_with_two_brokers_the_leader_of_the_state_partition_is_the_share_coordinator() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    persister = coordinator.manager.persister
    assert coordinator.store.leads(G, TID, 0) and persister.is_local(G, TID, 0)  # one broker: always
    broker.add_broker(2)
    assert (persister.coordinator_node(G, TID, 0), persister.is_local(G, TID, 0)) == (1, True)
    broker.move_leader(STATE_TOPIC, 0, 2)
    assert (persister.coordinator_node(G, TID, 0), persister.is_local(G, TID, 0)) == (2, False)
    assert not coordinator.store.leads(G, TID, 0)
    broker.move_leader(STATE_TOPIC, 0, -1)  # no leader known yet
    assert (persister.coordinator_node(G, TID, 0), persister.is_local(G, TID, 0)) == (None, False)
    broker.move_leader(STATE_TOPIC, 0, 1)
    assert coordinator.store.leads(G, TID, 0) and persister.is_local(G, TID, 0)


def test_a_state_write_without_the_state_partition_here_fails_and_keeps_the_old_state() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    coordinator.store.initialize(G, TID, 0, 1, 0)
    del broker.partitions[(STATE_TOPIC, 0)]  # not hosted on this broker
    with pytest.raises(RuntimeError):
        coordinator.store.write(G, TID, 0, 1, 4, 3, [])
    state = coordinator.store.read(G, TID, 0)
    assert state is not None and state.start_offset == 0


# -- the prune timer ---------------------------------------------------------------------------------


def test_prune_runs_every_interval_and_moves_the_log_start_to_the_oldest_latest_snapshot() -> None:
    coordinator, broker, timer = started_share_coordinator()
    store = coordinator.store
    store.initialize(G, TID, 0, 1, 0)          # offset 0
    store.initialize(G, TID, 1, 1, 0)          # offset 1
    store.write(G, TID, 0, 1, 4, -1, [])       # offset 2: partition 0's latest snapshot
    store.write(G, TID, 1, 1, 4, -1, [])       # offset 3: partition 1's latest
    timer.advance(PRUNE_MS - 1)
    assert broker.state_log().log_start_offset == 0  # not yet due
    timer.advance(1)
    assert broker.state_log().log_start_offset == 2
    store.write(G, TID, 0, 1, 4, -1, [])       # offset 4
    timer.advance(PRUNE_MS)                    # the timer was set again: prunes to partition 1's (3)
    assert broker.state_log().log_start_offset == 3
    store.delete(G, TID, 0)
    store.delete(G, TID, 1)                    # offsets 5-8: nothing live is left
    timer.advance(PRUNE_MS)
    assert broker.state_log().log_start_offset == broker.state_log().high_watermark == 9


def test_stop_cancels_the_timers_and_unloads() -> None:
    # (its connection listener is hooked and unhooked by the composition root,
    # kbroker/wiring/coordinators.py: tests/unit/test_coordinator_wiring.py)
    coordinator, broker, timer = started_share_coordinator()
    assert "share-state-prune" in timer.timers
    coordinator.stop()
    assert timer.timers == {} and not coordinator.loaded


# -- share partitions --------------------------------------------------------------------------------


def data_partition(broker: FakeShareBroker, end: int = 10) -> None:
    part = broker.add_topic(TOPIC, TID, 2)[0]
    part.log.log_end_offset = end
    part.log.log_start_offset = 2


@pytest.mark.parametrize(("reset", "start"), [(None, 10), ("latest", 10), ("earliest", 2)])
def test_a_new_share_partition_starts_at_the_groups_auto_offset_reset_and_stores_it(reset: str | None,
                                                                                    start: int) -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    if reset is not None:
        broker.set_group_config(G, "share.auto.offset.reset", reset)
    sp = coordinator.manager.share_partition(G, TOPIC, TID, 0)
    assert (sp.start_offset, sp.leader_epoch) == (start, 3)
    state = coordinator.store.read(G, TID, 0)
    assert state is not None and (state.start_offset, state.leader_epoch, state.batches) == (start, 3, [])
    assert coordinator.manager.share_partition(G, TOPIC, TID, 0) is sp  # one per key


def test_a_share_partition_starts_from_the_stored_state() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.store.initialize(G, TID, 0, 4, 5)
    coordinator.store.write(G, TID, 0, 4, 3, -1, batches((5, 6, ACKNOWLEDGED, 1), (7, 8, AVAILABLE, 2)))
    sp = coordinator.manager.share_partition(G, TOPIC, TID, 0)
    assert (sp.start_offset, sp.state_epoch) == (7, 4)  # acknowledged records at the start are done
    assert sp.state_batches() == batches((7, 8, AVAILABLE, 2))


async def test_load_partition_of_a_local_key_creates_it_once() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    assert await coordinator.manager.load_partition(G, TOPIC, TID, 0) == ErrorCode.NONE
    sp = coordinator.manager.partitions[(G, TID, 0)]
    broker.partitions[(TOPIC, 0)].leader_epoch = 8
    assert await coordinator.manager.load_partition(G, TOPIC, TID, 0) == ErrorCode.NONE
    assert coordinator.manager.partitions[(G, TID, 0)] is sp and sp.leader_epoch == 8


async def test_flush_waits_for_the_state_partition_and_maps_its_errors() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    assert await coordinator.manager.flush(G, [(TID, 0)]) == {}
    broker.replica_manager.hold = True
    waiting = asyncio.ensure_future(coordinator.manager.flush(G, [(TID, 0)]))
    while broker.replica_manager.waiting == 0:
        await asyncio.sleep(0)
    assert not waiting.done()
    broker.replica_manager.replicate(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    # the state partition moved (NOT_COORDINATOR): a retriable error for the share partition, as
    # Kafka's SharePartition.fetchPersisterError maps it
    assert await waiting == {(TID, 0): ErrorCode.COORDINATOR_NOT_AVAILABLE}


def acquire_all(coordinator: ShareCoordinator, member: str, first: int, last: int) -> None:
    sp = coordinator.manager.partitions[(G, TID, 0)]
    acquired, _sent = sp.acquire(member, [FetchedBatch(first, last, False, b"")], 500)
    assert acquired


def open_session(coordinator: ShareCoordinator, member: str, connection: object) -> None:
    parts, full = coordinator.manager.new_fetch_context(G, member, 0, [(TID, 0)], [], False, connection)
    assert (parts, full) == ([(TID, 0)], True)


def test_closing_a_connection_ends_its_sessions_and_releases_their_records() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    conn_a, conn_b = object(), object()
    open_session(coordinator, "m1", conn_a)
    open_session(coordinator, "m2", conn_b)
    acquire_all(coordinator, "m1", 10, 12)
    acquire_all(coordinator, "m2", 13, 14)
    sp = coordinator.manager.partitions[(G, TID, 0)]
    assert sp.acquired_count() == 5
    for listener in broker.connection_listeners:  # the broker closes conn_a
        listener(conn_a)
    assert list(coordinator.manager.sessions) == [(G, "m2")]
    assert sp.acquired_count() == 2  # m1's records are available again at once
    assert sp.next_fetch_offset() == 10


def test_share_session_epochs() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    manager = coordinator.manager
    conn = object()

    def code(call: object) -> ErrorCode:
        with pytest.raises(ShareSessionError) as info:
            call()  # type: ignore[operator]
        return info.value.code

    assert code(lambda: manager.new_fetch_context(G, "m", 3, [], [], False, conn)) == ErrorCode.SHARE_SESSION_NOT_FOUND
    assert code(lambda: manager.new_fetch_context(G, "m", 0, [(TID, 0)], [], True, conn)) == ErrorCode.INVALID_REQUEST
    assert manager.new_fetch_context(G, "m", 0, [(TID, 0)], [], False, conn) == ([(TID, 0)], True)
    assert code(lambda: manager.new_fetch_context(G, "m", 2, [], [], False, conn)) == \
        ErrorCode.INVALID_SHARE_SESSION_EPOCH
    # epoch 1 adds and forgets partitions incrementally; then 2; ShareAcknowledge moves it too
    assert manager.new_fetch_context(G, "m", 1, [(TID, 1)], [(TID, 0)], False, conn) == ([(TID, 1)], False)
    manager.acknowledge_session_update(G, "m", 2)
    assert code(lambda: manager.acknowledge_session_update(G, "m", 0)) == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert code(lambda: manager.acknowledge_session_update(G, "m", 2)) == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert manager.new_fetch_context(G, "m", 3, [], [], False, conn) == ([(TID, 1)], False)
    # epoch -1 is the last request of the session
    assert manager.new_fetch_context(G, "m", -1, [], [], False, conn) == ([], False)
    assert (next_epoch(INT_MAX), next_epoch(-1), next_epoch(0)) == (1, -1, 1)


def test_share_session_limit() -> None:
    broker = FakeShareBroker()
    broker.config["group.share.max.share.sessions"] = 2
    coordinator, _broker, _timer = started_share_coordinator(broker)
    manager = coordinator.manager
    manager.new_fetch_context(G, "a", 0, [], [], False, None)
    manager.new_fetch_context(G, "b", 0, [], [], False, None)
    with pytest.raises(ShareSessionError) as info:
        manager.new_fetch_context(G, "c", 0, [], [], False, None)
    assert info.value.code == ErrorCode.SHARE_SESSION_LIMIT_REACHED
    manager.new_fetch_context(G, "a", 0, [], [], False, None)  # a member's new session replaces its old
    assert sorted(manager.sessions) == [(G, "a"), (G, "b")]


def test_record_locks_expire_on_the_clock() -> None:
    coordinator, broker, timer = started_share_coordinator()
    data_partition(broker)
    broker.set_group_config(G, "share.record.lock.duration.ms", "15000")
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    acquire_all(coordinator, "m1", 10, 11)
    sp = coordinator.manager.partitions[(G, TID, 0)]
    timer.advance(14_999)
    assert sp.acquired_count() == 2
    timer.advance(1)
    assert sp.acquired_count() == 0
    # the expiry is persisted: the records are available again, delivered once
    state = coordinator.store.read(G, TID, 0)
    assert state is not None and state.batches == batches((10, 11, AVAILABLE, 1))


# -- the group coordinator's hooks and the broker's ------------------------------------------------


def test_group_hooks_release_a_removed_members_records_and_drop_a_deleted_group() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    coordinator.store.initialize("other", TID, 0, 1, 0)
    open_session(coordinator, "m1", object())
    acquire_all(coordinator, "m1", 10, 11)
    assert broker.group_coordinator is not None
    share = broker.group_coordinator.share
    for removed in share.on_member_removed:  # the member's session timed out
        removed(G, "m1")
    assert coordinator.manager.sessions == {}
    assert coordinator.manager.partitions[(G, TID, 0)].acquired_count() == 0
    for deleted in share.on_group_deleted:
        deleted(G)
    assert coordinator.manager.partitions == {}
    assert coordinator.store.read(G, TID, 0) is None and coordinator.store.read("other", TID, 0) is not None


def test_losing_a_topic_partitions_leadership_drops_its_share_partitions_only() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    coordinator.manager.share_partition(G, TOPIC, TID, 1)
    coordinator.on_partition_leadership(TOPIC, 0, leader=False)
    assert list(coordinator.manager.partitions) == [(G, TID, 1)]
    assert coordinator.store.read(G, TID, 0) is not None  # the state stays with the share coordinator


def test_a_deleted_topics_share_partitions_and_state_go() -> None:
    coordinator, broker, _timer = started_share_coordinator()
    data_partition(broker)
    coordinator.manager.share_partition(G, TOPIC, TID, 0)
    coordinator.manager.share_partition(G, TOPIC, TID, 1)
    broker.remove_topic(TOPIC)
    coordinator.on_partition_deleted(TOPIC, 0)
    assert list(coordinator.manager.partitions) == [(G, TID, 1)]
    assert coordinator.store.read(G, TID, 0) is None and coordinator.store.read(G, TID, 1) is not None
    coordinator.on_partition_deleted(TOPIC, 1)
    assert coordinator.manager.partitions == {} and coordinator.store.states == {}


def test_share_groups_are_enabled_by_the_finalized_share_version() -> None:
    broker = FakeShareBroker()
    assert not share_groups_enabled(broker)  # type: ignore[arg-type]
    broker.set_features(share_version=1)
    assert share_groups_enabled(broker)  # type: ignore[arg-type]
    broker.set_features(share_version=0)
    assert not share_groups_enabled(broker)  # type: ignore[arg-type]
