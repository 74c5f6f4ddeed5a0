"""kafka_server_replicamanager_underreplicatedpartitions / _underminisrpartitioncount as Kafka's
ReplicaManager counts them: partitions this broker leads, min.insync.replicas capped at the
replica count (Partition.isUnderReplicated, isUnderMinIsr, effectiveMinIsr)."""

from __future__ import annotations

from types import SimpleNamespace

from kbroker.metrics.collector import under_replicated


def part(leader: bool, replicas: int, isr: int, min_isr: int | None = None) -> SimpleNamespace:
    config = {} if min_isr is None else {"min.insync.replicas": min_isr}
    return SimpleNamespace(is_leader=leader, replicas=list(range(replicas)), isr=list(range(isr)), config=config)


def test_only_led_partitions_count():
    assert under_replicated([part(False, 3, 1, 2)]) == (0, 0)  # a follower's view: its leader counts it
    assert under_replicated([part(True, 3, 1, 2)]) == (1, 1)


def test_min_isr_is_capped_at_the_replica_count():
    assert under_replicated([part(True, 1, 1, 2)]) == (0, 0)  # Kafka accepts acks=all here too
    assert under_replicated([part(True, 2, 1, 3)]) == (1, 1)  # effective min ISR 2
    assert under_replicated([part(True, 3, 2, 2)]) == (1, 0)
    assert under_replicated([part(True, 3, 3), part(True, 2, 2, 2)]) == (0, 0)


def test_counts_add_up_over_partitions():
    hosted = [part(True, 3, 1, 2), part(True, 3, 2, 2), part(False, 3, 1, 3), part(True, 1, 1, 5)]
    assert under_replicated(hosted) == (2, 1)
