"""QuorumController over a Raft driver (a fake one here): writes, commits applied, refusals."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from kbroker.controller.quorum import ControllerError, QuorumController
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.features import FeatureUpdateError
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.loader import MetadataLoader
from kbroker.metadata.snapshot import kraft_version_control
from kbroker.raft.log import Entry, MemoryLog
from kbroker.raft.node import NotLeaderError
from kbroker.wiring.metadata_quorum import wire_metadata
from kbroker_protocol.errors import ErrorCode


class FakeRaft:
    """A RaftDriver stand-in: proposals are committed (on_commit) or refused as a follower's."""

    def __init__(self, voters, leader: bool) -> None:
        self.node = SimpleNamespace(voters=frozenset(voters), epoch_start_offset=0, applied_offset=0)
        self.log = MemoryLog()
        self.leader = leader
        self.epoch = 3
        self.high_watermark = 0
        self.on_commit = None
        self.leader_id = 1 if leader else 2

    @property
    def is_leader(self) -> bool:
        return self.leader

    def commit_now(self, values, control=False, on_append=None):
        raise NotLeaderError(1, self.epoch, self.leader_id)  # as RaftDriver on a node of a larger quorum

    async def propose(self, values, control=False, on_append=None):
        if not self.leader:
            raise NotLeaderError(1, self.epoch, 2)
        start = self.log.end_offset
        self.log.append([Entry(self.epoch, v, control=control) for v in values])
        if on_append is not None:
            on_append(self.log.end_offset - 1)
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


def test_kraft_version_upgrade_in_a_quorum_of_several_needs_every_controller():
    """Kafka's FeatureControlManager.reasonNotSupported first: a voter of the static quorum that has
    not registered as a controller may not support the level; nothing is written."""
    qc, raft = controller()
    raft.initial_voters = [1, 2, 3]
    asyncio.run(qc.write([mr.FeatureLevelRecord(name="metadata.version", feature_level=33)]))
    before = raft.log.end_offset
    with pytest.raises(FeatureUpdateError, match="Invalid update version 1 for feature kraft.version. controller 2 "
                                                 "has not registered, and may not support this feature"):
        asyncio.run(qc.update_features([("kraft.version", 1, 1)], validate_only=False))
    assert raft.log.end_offset == before


def test_a_snapshot_installed_while_running_brings_every_listener_to_its_state():
    """A follower or observer that fetched a snapshot: the image and its listeners (the broker's
    partitions, SCRAM credentials, ACLs) end in the snapshot's state, what it no longer has removed
    first (Kafka's MetadataDelta on handleLoadSnapshot)."""
    import uuid

    from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_TOPIC
    from kbroker.metadata.metadata_log import encode_snapshot
    from kbroker.metadata.snapshot import image_to_snapshot
    from kbroker.raft.log import Snapshot
    from kbroker.security.acls import Authorizer
    from kbroker.security.scram import ScramCredentials

    def scram(name):
        return mr.UserScramCredentialRecord(name=name, mechanism=1, salt=b"s", stored_key=b"k", server_key=b"v",
                                            iterations=4096)

    def acl(acl_id, principal):
        return mr.AccessControlEntryRecord(id=acl_id, resource_type=2, resource_name="t", pattern_type=3,
                                           principal=principal, host="*", operation=3, permission_type=3)

    gone_id, kept_id, new_id = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    old_acl, new_acl = uuid.UUID(int=10), uuid.UUID(int=11)
    history = [
        mr.FeatureLevelRecord(name="metadata.version", feature_level=27),
        mr.TopicRecord(name="gone", topic_id=gone_id),
        mr.PartitionRecord(partition_id=0, topic_id=gone_id, replicas=[1], isr=[1], leader=1),
        mr.TopicRecord(name="kept", topic_id=kept_id),
        mr.PartitionRecord(partition_id=0, topic_id=kept_id, replicas=[1], isr=[1], leader=1),
        mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name="kept", name="retention.ms", value="1"),
        mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name="kept", name="cleanup.policy", value="compact"),
        mr.ConfigRecord(resource_type=RESOURCE_BROKER, resource_name="1", name="log.retention.ms", value="5"),
        scram("alice"), acl(old_acl, "User:alice"),
    ]
    qc, raft = controller(leader=False)
    loader = MetadataLoader()
    qc.committed = loader
    wire_metadata(raft, loader, qc)
    seen = []
    scram_cache, authorizer = ScramCredentials(), Authorizer()
    loader.image.listeners += [seen.append, scram_cache.on_record, authorizer.on_record]
    for i, r in enumerate(history):
        raft.on_commit(i, Entry(3, mr.encode_frame(r)))
    assert set(scram_cache.credentials) == {("alice", 1)} and set(authorizer.acls) == {old_acl}
    # the leader's state meanwhile: "gone" deleted, a config of "kept" and the broker's deleted,
    # "new" created, alice's credential and ACL deleted, bob's added
    leader_image = MetadataImage()
    for i, r in enumerate(history):
        leader_image.apply(r, i)
    for r in [mr.RemoveTopicRecord(topic_id=gone_id),
              mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name="kept", name="retention.ms", value=None),
              mr.ConfigRecord(resource_type=RESOURCE_BROKER, resource_name="1", name="log.retention.ms", value=None),
              mr.TopicRecord(name="new", topic_id=new_id),
              mr.PartitionRecord(partition_id=0, topic_id=new_id, replicas=[1], isr=[1], leader=1),
              mr.RemoveUserScramCredentialRecord(name="alice", mechanism=1), scram("bob"),
              mr.RemoveAccessControlEntryRecord(id=old_acl), acl(new_acl, "User:bob")]:
        leader_image.apply(r, leader_image.offset + 1)
    end = leader_image.offset + 1
    data = encode_snapshot(image_to_snapshot(leader_image), 3)
    seen.clear()
    raft.on_commit(end - 1, Snapshot(end, 3, data))

    assert set(loader.image.topics) == {"kept", "new"} and loader.image.offset == end - 1
    assert loader.image.topics["kept"].configs == {"cleanup.policy": "compact"}
    assert loader.image.broker_configs.get("1", {}) == {}
    assert set(scram_cache.credentials) == {("bob", 1)}
    assert set(authorizer.acls) == {new_acl} and authorizer.acls[new_acl].principal == "User:bob"
    names = [type(r).__name__ for r in seen]
    # the listeners were told what went, before the snapshot's records
    removed_topics = [r.topic_id for r in seen if type(r).__name__ == "RemoveTopicRecord"]
    assert removed_topics == [gone_id]
    assert names.index("RemoveTopicRecord") < names.index("TopicRecord")
    assert any(type(r).__name__ == "ConfigRecord" and r.name == "retention.ms" and r.value is None for r in seen)
    assert any(type(r).__name__ == "ConfigRecord" and r.name == "log.retention.ms" and r.value is None
               for r in seen)
    # both images, the broker's and the controller's, equal the leader's
    assert image_to_snapshot(loader.image) == image_to_snapshot(leader_image)
    assert image_to_snapshot(qc.image) == image_to_snapshot(leader_image) and qc.image.offset == end - 1
    assert qc.image is not loader.image


def test_a_controller_without_raft_needs_its_metadata_log():
    # (it used to start and fail later, at its first commit, with an AttributeError on None)
    with pytest.raises(ValueError, match="needs its metadata log"):
        QuorumController(1, None, MetadataImage())


def test_commit_refuses_a_batch_of_the_other_kind():
    qc, _raft = controller(voters=(1,))
    record = mr.FeatureLevelRecord(name="group.version", feature_level=1)
    with pytest.raises(TypeError, match="framed records"):
        qc.commit([record], b"a record batch")
    assert qc.image.features.get("group.version") is None
