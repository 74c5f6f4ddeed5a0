"""QuorumController over a Raft driver (a fake one here): writes, commits applied, refusals."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from kbroker.controller import metadata_records as mr
from kbroker.controller.features import FeatureUpdateError
from kbroker.controller.image import MetadataImage
from kbroker.controller.quorum import ControllerError, QuorumController
from kbroker.controller.snapshot import kraft_version_control
from kbroker.raft.log import Entry, MemoryLog
from kbroker.raft.node import NotLeaderError
from protocol.errors import ErrorCode


class FakeRaft:
    """A RaftDriver stand-in: proposals are committed (on_commit) or refused as a follower's."""

    def __init__(self, voters, leader: bool) -> None:
        self.node = SimpleNamespace(voters=frozenset(voters))
        self.log = MemoryLog()
        self.leader = leader
        self.epoch = 3
        self.high_watermark = 0
        self.on_commit = None
        self.leader_id = 1 if leader else 2

    @property
    def is_leader(self) -> bool:
        return self.leader

    def commit_now(self, values, control=False):
        raise NotLeaderError(1, self.epoch, self.leader_id)  # as RaftDriver on a node of a larger quorum

    async def propose(self, values, control=False):
        if not self.leader:
            raise NotLeaderError(1, self.epoch, 2)
        start = self.log.end_offset
        self.log.append([Entry(self.epoch, v, control=control) for v in values])
        self.high_watermark = self.log.end_offset
        for i, v in enumerate(values):
            self.on_commit(start + i, Entry(self.epoch, v, control=control))
        return self.log.end_offset - 1


def controller(voters=(1, 2, 3), leader=True) -> tuple[QuorumController, FakeRaft]:
    raft = FakeRaft(voters, leader)
    qc = QuorumController(1, None, MetadataImage(), raft=raft)
    raft.on_commit = qc.on_commit
    return qc, raft


def test_write_proposes_and_applies_committed_records():
    qc, raft = controller()
    records = [mr.FeatureLevelRecord(name="metadata.version", feature_level=33),
               mr.FeatureLevelRecord(name="group.version", feature_level=1)]
    first = asyncio.run(qc.write(records))
    assert first == 0 and raft.log.end_offset == 2
    assert qc.image.features == {"metadata.version": 33, "group.version": 1} and qc.image.offset == 1
    assert [mr.decode_frame(e.value) for e in raft.log.read(0, 10)] == records  # one framed record per entry


def test_write_on_a_follower_is_not_controller_and_writes_nothing():
    qc, raft = controller(leader=False)
    with pytest.raises(ControllerError) as e:
        asyncio.run(qc.write([mr.FeatureLevelRecord(name="group.version", feature_level=1)]))
    assert e.value.code == ErrorCode.NOT_CONTROLLER and raft.log.end_offset == 0
    assert not qc.is_active() and qc.active_controller_id == 2
    with pytest.raises(ControllerError):  # the synchronous path exists for a sole voter only
        qc.commit([mr.FeatureLevelRecord(name="group.version", feature_level=1)])


def test_committed_control_records_reach_the_image():
    qc, _raft = controller()
    qc.on_commit(0, Entry(3, 1, control=True))  # a LeaderChangeMessage: nothing to apply
    qc.on_commit(1, Entry(3, kraft_version_control(1), control=True))
    assert qc.image.kraft_version == 1 and qc.finalized_features()["kraft.version"] == 1


def test_kraft_version_upgrade_refused_in_a_quorum_of_several():
    qc, raft = controller()
    asyncio.run(qc.write([mr.FeatureLevelRecord(name="metadata.version", feature_level=33)]))
    before = raft.log.end_offset
    with pytest.raises(FeatureUpdateError, match="single-voter quorum only"):
        asyncio.run(qc.update_features([("kraft.version", 1, 1)], validate_only=False))
    assert raft.log.end_offset == before
