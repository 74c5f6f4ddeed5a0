"""CreateTopics and CreatePartitions as the controller plans them (kbroker.controller.topic_plans)
with Kafka 4.4's striped, rack-aware placer: replicas across racks, fenced brokers a last resort
and never in the ISR, brokers in controlled shutdown unused, too few brokers refused with
INVALID_REPLICATION_FACTOR, manual assignments honoured and checked as Kafka's
ReplicationControlManager.createTopic / createPartitions / validateManualPartitionAssignment."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kbroker.controller.errors import ControllerError
from kbroker.controller.topic_plans import plan_partitions, plan_topic
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.new_topic import NewTopic
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord
from tests.unit.cluster_helpers import image_with_brokers as cluster

E = ErrorCode
RACKS = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}


def _parts(records: list[object]) -> list[mr.PartitionRecord]:
    return [r for r in records if isinstance(r, mr.PartitionRecord)]


def _error(fn, *args, **kwargs) -> tuple[ErrorCode, str | None]:
    with pytest.raises(ControllerError) as e:
        fn(*args, **kwargs)
    return e.value.code, e.value.message


def _create(image: MetadataImage, name: str, partitions: int, rf: int, seed: int = 0) -> list[mr.PartitionRecord]:
    records = plan_topic(image, NewTopic(name, partitions, rf), 1, 1, rng=random.Random(seed))
    for offset, r in enumerate(records, start=image.offset + 1):
        image.apply(r, offset)
    return _parts(records)


@pytest.mark.parametrize("seed", range(10))
def test_create_topics_spreads_each_partitions_replicas_over_the_racks(seed):
    image = cluster(RACKS)
    parts = _create(image, "t", 12, 3, seed)
    assert [p.partition_id for p in parts] == list(range(12))
    for p in parts:
        assert {RACKS[b] for b in p.replicas} == {"a", "b", "c"}
        assert p.isr == p.replicas and p.leader == p.replicas[0]
        assert (p.leader_epoch, p.partition_epoch) == (0, 0)
    assert Counter(p.leader for p in parts) == {b: 2 for b in RACKS}  # leaders spread evenly
    # two racks for RF 2: each partition on both, never twice on one
    two = cluster({1: "a", 2: "a", 3: "b"})
    for p in _create(two, "u", 9, 2, seed):
        assert {RACKS[b] for b in p.replicas} == {"a", "b"}


def test_create_topics_refuses_more_replicas_than_usable_brokers_with_kafkas_message():
    image = cluster({1: "a", 2: "b", 3: None}, shutting_down={3})
    assert _error(plan_topic, image, NewTopic("t", 1, 3), 1, 1) == (
        E.INVALID_REPLICATION_FACTOR,
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached "
        "because only 2 broker(s) are registered or some brokers have all their log directories cordoned.")
    # the default replication factor (-1) is placed the same way
    assert _error(plan_topic, image, NewTopic("t"), 1, 5)[1].startswith("Unable to replicate the partition 5 time(s)")
    assert "t" not in image.topics
    fenced = cluster({1: None, 2: None}, fenced={1, 2})
    assert _error(plan_topic, fenced, NewTopic("t", 1, 1), 1, 1) == (
        E.INVALID_REPLICATION_FACTOR,
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced, or have all their log "
        "directories cordoned.")


def test_replication_factor_and_partition_count_checks_in_kafkas_order():
    image = cluster({1: None})
    message = "Replication factor must be larger than 0, or -1 to use the default value."
    assert _error(plan_topic, image, NewTopic("t", 0, 0), 1, 1) == (E.INVALID_REPLICATION_FACTOR, message)
    assert _error(plan_topic, image, NewTopic("t", 1, -2), 1, 1) == (E.INVALID_REPLICATION_FACTOR, message)
    assert _error(plan_topic, image, NewTopic("t", -2, 1), 1, 1) == (
        E.INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")


@pytest.mark.parametrize("seed", range(10))
def test_a_fenced_broker_gets_replicas_only_when_needed_and_never_leads_nor_joins_the_isr(seed):
    image = cluster({1: "a", 2: "b", 3: "c"}, fenced={3})
    for p in _create(image, "t", 6, 3, seed):
        assert sorted(p.replicas) == [1, 2, 3]
        assert p.leader != 3 and 3 not in p.isr and sorted(p.isr) == [1, 2]
    for p in _create(image, "u", 6, 2, seed):  # racks first: rack c's only broker is fenced but used
        assert p.leader != 3 and 3 not in p.isr and p.isr == [b for b in p.replicas if b != 3]
    one_rack = cluster({1: None, 2: None, 3: None}, fenced={3})
    for p in _create(one_rack, "u", 6, 2, seed):  # within a rack, unfenced brokers first
        assert sorted(p.replicas) == [1, 2]


def test_brokers_in_controlled_shutdown_get_no_new_replica():
    image = cluster({1: "a", 2: "b", 3: "c"}, shutting_down={2})
    for p in _create(image, "t", 8, 2):
        assert sorted(p.replicas) == [1, 3]


def test_manual_assignments_are_honoured_with_the_active_replicas_as_isr():
    image = cluster({1: "a", 2: "a", 3: "b"}, fenced={2})
    records = plan_topic(image, NewTopic("m", assignments=[(1, [3, 2]), (0, [2, 1])]), 1, 1)
    parts = sorted(_parts(records), key=lambda p: p.partition_id)
    assert [(p.partition_id, p.replicas, p.isr, p.leader) for p in parts] == [
        (0, [2, 1], [1], 1), (1, [3, 2], [3], 3)]  # replicas as given, racks ignored


def test_manual_assignment_errors_as_kafka():
    image = cluster({1: None, 2: None, 3: None}, fenced={3})

    def manual(assignments, partitions=-1, rf=-1):
        return _error(plan_topic, image, NewTopic("m", partitions, rf, assignments), 1, 1)

    assert manual({0: [1]}, rf=1) == (
        E.INVALID_REQUEST, "A manual partition assignment was specified, but replication factor was not set to -1.")
    assert manual({0: [1]}, partitions=1) == (
        E.INVALID_REQUEST, "A manual partition assignment was specified, but numPartitions was not set to -1.")
    assert manual([(0, [1]), (0, [2])]) == (
        E.INVALID_REPLICA_ASSIGNMENT, "Found multiple manual partition assignments for partition 0")
    assert manual({0: []}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes an empty replica list.")
    assert manual({0: [1, 9]}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes broker 9, but no such broker is "
        "registered.")
    assert manual({0: [2, 2]}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes the broker 2 more than once.")
    assert manual({0: [1, 2], 1: [1]}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes a partition with 1 replica(s), "
        "but this is not consistent with previous partitions, which have 2 replica(s).")
    assert manual({0: [1], 1: [3]}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "All brokers specified in the manual partition assignment for partition 1 "
        "are fenced or in controlled shutdown.")
    assert manual({0: [1], 2: [2]}) == (
        E.INVALID_REPLICA_ASSIGNMENT, "partitions should be a consecutive 0-based integer sequence")


@pytest.mark.parametrize("seed", range(5))
def test_create_partitions_keeps_the_existing_partitions_and_places_the_new_ones_by_rack(seed):
    image = cluster(RACKS)
    before = _create(image, "t", 2, 3, seed)
    added = plan_partitions(image, "t", 8, None, rng=random.Random(seed))
    assert [p.partition_id for p in added] == list(range(2, 8))
    for p in added:
        assert {RACKS[b] for b in p.replicas} == {"a", "b", "c"} and p.isr == p.replicas
    for p in before:  # planning touched nothing
        assert image.topics["t"].partitions[p.partition_id].replicas == p.replicas


def test_create_partitions_placement_and_manual_errors_as_kafka():
    image = cluster({1: "a", 2: "b", 3: "c"})
    _create(image, "t", 1, 3)
    image.apply(BrokerRegistrationChangeRecord(broker_id=3, broker_epoch=image.brokers[3].epoch,
                                                  in_controlled_shutdown=1), image.offset + 1)
    # the placer's message as is (no "Unable to replicate" prefix: Kafka's createPartitions)
    assert _error(plan_partitions, image, "t", 2, None) == (
        E.INVALID_REPLICATION_FACTOR,
        "The target replication factor of 3 cannot be reached because only 2 broker(s) are registered or some "
        "brokers have all their log directories cordoned.")
    assert _error(plan_partitions, image, "t", 2, [[1, 2]]) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes a partition with 2 replica(s), "
        "but this is not consistent with previous partitions, which have 3 replica(s).")
    assert _error(plan_partitions, image, "t", 3, [[1, 2, 3], [1, 2, 9]]) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes broker 9, but no such broker is "
        "registered.")
    (p1,) = plan_partitions(image, "t", 2, [[3, 2, 1]])
    assert (p1.partition_id, p1.replicas, p1.isr, p1.leader) == (1, [3, 2, 1], [2, 1], 2)
    only_three = cluster({1: None, 2: None, 3: None}, fenced={1, 2})
    _create_manual = plan_topic(only_three, NewTopic("m", assignments={0: [3]}), 1, 1)
    for offset, r in enumerate(_create_manual, start=only_three.offset + 1):
        only_three.apply(r, offset)
    only_three.apply(BrokerRegistrationChangeRecord(broker_id=3, broker_epoch=only_three.brokers[3].epoch,
                                                       fenced=1), only_three.offset + 1)
    assert _error(plan_partitions, only_three, "m", 2, [[1]]) == (
        E.INVALID_REPLICA_ASSIGNMENT, "All brokers specified in the manual partition assignment for partition 1 "
        "are fenced or in controlled shutdown.")
