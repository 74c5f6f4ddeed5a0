"""Replica placement (kbroker.controller.placement) as Kafka 4.4's StripedReplicaPlacer."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest

from kbroker.controller.placement import (
    PlacementError,
    partition_records,
    place_replicas,
)
from kbroker_protocol.errors import ErrorCode
from tests.unit.cluster_helpers import image_with_brokers as cluster


def test_too_few_brokers_is_invalid_replication_factor_with_kafkas_message():
    image = cluster({1: None, 2: None})
    with pytest.raises(PlacementError) as e:
        place_replicas(image, 1, 3, random.Random(1))
    assert e.value.code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert e.value.message == (  # the placer's own message (CreateTopics prefixes it: test_topic_placement)
        "The target replication factor of 3 cannot be reached "
        "because only 2 broker(s) are registered or some brokers have all their log directories cordoned.")


def test_all_fenced_and_non_positive_replication_factor():
    image = cluster({1: None, 2: None}, fenced={1, 2})
    with pytest.raises(PlacementError) as e:
        place_replicas(image, 1, 1, random.Random(1))
    assert e.value.message == "All brokers are currently fenced, or have all their log directories cordoned."
    with pytest.raises(PlacementError) as e:
        place_replicas(cluster({1: None}), 1, 0, random.Random(1))
    assert e.value.code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert "the replication factor must be positive" in e.value.message


def test_brokers_in_controlled_shutdown_are_not_used():
    image = cluster({1: None, 2: None, 3: None}, shutting_down={3})
    with pytest.raises(PlacementError):
        place_replicas(image, 1, 3, random.Random(1))
    for replicas in place_replicas(image, 20, 2, random.Random(2)):
        assert sorted(replicas) == [1, 2]


@pytest.mark.parametrize("seed", range(20))
def test_leaders_and_replicas_spread_evenly(seed):
    image = cluster({1: None, 2: None, 3: None})
    placed = place_replicas(image, 30, 3, random.Random(seed))
    assert all(sorted(r) == [1, 2, 3] for r in placed)
    assert Counter(r[0] for r in placed) == {1: 10, 2: 10, 3: 10}


@pytest.mark.parametrize("seed", range(20))
def test_rack_aware_placement_spans_racks(seed):
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    image = cluster(racks)
    for replicas in place_replicas(image, 24, 3, random.Random(seed)):
        assert len(set(replicas)) == 3
        assert {racks[b] for b in replicas} == {"a", "b", "c"}


@pytest.mark.parametrize("seed", range(20))
def test_a_fenced_broker_is_never_a_leader_and_only_a_last_resort_follower(seed):
    image = cluster({1: None, 2: None, 3: None}, fenced={3})
    for replicas in place_replicas(image, 10, 2, random.Random(seed)):
        assert replicas[0] != 3
        assert sorted(replicas) == [1, 2]  # two unfenced brokers cover RF 2
    for replicas in place_replicas(image, 10, 3, random.Random(seed)):
        assert replicas[0] != 3 and sorted(replicas) == [1, 2, 3]


def test_placement_is_deterministic_for_a_seed():
    image = cluster({1: "a", 2: "b", 3: "c", 4: None})
    assert place_replicas(image, 12, 2, random.Random(5)) == place_replicas(image, 12, 2, random.Random(5))


def test_partition_records_take_the_active_replicas_as_isr():
    image = cluster({1: None, 2: None, 3: None}, fenced={1})
    topic_id = uuid.uuid4()
    records = partition_records(image, topic_id, 4, [[1, 2, 3], [3, 1]])
    assert [(r.partition_id, r.replicas, r.isr, r.leader, r.leader_epoch, r.partition_epoch) for r in records] == [
        (4, [1, 2, 3], [2, 3], 2, 0, 0), (5, [3, 1], [3], 3, 0, 0)]
    with pytest.raises(PlacementError) as e:
        partition_records(image, topic_id, 0, [[1]])
    assert e.value.message == ("Unable to replicate the partition 1 time(s): All brokers are currently fenced or in "
                               "controlled shutdown.")
