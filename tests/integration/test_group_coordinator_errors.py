"""The group APIs answer what Kafka's group coordinator answers when it cannot take a group:
COORDINATOR_LOAD_IN_PROGRESS while the group's ``__consumer_offsets`` partition loads (Heartbeat
answers NONE then, "blindly", and ListGroups fails as a whole), NOT_COORDINATOR when this broker
does not lead that partition (ListGroups leaves its groups out) or the offsets topic does not exist
(ListGroups lists nothing). Each error lands where Kafka puts it: top level, per group or per
partition. Groups in the other partitions are answered as usual meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.coordinator.partitioning import partition_for
from kbroker.metadata import metadata_records as mr
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_describe import ConsumerGroupDescribeRequest
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.join_group import JoinGroupRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.list_groups import ListGroupsRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_delete import OffsetDeleteRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from kbroker_protocol.messages.sync_group import SyncGroupRequest
from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest

E = ErrorCode
PARTITIONS = 5  # offsets.topic.num.partitions of BrokerThread
TOPIC = "coord-errors"
OFFSETS = "__consumer_offsets"


def create_topic(broker: BrokerThread, name: str, partitions: int) -> None:
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import create_topic as create

    result = broker.call(lambda: create(broker.broker, NewTopic(name, partitions, 1)))
    assert result.error == E.NONE


def offsets_topic_exists(broker: BrokerThread) -> bool:
    return broker.call(lambda: broker.broker.image.topic(OFFSETS) is not None)


def groups_in_different_partitions() -> tuple[str, str]:
    first = f"g-{uuid.uuid4().hex[:8]}"
    while True:
        other = f"g-{uuid.uuid4().hex[:8]}"
        if partition_for(other, PARTITIONS) != partition_for(first, PARTITIONS):
            return first, other


# -- the requests, each reduced to what Kafka decides for the group ----------------------------------------


def join(w: Wire, group: str) -> Any:
    r = w.call(JoinGroupRequest(
        group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="m-1", group_instance_id=None,
        protocol_type="consumer", protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")]),
        9)
    return r.error_code, r.member_id


def sync(w: Wire, group: str) -> Any:
    return w.call(SyncGroupRequest(group_id=group, generation_id=1, member_id="m-1", group_instance_id=None,
                                   protocol_type="consumer", protocol_name="range", assignments=[]), 5).error_code


def heartbeat(w: Wire, group: str) -> Any:
    return w.call(HeartbeatRequest(group_id=group, generation_id=1, member_id="m-1", group_instance_id=None),
                  4).error_code


def leave(w: Wire, group: str) -> Any:
    r = w.call(LeaveGroupRequest(group_id=group, members=[
        LeaveGroupRequest.MemberIdentity(member_id="m-1", group_instance_id=None)]), 5)
    return r.error_code, [m.error_code for m in r.members]


def commit(w: Wire, group: str) -> Any:
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition
    r = w.call(OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                   group_instance_id=None, topics=[
                                       T(name=TOPIC, partitions=[P(partition_index=0, committed_offset=5,
                                                                   committed_metadata="")]),
                                       T(name="no-such-topic", partitions=[P(partition_index=0, committed_offset=5,
                                                                             committed_metadata="")])]), 8)
    return [(t.name, p.error_code) for t in r.topics for p in t.partitions]


def fetch_v1(w: Wire, group: str) -> Any:
    r = w.call(OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0, 1])]), 1)
    return [(p.partition_index, p.committed_offset, p.error_code) for t in r.topics for p in t.partitions]


def fetch_v7(w: Wire, group: str) -> Any:
    r = w.call(OffsetFetchRequest(group_id=group, topics=None, require_stable=True), 7)
    return r.error_code, [(t.name, p.partition_index) for t in r.topics for p in t.partitions]


def fetch_v8(w: Wire, group: str) -> Any:
    G = OffsetFetchRequest.OffsetFetchRequestGroup
    r = w.call(OffsetFetchRequest(groups=[G(group_id=group, topics=None)], require_stable=False), 8)
    return [(g.group_id, g.error_code, [t.name for t in g.topics]) for g in r.groups]


def offset_delete(w: Wire, group: str) -> Any:
    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    r = w.call(OffsetDeleteRequest(group_id=group, topics=[
        T(name=TOPIC, partitions=[T.OffsetDeleteRequestPartition(partition_index=1)])]), 0)
    return r.error_code, [p.error_code for t in r.topics for p in t.partitions]


def describe(w: Wire, group: str) -> Any:
    r = w.call(DescribeGroupsRequest(groups=[group]), 5)
    return [(g.group_id, g.error_code, g.group_state) for g in r.groups]


def delete(w: Wire, group: str) -> Any:
    r = w.call(DeleteGroupsRequest(groups_names=[group]), 2)
    return [(g.group_id, g.error_code) for g in r.results]


def cg_heartbeat(w: Wire, group: str) -> Any:
    r = w.call(ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=uuid.uuid4().hex, member_epoch=5, rebalance_timeout_ms=30000,
        subscribed_topic_names=[TOPIC], topic_partitions=[]), 1)
    return r.error_code


def cg_describe(w: Wire, group: str) -> Any:
    r = w.call(ConsumerGroupDescribeRequest(group_ids=[group]), 0)
    return [(g.group_id, g.error_code) for g in r.groups]


def txn_commit(w: Wire, group: str) -> Any:
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    r = w.call(TxnOffsetCommitRequest(
        transactional_id="no-such-txn", group_id=group, producer_id=4242, producer_epoch=0, generation_id_or_member_epoch=-1,
        member_id="", group_instance_id=None, topics=[T(name=TOPIC, partitions=[
            T.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=1, committed_metadata="")])]), 3)
    return [p.error_code for t in r.topics for p in t.partitions]


def list_groups(w: Wire) -> tuple[int, set[str]]:
    r = w.call(ListGroupsRequest(states_filter=[]), 4)
    return r.error_code, {g.group_id for g in r.groups}


# What Kafka answers for a group the coordinator cannot take: error -> observed answer.
APIS: dict[str, tuple[Callable[[Wire, str], Any], Callable[[str, int], Any]]] = {
    "JoinGroup": (join, lambda g, e: (e, "")),
    "SyncGroup": (sync, lambda g, e: e),
    # Kafka's Heartbeat answers NONE while the group loads ("blindly respond").
    "Heartbeat": (heartbeat, lambda g, e: E.NONE if e == E.COORDINATOR_LOAD_IN_PROGRESS else e),
    "LeaveGroup": (leave, lambda g, e: (e, [])),
    # Partitions of unknown topics are answered before the coordinator.
    "OffsetCommit": (commit, lambda g, e: [(TOPIC, e), ("no-such-topic", E.UNKNOWN_TOPIC_OR_PARTITION)]),
    "OffsetFetch v1": (fetch_v1, lambda g, e: [(0, -1, e), (1, -1, e)]),
    "OffsetFetch v7": (fetch_v7, lambda g, e: (e, [])),
    "OffsetFetch v8": (fetch_v8, lambda g, e: [(g, e, [])]),
    "OffsetDelete": (offset_delete, lambda g, e: (e, [])),
    "DescribeGroups": (describe, lambda g, e: [(g, e, "")]),
    "DeleteGroups": (delete, lambda g, e: [(g, e)]),
    "ConsumerGroupHeartbeat": (cg_heartbeat, lambda g, e: e),
    "ConsumerGroupDescribe": (cg_describe, lambda g, e: [(g, e)]),
    "TxnOffsetCommit": (txn_commit, lambda g, e: [e]),
}


@pytest.fixture(scope="module")
def cbroker():
    with BrokerThread() as b:
        create_topic(b, TOPIC, 2)
        w = Wire(b.bootstrap_servers)
        try:
            # The offsets topic exists (created by the first group FindCoordinator).
            wait_until(lambda: w.call(FindCoordinatorRequest(key_type=0, coordinator_keys=["warm-up"]), 4)
                       .coordinators[0].error_code == E.NONE, message="__consumer_offsets")
        finally:
            w.close()
        yield b


@pytest.fixture
def wire(cbroker):
    w = Wire(cbroker.bootstrap_servers)
    yield w
    w.close()


@pytest.fixture
def groups(cbroker, wire):
    """Two simple groups with an offset committed each, in different offsets partitions."""
    group, other = groups_in_different_partitions()
    for g in (group, other):
        assert commit(wire, g)[0] == (TOPIC, E.NONE)
    return group, other


def set_loading(broker: BrokerThread, index: int, loading: bool) -> None:
    def run() -> None:
        partitions = broker.broker.group_coordinator.loading_partitions
        if loading:
            partitions.add(index)
        else:
            partitions.discard(index)
    broker.call(run)


def set_leader(broker: BrokerThread, index: int, leader: int) -> None:
    def run() -> None:
        b = broker.broker
        topic = b.image.topic(OFFSETS)
        b.controller.commit([mr.PartitionChangeRecord(partition_id=index, topic_id=topic.topic_id, leader=leader)])
    broker.call(run)


def leads(broker: BrokerThread, index: int) -> bool:
    def run() -> bool:
        b = broker.broker
        state = b.image.partition(OFFSETS, index)
        return state is not None and state.leader == b.node_id
    return broker.call(run)


@pytest.fixture(params=["loading", "not-leader"])
def unavailable(request, cbroker, groups):
    """Puts the first group's partition into a state the coordinator cannot serve; yields the
    error Kafka's runtime raises for it, and restores the partition afterwards."""
    group, _ = groups
    index = partition_for(group, PARTITIONS)
    if request.param == "loading":
        set_loading(cbroker, index, True)
        try:
            yield E.COORDINATOR_LOAD_IN_PROGRESS
        finally:
            set_loading(cbroker, index, False)
    else:
        set_leader(cbroker, index, -1)
        wait_until(lambda: not leads(cbroker, index), message="leadership moved away")
        try:
            yield E.NOT_COORDINATOR
        finally:
            set_leader(cbroker, index, 1)
            wait_until(lambda: leads(cbroker, index), message="leadership back")


@pytest.mark.parametrize("api", list(APIS))
def test_group_api_answers_coordinator_error(cbroker, wire, groups, unavailable, api):
    call, expected = APIS[api]
    group, other = groups
    assert call(wire, group) == expected(group, unavailable)
    # The group in another partition is served as usual.
    assert call(wire, other) != expected(other, unavailable)


@pytest.mark.parametrize("api", list(APIS))
def test_group_api_served_again_once_the_partition_is_active(cbroker, wire, groups, api):
    """The same request answered normally once the partition has loaded (so each expectation
    above can fail)."""
    call, expected = APIS[api]
    group, _ = groups
    index = partition_for(group, PARTITIONS)
    set_loading(cbroker, index, True)
    try:
        assert call(wire, group) == expected(group, E.COORDINATOR_LOAD_IN_PROGRESS)
    finally:
        set_loading(cbroker, index, False)
    assert call(wire, group) != expected(group, E.COORDINATOR_LOAD_IN_PROGRESS)


def test_multi_group_requests_answer_per_group(cbroker, wire, groups):
    group, other = groups
    set_loading(cbroker, partition_for(group, PARTITIONS), True)
    try:
        assert [(g, e) for g, e, _ in describe_both(wire, group, other)] == [
            (group, E.COORDINATOR_LOAD_IN_PROGRESS), (other, E.NONE)]
        G = OffsetFetchRequest.OffsetFetchRequestGroup
        r = wire.call(OffsetFetchRequest(groups=[G(group_id=group, topics=None), G(group_id=other, topics=None)],
                                         require_stable=False), 8)
        assert [(g.group_id, g.error_code, [(t.name, [p.committed_offset for p in t.partitions]) for t in g.topics])
                for g in r.groups] == [(group, E.COORDINATOR_LOAD_IN_PROGRESS, []), (other, E.NONE, [(TOPIC, [5])])]
        r = wire.call(ConsumerGroupDescribeRequest(group_ids=[group, other]), 0)
        # The other group is classic: not a consumer group.
        assert [(g.group_id, g.error_code) for g in r.groups] == [
            (group, E.COORDINATOR_LOAD_IN_PROGRESS), (other, E.GROUP_ID_NOT_FOUND)]
    finally:
        set_loading(cbroker, partition_for(group, PARTITIONS), False)


def describe_both(w: Wire, *groups: str) -> list[tuple[str, int, str]]:
    r = w.call(DescribeGroupsRequest(groups=list(groups)), 5)
    return [(g.group_id, g.error_code, g.group_state) for g in r.groups]


def test_list_groups_fails_while_a_partition_loads(cbroker, wire, groups):
    group, other = groups
    assert {group, other} <= list_groups(wire)[1]
    set_loading(cbroker, partition_for(group, PARTITIONS), True)
    try:
        assert list_groups(wire) == (E.COORDINATOR_LOAD_IN_PROGRESS, set())
    finally:
        set_loading(cbroker, partition_for(group, PARTITIONS), False)
    assert list_groups(wire)[0] == E.NONE


def test_list_groups_leaves_out_partitions_led_elsewhere(cbroker, wire, groups):
    group, other = groups
    index = partition_for(group, PARTITIONS)
    set_leader(cbroker, index, -1)
    wait_until(lambda: not leads(cbroker, index), message="leadership moved away")
    try:
        code, listed = list_groups(wire)
        assert code == E.NONE
        assert other in listed and group not in listed
    finally:
        set_leader(cbroker, index, 1)
        wait_until(lambda: leads(cbroker, index), message="leadership back")
    assert {group, other} <= list_groups(wire)[1]


def test_whole_coordinator_loading_answers_every_group(cbroker, wire, groups):
    """Before start-up has replayed the topic, every partition counts as loading."""
    group, other = groups

    def set_loaded(loaded: bool) -> None:
        def run() -> None:
            cbroker.broker.group_coordinator.loaded = loaded
        cbroker.call(run)

    set_loaded(False)
    try:
        assert [(g, e) for g, e, _ in describe_both(wire, group, other)] == [
            (group, E.COORDINATOR_LOAD_IN_PROGRESS), (other, E.COORDINATOR_LOAD_IN_PROGRESS)]
        assert list_groups(wire) == (E.COORDINATOR_LOAD_IN_PROGRESS, set())
        assert heartbeat(wire, other) == E.NONE
    finally:
        set_loaded(True)
    assert heartbeat(wire, other) == E.UNKNOWN_MEMBER_ID


# -- no offsets topic yet -------------------------------------------------------------------------------------

# Kafka has no coordinator context without the topic: NOT_COORDINATOR (the client looks the
# coordinator up again, and that FindCoordinator creates the topic).
WITHOUT_TOPIC = ["SyncGroup", "Heartbeat", "LeaveGroup", "OffsetFetch v1", "OffsetFetch v7", "OffsetFetch v8",
                 "OffsetDelete", "DescribeGroups", "DeleteGroups", "ConsumerGroupDescribe"]


def test_without_offsets_topic_group_apis_answer_not_coordinator(tmp_path):
    with BrokerThread(data_dir=str(tmp_path / "data")) as b:
        create_topic(b, TOPIC, 2)
        w = Wire(b.bootstrap_servers)
        try:
            group = f"g-{uuid.uuid4().hex[:8]}"
            for api in WITHOUT_TOPIC:
                call, expected = APIS[api]
                assert call(w, group) == expected(group, E.NOT_COORDINATOR), api
            # ListGroups reads no coordinator at all: nothing listed, no error.
            assert list_groups(w) == (E.NONE, set())
            assert not offsets_topic_exists(b)
            # A group write creates the topic (see group_coordinator), then the group is served.
            assert commit(w, group)[0] == (TOPIC, E.NONE)
            assert offsets_topic_exists(b)
            assert describe(w, group) == [(group, E.NONE, "Empty")]
        finally:
            w.close()


# -- a stopping broker ----------------------------------------------------------------------------------------


def test_stopping_broker_answers_not_coordinator(tmp_path):
    """A broker shutting down unloads its coordinators: every group gets NOT_COORDINATOR (so clients
    look the coordinator up again), ListGroups lists nothing."""
    with BrokerThread(data_dir=str(tmp_path / "data")) as b:
        create_topic(b, TOPIC, 2)
        w = Wire(b.bootstrap_servers)

        def set_stopping(stopping: bool) -> None:
            def run() -> None:
                b.broker.stopping = stopping
            b.call(run)

        try:
            wait_until(lambda: w.call(FindCoordinatorRequest(key_type=0, coordinator_keys=["warm-up"]), 4)
                       .coordinators[0].error_code == E.NONE, message="__consumer_offsets")
            group = f"g-{uuid.uuid4().hex[:8]}"
            assert commit(w, group)[0] == (TOPIC, E.NONE)
            assert list_groups(w) == (E.NONE, {group})
            set_stopping(True)
            try:
                for api in APIS:
                    call, expected = APIS[api]
                    assert call(w, group) == expected(group, E.NOT_COORDINATOR), api
                assert list_groups(w) == (E.NONE, set())
            finally:
                set_stopping(False)  # lets the broker's own stop() run
        finally:
            w.close()
