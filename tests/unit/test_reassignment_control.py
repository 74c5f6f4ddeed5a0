"""Partition reassignment in the controller (kbroker.controller.reassignment), as Kafka 4.4's
ReplicationControlManager.alterPartitionReassignments / listPartitionReassignments with
PartitionReassignmentReplicas and PartitionReassignmentRevert, on an image in memory."""

from __future__ import annotations

from kbroker.config import BrokerConfig
from kbroker.controller.reassignment import (
    ReassignmentReplicas,
    ReassignmentRevert,
    alter_partition_reassignments,
    list_partition_reassignments,
)
from kbroker.metadata.image import LEADER_UNCHANGED
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import AlterPartitionReassignmentsRequest as Req
from kbroker_protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest as ListReq,
)
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord, PartitionChangeRecord
from tests.unit.cluster_helpers import alter_isr, part, partition_error, running_cluster


def _request(targets: dict[tuple[str, int], list[int] | None], allow_rf_change: bool = True) -> Req:
    topics: dict[str, list] = {}
    for (name, index), replicas in targets.items():
        topics.setdefault(name, []).append(Req.ReassignableTopic.ReassignablePartition(
            partition_index=index, replicas=replicas))
    return Req(timeout_ms=30000, allow_replication_factor_change=allow_rf_change,
               topics=[Req.ReassignableTopic(name=n, partitions=ps) for n, ps in topics.items()])


def _reassign(log, targets, allow_rf_change=True, commit=True):
    resp, records = alter_partition_reassignments(log.image, _request(targets, allow_rf_change))
    if commit:
        log.commit(records)
    errors = {(t.name, p.partition_index): (p.error_code, p.error_message) for t in resp.responses
              for p in t.partitions}
    return resp, records, errors


def _state(log, name="t", index=0):
    p = log.image.partition(name, index)
    return p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas


def _expand(log, tid, isr, index=0):
    p = log.image.topic_by_id(tid).partitions[index]
    resp, records = alter_isr(log, p.leader, tid, isr=isr, leader_epoch=p.leader_epoch,
                           partition_epoch=p.partition_epoch, index=index)
    log.commit(records)
    return resp, records


# -- the replica arithmetic ------------------------------------------------------------------------


def test_reassignment_replicas_are_the_target_then_the_removed_ones():
    r = ReassignmentReplicas.of([1, 2, 3], [3, 4, 5])
    assert (r.removing, r.adding, r.replicas) == ([1, 2], [4, 5], [3, 4, 5, 1, 2])
    assert r.original_replicas() == [3, 1, 2]
    r = ReassignmentReplicas.of([1, 2, 3], [3, 2, 1])
    assert (r.removing, r.adding, r.replicas) == ([], [], [3, 2, 1])


def test_revert_keeps_the_original_replicas_and_drops_adding_ones_from_the_isr():
    p = part([3, 4, 5, 1, 2], [1, 2, 3, 4], 1)
    p.adding_replicas, p.removing_replicas = [4, 5], [1, 2]
    assert ReassignmentRevert.of(p) == ReassignmentRevert([3, 1, 2], [1, 2, 3], False)
    p = part([4, 1], [4], 4)  # only an adding replica in sync: the revert is unclean
    p.adding_replicas, p.removing_replicas = [4], [1]
    assert ReassignmentRevert.of(p) == ReassignmentRevert([1], [1], True)


# -- AlterPartitionReassignments -------------------------------------------------------------------


def test_a_move_adds_replicas_then_completes_when_they_join_the_isr_and_moves_the_leader():
    log, _ = running_cluster(brokers=(1, 2, 3, 4, 5, 6))
    tid = log.topic("t", [[1, 2, 3]])
    before = log.image.partition("t", 0)
    epoch = before.leader_epoch
    resp, records, errors = _reassign(log, {("t", 0): [4, 5, 6]})
    assert resp.error_code == ErrorCode.NONE and errors == {("t", 0): (ErrorCode.NONE, None)}
    r = records[0]
    assert (r.replicas, r.adding_replicas, r.removing_replicas, r.leader, r.isr) == \
        ([4, 5, 6, 1, 2, 3], [4, 5, 6], [1, 2, 3], LEADER_UNCHANGED, None)
    assert _state(log) == ([4, 5, 6, 1, 2, 3], [1, 2, 3], 1, [4, 5, 6], [1, 2, 3])
    assert log.image.partition("t", 0).leader_epoch == epoch  # nothing left yet: no epoch bump
    listed = list_partition_reassignments(log.image, None)
    assert [(t.name, [(p.partition_index, p.replicas, p.adding_replicas, p.removing_replicas)
                      for p in t.partitions]) for t in listed.topics] == \
        [("t", [(0, [4, 5, 6, 1, 2, 3], [4, 5, 6], [1, 2, 3])])]
    # Two of the three adding replicas in sync: not done.
    resp, records = _expand(log, tid, [1, 2, 3, 4, 5])
    assert partition_error(resp) == ErrorCode.NONE
    assert _state(log) == ([4, 5, 6, 1, 2, 3], [1, 2, 3, 4, 5], 1, [4, 5, 6], [1, 2, 3])
    # The last one joins: the final replica set, the leader moves off the removed replica 1.
    resp, records = _expand(log, tid, [1, 2, 3, 4, 5, 6])
    assert partition_error(resp) == ErrorCode.NEW_LEADER_ELECTED
    assert _state(log) == ([4, 5, 6], [4, 5, 6], 4, [], [])
    p = log.image.partition("t", 0)
    assert p.leader_epoch == epoch + 1
    assert list_partition_reassignments(log.image, None).topics == []


def test_a_reordering_completes_at_once_and_a_shrink_waits_for_the_remaining_replicas_in_sync():
    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    log.topic("t", [[1, 2, 3], [1, 2, 3]], isr=[[1, 2, 3], [1, 2]])
    _, records, errors = _reassign(log, {("t", 0): [3, 2, 1]})
    assert errors[("t", 0)][0] == ErrorCode.NONE
    assert records[0].replicas == [3, 2, 1] and records[0].leader == LEADER_UNCHANGED
    assert _state(log) == ([3, 2, 1], [1, 2, 3], 1, [], [])  # leadership stays until a preferred election
    # RF 3 -> 2 keeping 2 and 3, with 3 out of the ISR: Kafka waits (the ISR would shrink to [2]).
    _, records, _ = _reassign(log, {("t", 1): [2, 3]})
    assert _state(log, index=1) == ([2, 3, 1], [1, 2], 1, [], [1])
    assert list_partition_reassignments(log.image, None).topics[0].partitions[0].removing_replicas == [1]


def test_a_move_removing_a_follower_keeps_the_leader_and_bumps_the_leader_epoch():
    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    tid = log.topic("t", [[1, 2, 3]])
    epoch = log.image.partition("t", 0).leader_epoch
    _reassign(log, {("t", 0): [1, 2, 4]})
    assert _state(log) == ([1, 2, 4, 3], [1, 2, 3], 1, [4], [3])
    resp, records = _expand(log, tid, [1, 2, 3, 4])
    assert partition_error(resp) == ErrorCode.NONE
    assert records[0].leader == 1  # same leader, set: the epoch moves because a replica left
    assert _state(log) == ([1, 2, 4], [1, 2, 4], 1, [], [])
    assert log.image.partition("t", 0).leader_epoch == epoch + 1
    out = resp.topics[0].partitions[0]
    assert (out.leader_id, out.isr, out.leader_epoch) == (1, [1, 2, 4], epoch + 1)


def test_cancel_restores_the_original_replicas():
    log, _ = running_cluster(brokers=(1, 2, 3, 4, 5))
    tid = log.topic("t", [[1, 2, 3]])
    _reassign(log, {("t", 0): [1, 4, 5]})
    _expand(log, tid, [1, 2, 3, 4])
    assert _state(log) == ([1, 4, 5, 2, 3], [1, 2, 3, 4], 1, [4, 5], [2, 3])
    _, records, errors = _reassign(log, {("t", 0): None})
    assert errors[("t", 0)] == (ErrorCode.NONE, None)
    assert _state(log) == ([1, 2, 3], [1, 2, 3], 1, [], [])
    assert records[0].leader == 1  # replicas 4 and 5 left: the leader epoch moves
    # A second cancel finds none in progress.
    _, records, errors = _reassign(log, {("t", 0): None})
    assert errors[("t", 0)] == (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)  # Kafka: the default message left out
    assert records == []


def test_cancel_needing_an_unclean_election_is_refused_unless_the_topic_allows_it():
    log, _ = running_cluster(brokers=(1, 2, 3))
    tid = log.topic("t", [[1]])
    u = log.topic("u", [[1]], configs={"unclean.leader.election.enable": "true"})
    _reassign(log, {("t", 0): [2], ("u", 0): [2]})
    # The move half way with only the adding replica in sync (as after the old one failed).
    for topic_id in (tid, u):
        log.commit([PartitionChangeRecord(topic_id=topic_id, partition_id=0, isr=[2], leader=2)])
    assert _state(log) == ([2, 1], [2], 2, [2], [1])
    _, records, errors = _reassign(log, {("t", 0): None, ("u", 0): None})
    assert errors[("t", 0)] == (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                "Unable to revert partition assignment for t:0 because it would require an "
                                "unclean leader election.")
    assert errors[("u", 0)][0] == ErrorCode.NONE
    assert [r.topic_id for r in records] == [u]
    assert _state(log, "u") == ([1], [1], 1, [], [])
    assert _state(log, "t") == ([2, 1], [2], 2, [2], [1])  # unchanged


def test_bad_targets_get_kafkas_errors_and_change_nothing():
    log, _ = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2], [2, 3]])
    before = [(p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch)
              for p in log.image.topic("t").partitions.values()]
    offset = log.image.offset
    resp, records, errors = _reassign(log, {
        ("t", 0): [1, 7],  # broker 7 not registered
        ("t", 1): [3, 3],  # duplicate
        ("t", 5): [1, 2],  # no such partition
        ("nope", 0): [1, 2],  # no such topic
    })
    resp2, records2, errors2 = _reassign(log, {("t", 0): []})
    assert records == [] and records2 == [] and resp.error_code == ErrorCode.NONE
    assert errors == {
        ("t", 0): (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                   "The manual partition assignment includes broker 7, but no such broker is registered."),
        ("t", 1): (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                   "The manual partition assignment includes the broker 3 more than once."),
        ("t", 5): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition t:5."),
        ("nope", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find a topic named nope."),
    }
    assert errors2 == {("t", 0): (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                  "The manual partition assignment includes an empty replica list.")}
    assert log.image.offset == offset
    assert before == [(p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch)
                      for p in log.image.topic("t").partitions.values()]
    assert list_partition_reassignments(log.image, None).topics == []


def test_a_good_partition_succeeds_beside_a_bad_one():
    log, _ = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2], [2, 3]])
    _, records, errors = _reassign(log, {("t", 0): [9, 1], ("t", 1): [3, 1]})
    assert errors[("t", 0)][0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT and errors[("t", 1)][0] == ErrorCode.NONE
    assert [r.partition_id for r in records] == [1]
    assert _state(log, index=1) == ([3, 1, 2], [2, 3], 2, [1], [2])


def test_replication_factor_change_refused_when_not_allowed():
    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    log.topic("t", [[1, 2, 3]])
    resp, records, errors = _reassign(log, {("t", 0): [1, 2]}, allow_rf_change=False)
    assert errors[("t", 0)] == (ErrorCode.INVALID_REPLICATION_FACTOR, "The replication factor is changed from 3 to 2")
    assert records == [] and resp.allow_replication_factor_change is False
    # During a reassignment the size compared is the target's (replicas + adding - removing).
    _reassign(log, {("t", 0): [1, 2, 4]})
    _, _, errors = _reassign(log, {("t", 0): [1, 4, 3]}, allow_rf_change=False)
    assert errors[("t", 0)][0] == ErrorCode.NONE
    _, _, errors = _reassign(log, {("t", 0): [1, 2, 3, 4]}, allow_rf_change=False)
    assert errors[("t", 0)] == (ErrorCode.INVALID_REPLICATION_FACTOR, "The replication factor is changed from 3 to 4")


def test_a_new_target_during_a_reassignment_starts_from_the_current_replicas():
    log, _ = running_cluster(brokers=(1, 2, 3, 4, 5))
    log.topic("t", [[1, 2, 3]])
    _reassign(log, {("t", 0): [1, 2, 4]})
    assert _state(log) == ([1, 2, 4, 3], [1, 2, 3], 1, [4], [3])
    _reassign(log, {("t", 0): [1, 2, 5]})  # Kafka: adding/removing from the union [1, 2, 4, 3]
    assert _state(log) == ([1, 2, 5, 3, 4], [1, 2, 3], 1, [5], [3, 4])


def test_a_fenced_target_replica_cannot_lead_and_the_leader_moves_to_an_active_one():
    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    tid = log.topic("t", [[1, 2]])
    log.commit([BrokerRegistrationChangeRecord(broker_id=3, broker_epoch=log.image.brokers[3].epoch, fenced=1)])
    # A fenced broker is registered: Kafka accepts it as a target (it catches up once unfenced).
    _, _, errors = _reassign(log, {("t", 0): [3, 4]})
    assert errors[("t", 0)][0] == ErrorCode.NONE
    _expand(log, tid, [1, 2, 4])
    assert _state(log) == ([3, 4, 1, 2], [1, 2, 4], 1, [3, 4], [1, 2])


def test_list_named_partitions_leaves_out_unknown_and_idle_ones():
    log, _ = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2], [2, 3]])
    log.topic("u", [[1]])
    _reassign(log, {("t", 1): [1, 3], ("u", 0): [2]})
    T = ListReq.ListPartitionReassignmentsTopics
    resp = list_partition_reassignments(log.image, [T(name="t", partition_indexes=[0, 1, 9]),
                                                    T(name="missing", partition_indexes=[0])])
    assert resp.error_code == ErrorCode.NONE
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in resp.topics] == [("t", [1])]
    assert [t.name for t in list_partition_reassignments(log.image, None).topics] == ["t", "u"]


def test_alter_partition_from_a_non_leader_changes_nothing():
    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    tid = log.topic("t", [[1, 2, 3]], isr=[[1, 2]])
    _reassign(log, {("t", 0): [2, 3, 4]})
    offset = log.image.offset
    p = log.image.partition("t", 0)
    resp, records = alter_isr(log, 2, tid, isr=[1, 2, 3, 4], leader_epoch=p.leader_epoch,
                           partition_epoch=p.partition_epoch)
    assert partition_error(resp) == ErrorCode.INVALID_REQUEST and records == []
    assert log.image.offset == offset and _state(log) == ([2, 3, 4, 1], [1, 2], 1, [4], [1])


def test_kafkas_reassign_partitions_scenario():
    """Kafka's ReplicationControlManagerTest.testReassignPartitions, step by step."""
    log, _ = running_cluster(brokers=(0, 1, 2, 3))
    foo = log.topic("foo", [[1, 2, 3], [3, 2, 1]])
    log.topic("bar", [[1, 2, 3]])
    assert list_partition_reassignments(log.image, None).topics == []
    request = _request({("foo", 0): [3, 2, 1], ("foo", 1): [0, 2, 1], ("foo", 2): [0, 2, 1]})
    request.topics.append(Req.ReassignableTopic(name="bar", partitions=[]))
    resp, records = alter_partition_reassignments(log.image, request)
    assert [(t.name, [(p.partition_index, p.error_code, p.error_message) for p in t.partitions])
            for t in resp.responses] == [
        ("foo", [(0, 0, None), (1, 0, None), (2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition foo:2.")]),
        ("bar", [])]
    assert (resp.error_code, resp.error_message) == (0, None)
    log.commit(records)
    T = ListReq.ListPartitionReassignmentsTopics
    listed = [(t.name, [(p.partition_index, p.removing_replicas, p.adding_replicas, p.replicas) for p in t.partitions])
              for t in list_partition_reassignments(log.image, None).topics]
    assert listed == [("foo", [(1, [3], [0], [0, 2, 1, 3])])]
    assert list_partition_reassignments(log.image, [T(name="bar", partition_indexes=[0, 1, 2])]).topics == []
    named = list_partition_reassignments(log.image, [T(name="foo", partition_indexes=[0, 1, 2])])
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in named.topics] == [("foo", [1])]

    cancel = _request({("foo", 0): None, ("foo", 1): None, ("foo", 2): None, ("bar", 0): None})
    resp, records = alter_partition_reassignments(log.image, cancel)
    assert [(t.name, [(p.partition_index, p.error_code, p.error_message) for p in t.partitions])
            for t in resp.responses] == [
        ("foo", [(0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None), (1, 0, None),
                 (2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition foo:2.")]),
        ("bar", [(0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)])]
    [r] = records
    assert (r.topic_id, r.partition_id, r.replicas, r.leader, r.removing_replicas, r.adding_replicas, r.isr) == \
        (foo, 1, [2, 1, 3], 3, [], [], None)

    # (the cancel is not applied) the leader's AlterPartition adding 0 completes the move off 3
    p = log.image.partition("foo", 1)
    assert (p.partition_epoch, p.leader_epoch) == (1, 0)
    resp, records = alter_isr(log, 3, foo, isr=[3, 0, 2, 1], leader_epoch=0, partition_epoch=1, index=1)
    assert partition_error(resp) == ErrorCode.NEW_LEADER_ELECTED
    log.commit(records)
    assert list_partition_reassignments(log.image, None).topics == []
    assert _state(log, "foo", 1) == ([0, 2, 1], [0, 2, 1], 0, [], [])


def test_a_reassignment_under_way_survives_a_snapshot():
    from kbroker.metadata.snapshot import image_to_records, records_to_image

    log, _ = running_cluster(brokers=(1, 2, 3, 4))
    log.topic("t", [[1, 2, 3]])
    _reassign(log, {("t", 0): [2, 3, 4]})
    copy = records_to_image(image_to_records(log.image), log.image.offset + 1)

    def listed(image):
        return [(t.name, [(p.partition_index, p.replicas, p.adding_replicas, p.removing_replicas)
                          for p in t.partitions]) for t in list_partition_reassignments(image, None).topics]

    assert listed(copy) == listed(log.image) == [("t", [(0, [2, 3, 4, 1], [4], [1])])]
    resp, records = alter_partition_reassignments(copy, _request({("t", 0): None}))
    assert resp.responses[0].partitions[0].error_code == ErrorCode.NONE
    assert records[0].replicas == [2, 3, 1] and records[0].adding_replicas == []


def test_kafkas_new_reassignment_that_removes_previously_adding_replicas():
    """Kafka's testReassignPartitionsHandlesNewReassignmentThatRemovesPreviouslyAddingReplicas."""
    from kbroker.controller.replication_control import ELECTION_PREFERRED, elect_leader

    log, _ = running_cluster(brokers=(0, 1, 2, 3, 4, 5))
    tid = log.topic("topic-1", [[0, 1]])
    _reassign(log, {("topic-1", 0): [2, 3]})
    assert _state(log, "topic-1") == ([2, 3, 0, 1], [0, 1], 0, [2, 3], [0, 1])
    resp, _ = _expand(log, tid, [0, 1, 2])
    out = resp.topics[0].partitions[0]
    assert (out.error_code, out.isr) == (ErrorCode.NONE, [0, 1, 2])
    records: list = []
    assert elect_leader(log.image, "topic-1", 0, ELECTION_PREFERRED, records) == (ErrorCode.NONE, None)
    log.commit(records)
    assert log.image.partition("topic-1", 0).leader == 2
    _reassign(log, {("topic-1", 0): [4, 5]})
    assert _state(log, "topic-1") == ([4, 5, 0, 1, 2, 3], [0, 1, 2], 2, [4, 5], [0, 1, 2, 3])
    resp, _ = _expand(log, tid, [0, 1, 2, 3, 4, 5])
    assert partition_error(resp) == ErrorCode.NEW_LEADER_ELECTED
    assert _state(log, "topic-1") == ([4, 5], [4, 5], 4, [], [])
    assert list_partition_reassignments(log.image, None).topics == []


# -- the controller listener's handlers ----------------------------------------------------------


class _FakeController:
    def __init__(self, log, active=True, lose_leadership=False):
        self.log, self.image, self.active, self.lose = log, log.image, active, lose_leadership
        self.cluster_control = None  # made by cluster_runtime.cluster_control_for
        self.term = 1

    def is_active(self):
        return self.active

    def exclusive(self):
        import contextlib

        @contextlib.asynccontextmanager
        async def section():
            yield

        return section()

    async def write(self, records):
        from kbroker.controller.quorum import ControllerError

        if self.lose:
            raise ControllerError(ErrorCode.NOT_CONTROLLER)
        return self.log.commit(records)


class _FakeBroker:
    def __init__(self, controller):
        from kbroker.security.acls import Authorizer

        self.controller = controller
        self.config = BrokerConfig({}, warn=False)
        self.authorizer = Authorizer()  # not enabled: every request allowed


def test_controller_listener_handlers_answer_not_controller_unless_active():
    import asyncio

    from kbroker.api.alter_partition_reassignments import handle_alter_partition_reassignments_on_controller
    from kbroker.api.controller_listener import ControllerRequestContext
    from kbroker.api.list_partition_reassignments import handle_list_partition_reassignments_on_controller
    from kbroker_protocol.messages import RequestHeader

    log, _ = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2]])

    def call(handler, key, version, body, controller):
        header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=1, client_id="c")
        return asyncio.run(handler(ControllerRequestContext(_FakeBroker(controller), header), body))

    alter = _request({("t", 0): [2, 3]})
    offset = log.image.offset
    for controller in (_FakeController(log, active=False), _FakeController(log, lose_leadership=True)):
        resp = call(handle_alter_partition_reassignments_on_controller, 45, 1, alter, controller)
        assert resp.error_code == ErrorCode.NOT_CONTROLLER
        assert [p.error_code for p in resp.responses[0].partitions] == [ErrorCode.NOT_CONTROLLER]
    assert log.image.offset == offset
    resp = call(handle_list_partition_reassignments_on_controller, 46, 0, ListReq(topics=None),
                _FakeController(log, active=False))
    assert resp.error_code == ErrorCode.NOT_CONTROLLER
    resp = call(handle_alter_partition_reassignments_on_controller, 45, 1, alter, _FakeController(log))
    assert resp.responses[0].partitions[0].error_code == ErrorCode.NONE
    resp = call(handle_list_partition_reassignments_on_controller, 46, 0, ListReq(topics=None), _FakeController(log))
    assert [(t.name, [p.adding_replicas for p in t.partitions]) for t in resp.topics] == [("t", [[3]])]


def test_partitions_past_the_record_bound_fail_on_their_own():
    # Kafka's BoundedList of MAX_RECORDS_PER_USER_OP (10,000; 2 here), its overflow caught per
    # partition: UNKNOWN_SERVER_ERROR without a message; a partition needing no record still succeeds.
    log, _ = running_cluster(brokers=(1, 2, 3))
    log.topic("t", [[1, 2], [2, 3], [3, 1], [1, 3]])
    resp, records = alter_partition_reassignments(
        log.image, _request({("t", 0): [2, 1], ("t", 1): [3, 2], ("t", 2): [1, 3], ("t", 3): [1, 3]}), max_records=2)
    errors = {(t.name, p.partition_index): (p.error_code, p.error_message) for t in resp.responses for p in t.partitions}
    assert errors == {("t", 0): (ErrorCode.NONE, None), ("t", 1): (ErrorCode.NONE, None),
                      ("t", 2): (ErrorCode.UNKNOWN_SERVER_ERROR, None), ("t", 3): (ErrorCode.NONE, None)}
    assert [r.partition_id for r in records] == [0, 1]

