"""Streams groups (KIP-1071) at the protocol level: topology initialization, broker-created internal
topics, task assignment and revocation between members, epochs, static members, offsets by member
epoch, the group in ListGroups/DescribeGroups/StreamsGroupDescribe, bad input, and a restart."""

from __future__ import annotations

import uuid

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.list_groups import ListGroupsRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from kbroker_protocol.messages.streams_group_describe import StreamsGroupDescribeRequest
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest
from kbroker_protocol.messages.streams_group_topology_description_update import (
    StreamsGroupTopologyDescriptionUpdateRequest,
)
from tests.streams.streams_group_helpers import (
    CONFIG,
    MISSING_INTERNAL,
    MISSING_SOURCE,
    create_topic,
    hb,
    join_ready,
    names,
    partitions_of,
    statuses,
    tasks_of,
    word_count_topology,
)


@pytest.fixture(scope="module")
def kb():
    with BrokerThread(config=CONFIG) as b:
        yield b


@pytest.fixture
def wire(kb):
    w = Wire(kb.bootstrap_servers)
    yield w
    w.close()



def test_topology_initialization_creates_internal_topics_and_assigns_tasks(kb, wire):
    app, source = names()
    topology = word_count_topology(app, source)
    # Without the source topic: MISSING_SOURCE_TOPICS, no tasks, the group NotReady.
    r = hb(wire, app, "m1", 0, topology=topology)
    assert r.error_code == ErrorCode.NONE
    assert MISSING_SOURCE in statuses(r)
    assert tasks_of(r.active_tasks) == {}
    described = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
    assert (described.error_code, described.group_state) == (ErrorCode.NONE, "NotReady")
    create_topic(kb, source, 4)
    r = hb(wire, app, "m1", r.member_epoch, active={})
    # The broker reports the missing internal topics and creates them, with Kafka's partition counts.
    assert MISSING_INTERNAL in statuses(r)
    assert partitions_of(kb, f"{app}-counts-repartition") == 4
    assert partitions_of(kb, f"{app}-counts-changelog") == 4
    r = hb(wire, app, "m1", r.member_epoch, active={})
    assert statuses(r) == set()
    assert tasks_of(r.active_tasks) == {"0": {0, 1, 2, 3}, "1": {0, 1, 2, 3}}
    epoch = r.member_epoch
    described = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
    assert described.group_state == "Stable"
    assert described.group_epoch == epoch == described.assignment_epoch
    by_name = {t.name: t.partitions for s in described.topology.subtopologies
               for t in s.repartition_source_topics + s.state_changelog_topics}
    assert by_name == {f"{app}-counts-repartition": 4, f"{app}-counts-changelog": 4}
    [member] = described.members
    assert (member.member_id, member.member_epoch, member.process_id) == ("m1", epoch, "m1")
    assert tasks_of(member.assignment.active_tasks) == {"0": {0, 1, 2, 3}, "1": {0, 1, 2, 3}}
    # The group as the other group APIs see it.
    listed = wire.call(ListGroupsRequest(types_filter=["streams"]), 5).groups
    assert [(g.group_id, g.group_type, g.protocol_type, g.group_state) for g in listed if g.group_id == app] == [
        (app, "streams", "streams", "Stable")]
    d = wire.call(DescribeGroupsRequest(groups=[app]), 6).groups[0]
    assert (d.error_code, d.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, f"Group {app} is not a classic group.")
    assert wire.call(DeleteGroupsRequest(groups_names=[app]), 2).results[0].error_code == ErrorCode.NON_EMPTY_GROUP


def test_second_member_gets_tasks_after_revocation(kb, wire):
    app, source = names()
    create_topic(kb, source, 4)
    topology = word_count_topology(app, source)
    a = join_ready(wire, app, "a", topology)
    assert a["active"] == {"0": {0, 1, 2, 3}, "1": {0, 1, 2, 3}}
    rb = hb(wire, app, "b", 0, topology=topology)
    assert rb.error_code == ErrorCode.NONE
    assert tasks_of(rb.active_tasks) == {}  # everything is still owned by a
    # a must revoke half its tasks, keeping its epoch until it does.
    ra = hb(wire, app, "a", a["r"].member_epoch, active=a["active"])
    kept = tasks_of(ra.active_tasks)
    assert sum(map(len, kept.values())) == 4
    assert ra.member_epoch == a["r"].member_epoch
    state = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0].group_state
    assert state == "Reconciling"
    # Until a confirms, b gets nothing; then b gets the released tasks.
    rb = hb(wire, app, "b", rb.member_epoch, active={})
    assert tasks_of(rb.active_tasks) == {}
    ra = hb(wire, app, "a", ra.member_epoch, active=kept)
    assert ra.member_epoch > a["r"].member_epoch
    rb = hb(wire, app, "b", rb.member_epoch, active={})
    got = tasks_of(rb.active_tasks)
    everything = {(s, p) for s in "01" for p in range(4)}
    assert {(s, p) for s, ps in got.items() for p in ps} | {(s, p) for s, ps in kept.items() for p in ps} == everything
    assert not {(s, p) for s, ps in got.items() for p in ps} & {(s, p) for s, ps in kept.items() for p in ps}
    # Offsets: a member's epoch is checked (v9+), an old one is stale.
    T = OffsetCommitRequest.OffsetCommitRequestTopic

    def commit(member, epoch, version=9):
        return wire.call(OffsetCommitRequest(group_id=app, generation_id_or_member_epoch=epoch, member_id=member,
                                             topics=[T(name=source, partitions=[
                                                 T.OffsetCommitRequestPartition(partition_index=0, committed_offset=5)])]),
                         version).topics[0].partitions[0].error_code
    assert commit("b", rb.member_epoch) == ErrorCode.NONE
    assert commit("b", rb.member_epoch + 1) == ErrorCode.STALE_MEMBER_EPOCH
    assert commit("b", rb.member_epoch, version=8) == ErrorCode.UNSUPPORTED_VERSION
    assert commit("nobody", 1) == ErrorCode.UNKNOWN_MEMBER_ID

    # An older epoch commits only the partitions whose tasks the member has had since then.
    def commit_partition(member, epoch, partition):
        return wire.call(OffsetCommitRequest(group_id=app, generation_id_or_member_epoch=epoch, member_id=member,
                                             topics=[T(name=source, partitions=[T.OffsetCommitRequestPartition(
                                                 partition_index=partition, committed_offset=5)])]),
                         9).topics[0].partitions[0].error_code
    old_epoch = a["r"].member_epoch
    assert old_epoch < ra.member_epoch
    kept_source = sorted(kept.get("0", set()))
    moved_source = sorted(set(range(4)) - set(kept_source))
    assert kept_source and moved_source
    assert commit_partition("a", old_epoch, kept_source[0]) == ErrorCode.NONE
    assert commit_partition("a", old_epoch, moved_source[0]) == ErrorCode.STALE_MEMBER_EPOCH
    F = OffsetFetchRequest.OffsetFetchRequestGroup
    fetched = wire.call(OffsetFetchRequest(groups=[F(group_id=app, member_id="b", member_epoch=rb.member_epoch, topics=[
        F.OffsetFetchRequestTopics(name=source, partition_indexes=[0])])]), 9).groups[0]
    assert fetched.error_code == ErrorCode.NONE and fetched.topics[0].partitions[0].committed_offset == 5
    stale = wire.call(OffsetFetchRequest(groups=[F(group_id=app, member_id="b", member_epoch=rb.member_epoch - 1,
                                                   topics=None)]), 9).groups[0]
    assert stale.error_code == ErrorCode.STALE_MEMBER_EPOCH
    # b leaves: a gets everything back at a new epoch.
    assert hb(wire, app, "b", -1).member_epoch == -1
    ra = hb(wire, app, "a", ra.member_epoch, active=kept)
    assert tasks_of(ra.active_tasks) == {"0": {0, 1, 2, 3}, "1": {0, 1, 2, 3}}


def test_epochs_and_static_members(kb, wire):
    app, source = names()
    create_topic(kb, source, 2)
    topology = word_count_topology(app, source)
    a = join_ready(wire, app, "a", topology)
    epoch = a["r"].member_epoch
    assert hb(wire, app, "a", epoch + 1, active=a["active"]).error_code == ErrorCode.FENCED_MEMBER_EPOCH
    assert hb(wire, app, "zz", 1, active={}).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    # A static member leaves temporarily (-2) and comes back under a new member id with its tasks.
    s1 = hb(wire, app, "s1", 0, topology=topology, instance="i1")
    assert s1.error_code == ErrorCode.NONE
    assert hb(wire, app, "s2", 0, topology=topology, instance="i1").error_code == ErrorCode.UNRELEASED_INSTANCE_ID
    assert hb(wire, app, "s2", s1.member_epoch, active={}, instance="i1").error_code == ErrorCode.FENCED_INSTANCE_ID
    left = wire.call(StreamsGroupHeartbeatRequest(group_id=app, member_id="s1", member_epoch=-2, instance_id="i1"), 1)
    assert (left.error_code, left.member_epoch) == (ErrorCode.NONE, -2)
    back = hb(wire, app, "s2", 0, topology=topology, instance="i1")
    assert back.error_code == ErrorCode.NONE
    members = {m.member_id: m.instance_id for m in
               wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0].members}
    assert members == {"a": None, "s2": "i1"}


def test_bad_input(kb, wire):
    app, source = names()
    create_topic(kb, source, 1)
    topology = word_count_topology(app, source)
    # Unknown group.
    r = hb(wire, app, "m", 3, active={})
    assert (r.error_code, r.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, f"Group {app} not found.")
    d = wire.call(StreamsGroupDescribeRequest(group_ids=[app]), 0).groups[0]
    assert (d.error_code, d.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, f"Group {app} not found.")
    # Join without a topology, topology on a heartbeat, a changelog with partitions, internal topics.
    no_topology = wire.call(StreamsGroupHeartbeatRequest(group_id=app, member_id="m", member_epoch=0,
                                                         rebalance_timeout_ms=1000, active_tasks=[], standby_tasks=[],
                                                         warmup_tasks=[]), 1)
    assert (no_topology.error_code, no_topology.error_message) == (
        ErrorCode.INVALID_REQUEST, "Topology must be non-null when (re-)joining.")
    null_tasks = wire.call(StreamsGroupHeartbeatRequest(group_id=app, member_id="m", member_epoch=0,
                                                        rebalance_timeout_ms=1000, topology=topology), 1)
    assert (null_tasks.error_code, null_tasks.error_message) == (
        ErrorCode.INVALID_REQUEST, "ActiveTasks must be empty when (re-)joining.")
    bad = word_count_topology(app, source)
    bad.subtopologies[1].state_changelog_topics[0].partitions = 3
    assert hb(wire, app, "m", 0, topology=bad).error_code == ErrorCode.STREAMS_INVALID_TOPOLOGY
    internal = word_count_topology(app, "__consumer_offsets")
    r = hb(wire, app, "m", 0, topology=internal)
    assert r.error_code == ErrorCode.STREAMS_INVALID_TOPOLOGY and "__consumer_offsets" in r.error_message
    assert hb(wire, app, "", 0, topology=topology).error_code == ErrorCode.INVALID_REQUEST
    assert app not in {g.group_id for g in wire.call(ListGroupsRequest(), 5).groups}
    # A different topology at the same epoch is refused; an older epoch is told it is stale.
    assert hb(wire, app, "m", 0, topology=topology).error_code == ErrorCode.NONE
    other = word_count_topology(app + "x", source)
    r = hb(wire, app, "n", 0, topology=other)
    assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST, "Topology updates are not supported yet.")
    newer = word_count_topology(app, source, epoch=1)
    assert hb(wire, app, "n", 0, topology=newer).error_code == ErrorCode.INVALID_REQUEST
    # The group is not a consumer group, and a consumer group is not a streams group.
    r = wire.call(ConsumerGroupHeartbeatRequest(group_id=app, member_id=uuid.uuid4().hex, member_epoch=0,
                                                rebalance_timeout_ms=1000, subscribed_topic_names=[source],
                                                topic_partitions=[]), 1)
    assert (r.error_code, r.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, f"Group {app} is not a consumer group.")
    consumer_group = f"cg-{uuid.uuid4().hex[:8]}"
    r = wire.call(ConsumerGroupHeartbeatRequest(group_id=consumer_group, member_id=uuid.uuid4().hex, member_epoch=0,
                                                rebalance_timeout_ms=1000, subscribed_topic_names=[source],
                                                topic_partitions=[]), 1)
    assert r.error_code == ErrorCode.NONE
    r = hb(wire, consumer_group, "m", 0, topology=topology)
    assert (r.error_code, r.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND,
                                               f"Group {consumer_group} is not a streams group.")
    d = wire.call(StreamsGroupDescribeRequest(group_ids=[consumer_group]), 1).groups[0]
    assert (d.error_code, d.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND,
                                               f"Group {consumer_group} is not a streams group.")
    # Topology description updates need a plugin Kafka 4.4 does not have by default.
    r = wire.call(StreamsGroupTopologyDescriptionUpdateRequest(group_id=consumer_group, member_id="m",
                                                               topology_epoch=0), 0)
    assert r.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_streams_protocol_disabled():
    with BrokerThread(config={**CONFIG, "group.coordinator.rebalance.protocols": "classic,consumer"}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            app, source = names()
            r = hb(w, app, "m", 0, topology=word_count_topology(app, source))
            assert r.error_code == ErrorCode.UNSUPPORTED_VERSION
        finally:
            w.close()


def test_group_survives_restart(tmp_path):
    data = str(tmp_path / "data")
    app, source = names()
    with BrokerThread(data_dir=data, config=CONFIG) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(b, source, 2)
            topology = word_count_topology(app, source)
            a = join_ready(w, app, "a", topology)
            before = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
        finally:
            w.close()
    with BrokerThread(data_dir=data, config=CONFIG) as b:
        w = Wire(b.bootstrap_servers)
        try:
            after = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert after.error_code == ErrorCode.NONE
            assert (after.group_state, after.group_epoch, after.assignment_epoch) == (
                before.group_state, before.group_epoch, before.assignment_epoch)
            assert after.topology.encode(1) == before.topology.encode(1)
            [m] = after.members
            assert (m.member_id, m.member_epoch, tasks_of(m.assignment.active_tasks)) == (
                "a", a["r"].member_epoch, a["active"])
            # The member carries on with its epoch.
            r = hb(w, app, "a", a["r"].member_epoch, active=a["active"])
            assert (r.error_code, r.member_epoch) == (ErrorCode.NONE, a["r"].member_epoch)
        finally:
            w.close()


def test_streams_version_feature_gates_the_protocol():
    """As Kafka: with the finalized streams.version downgraded to 0, StreamsGroupHeartbeat and
    StreamsGroupDescribe answer UNSUPPORTED_VERSION; upgraded again, they serve."""
    from kbroker_protocol.messages.update_features import UpdateFeaturesRequest

    U = UpdateFeaturesRequest.FeatureUpdateKey
    with BrokerThread(config=CONFIG) as b:
        w = Wire(b.bootstrap_servers)
        try:
            app, source = names()
            create_topic(b, source, 1)
            down = w.call(UpdateFeaturesRequest(feature_updates=[
                U(feature="streams.version", max_version_level=0, upgrade_type=2)]), 1)
            assert down.error_code == ErrorCode.NONE, down.error_message
            assert [r.error_code for r in down.results] == [ErrorCode.NONE]
            wait_until(lambda: b.call(lambda: b.broker.image.features.get("streams.version", 0)) == 0,
                       message="streams.version finalized at 0")
            assert hb(w, app, "m", 0, topology=word_count_topology(app, source)).error_code == \
                ErrorCode.UNSUPPORTED_VERSION
            d = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert d.error_code == ErrorCode.UNSUPPORTED_VERSION
            up = w.call(UpdateFeaturesRequest(feature_updates=[
                U(feature="streams.version", max_version_level=1, upgrade_type=1)]), 1)
            assert up.error_code == ErrorCode.NONE and [r.error_code for r in up.results] == [ErrorCode.NONE]
            wait_until(lambda: b.call(lambda: b.broker.image.features.get("streams.version", 0)) == 1,
                       message="streams.version finalized at 1")
            assert hb(w, app, "m", 0, topology=word_count_topology(app, source)).error_code == ErrorCode.NONE
        finally:
            w.close()


def test_silent_member_is_fenced_and_empty_group_deleted(tmp_path):
    """A member that stops heartbeating is removed after group.streams.session.timeout.ms and its
    tasks go to the others; once everyone left, DeleteGroups removes the group and its offsets,
    also across a restart."""
    config = {**CONFIG, "group.streams.min.session.timeout.ms": "1000", "group.streams.session.timeout.ms": "1500"}
    data = str(tmp_path / "data")
    app, source = names()
    with BrokerThread(data_dir=data, config=config) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(b, source, 2)
            topology = word_count_topology(app, source)
            a = join_ready(w, app, "a", topology)
            silent = hb(w, app, "silent", 0, topology=topology)
            assert silent.error_code == ErrorCode.NONE
            state = {"r": a["r"], "active": a["active"]}

            def a_has_everything():
                r = hb(w, app, "a", state["r"].member_epoch, active=state["active"])
                assert r.error_code == ErrorCode.NONE, r.error_message
                if r.active_tasks is not None:
                    state["active"] = tasks_of(r.active_tasks)
                state["r"] = r
                members = [m.member_id for m in w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0].members]
                return members == ["a"] and state["active"] == {"0": {0, 1}, "1": {0, 1}}
            wait_until(a_has_everything, message="the silent member fenced, a owning every task")
            T = OffsetCommitRequest.OffsetCommitRequestTopic
            commit = w.call(OffsetCommitRequest(group_id=app, generation_id_or_member_epoch=state["r"].member_epoch,
                                                member_id="a", topics=[T(name=source, partitions=[
                                                    T.OffsetCommitRequestPartition(partition_index=1,
                                                                                   committed_offset=7)])]), 9)
            assert commit.topics[0].partitions[0].error_code == ErrorCode.NONE
            assert hb(w, app, "a", -1).error_code == ErrorCode.NONE
            d = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert (d.group_state, d.members) == ("Empty", [])
            assert w.call(DeleteGroupsRequest(groups_names=[app]), 2).results[0].error_code == ErrorCode.NONE
            assert app not in {g.group_id for g in w.call(ListGroupsRequest(), 5).groups}
        finally:
            w.close()
    with BrokerThread(data_dir=data, config=config) as b:
        w = Wire(b.bootstrap_servers)
        try:
            assert app not in {g.group_id for g in w.call(ListGroupsRequest(), 5).groups}
            d = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert d.error_code == ErrorCode.GROUP_ID_NOT_FOUND
            F = OffsetFetchRequest.OffsetFetchRequestGroup
            fetched = w.call(OffsetFetchRequest(groups=[F(group_id=app, topics=None)]), 9).groups[0]
            assert fetched.topics == []
        finally:
            w.close()


def test_internal_topics_are_asked_of_the_controller_client_and_a_refusal_is_reported(kb, wire, monkeypatch):
    """Issue 14: the heartbeat asks the controller for the missing internal topics through the
    controller client (one CreateTopics on behalf of the member's client, as Kafka's
    AutoTopicCreationManager) and awaits the answer; a refusal is in the MISSING_INTERNAL_TOPICS
    detail and the topics are asked for again by the next heartbeat."""
    from kbroker_protocol.messages import RESPONSES

    app, source = names()
    create_topic(kb, source, 2)
    client = kb.broker.controller_client
    real = client.create_topics
    asked: list[tuple[list[str], str | None]] = []
    refuse = [True]

    async def recording(request, version, requester=None):
        asked.append(([t.name for t in request.topics], requester.client_id))
        if refuse[0]:
            R = RESPONSES[19]
            return R(topics=[R.CreatableTopicResult(name=t.name, error_code=ErrorCode.POLICY_VIOLATION,
                                                    error_message="no") for t in request.topics])
        return await real(request, version, requester)

    monkeypatch.setattr(client, "create_topics", recording)
    internal = [f"{app}-counts-changelog", f"{app}-counts-repartition"]
    r = hb(wire, app, "m1", 0, topology=word_count_topology(app, source))
    assert asked == [(internal, wire.client_id)]
    [detail] = [s.status_detail for s in r.status if s.status_code == MISSING_INTERNAL]
    assert f"Creation failed: {internal[0]} (POLICY_VIOLATION: no), {internal[1]} (POLICY_VIOLATION: no)." in detail
    assert partitions_of(kb, internal[0]) is None
    refuse[0] = False
    r = hb(wire, app, "m1", r.member_epoch, active={})
    assert len(asked) == 2 and "Creation failed" not in str(r.status)
    assert partitions_of(kb, internal[0]) == partitions_of(kb, internal[1]) == 2
