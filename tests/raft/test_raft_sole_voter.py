"""A sole voter's start (the single-node broker's one-voter quorum): it elects itself in one
synchronous step and writes its quorum state once, as leader, before the epoch's first record."""

from __future__ import annotations

import random

from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.io import RaftDriver
from kbroker.raft.node import Role
from kbroker.raft.state_store import ElectionState, FileQuorumStateStore, QuorumStateStore


class RecordingStore(QuorumStateStore):
    """A file store that records each write with the log's end offset at that moment."""

    def __init__(self, directory, log: FileRaftLog) -> None:
        self.inner = FileQuorumStateStore(directory)
        self.log = log
        self.writes: list[tuple[ElectionState, int]] = []

    def read(self) -> ElectionState | None:
        return self.inner.read()

    def write(self, state: ElectionState) -> None:
        self.writes.append((state, self.log.end_offset))
        self.inner.write(state)


async def start(directory, committed: list) -> tuple[RaftDriver, RecordingStore]:
    log = FileRaftLog(directory)
    store = RecordingStore(directory, log)
    driver = RaftDriver(1, [1], {}, log, store, rng=random.Random(1),
                        on_commit=lambda offset, item: committed.append((offset, item)))
    driver.start()
    return driver, store


async def test_sole_voter_writes_its_quorum_state_once_as_leader_before_the_epoch_starts(tmp_path):
    committed: list = []
    driver, store = await start(tmp_path, committed)
    try:
        assert driver.is_leader and driver.node.role is Role.LEADER
        # fresh: no unattached epoch-0 state, no candidate state; only the leadership of epoch 1,
        # written while the log was still empty (the LeaderChange record comes after it)
        assert store.writes == [(ElectionState(epoch=1, leader_id=1, voted_id=1), 0)]
        assert FileQuorumStateStore(tmp_path).read() == ElectionState(epoch=1, leader_id=1, voted_id=1)
        offset = driver.commit_now([b"a", b"b"])
        assert [o for o, _ in committed][-2:] == [offset - 1, offset]
    finally:
        await driver.stop(graceful=True)
    driver.log.close()

    committed2: list = []
    driver2, store2 = await start(tmp_path, committed2)
    try:
        assert driver2.is_leader and driver2.epoch == 2
        assert len(store2.writes) == 1
        state, log_end = store2.writes[0]
        assert state == ElectionState(epoch=2, leader_id=1, voted_id=1)
        # before epoch 2's LeaderChange record: the log then ended after epoch 1's records
        assert log_end == offset + 1
        assert FileQuorumStateStore(tmp_path).read() == state
        # what was committed before the restart is delivered again, in order, then epoch 2's record
        values = [item.value for _o, item in committed2 if not item.control]
        assert values == [b"a", b"b"]
    finally:
        await driver2.stop(graceful=True)
    driver2.log.close()


async def test_a_voter_of_several_still_writes_each_transition(tmp_path):
    """Only the sole voter holds its intermediate states: a voter of three persists its vote for
    itself as a candidate before asking the others."""
    log = FileRaftLog(tmp_path)
    store = RecordingStore(tmp_path, log)
    driver = RaftDriver(1, [1, 2, 3], {2: ("127.0.0.1", 1), 3: ("127.0.0.1", 1)}, log, store,
                        rng=random.Random(1))
    driver.start()
    try:
        # the fresh node's unattached state of epoch 0 is written at once
        assert store.writes[0][0] == ElectionState(epoch=0, leader_id=-1, voted_id=-1)
        assert not driver.is_leader
    finally:
        await driver.stop(graceful=False)
    log.close()
