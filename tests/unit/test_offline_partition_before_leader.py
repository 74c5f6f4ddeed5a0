"""A produce (or DeleteRecords) to a replica whose log is offline (its dir failed) is
KAFKA_STORAGE_ERROR before the leader check, as Kafka's ReplicaManager.getPartitionOrException
(HostedPartition.Offline) answers whatever the partition's leadership."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.api.context import partition_or_error
from kbroker.metadata.image import MetadataImage
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.replica_manager import ReplicaManager
from kbroker_protocol.errors import ErrorCode


def _partition(*, leader: bool, offline: bool) -> Any:
    log = SimpleNamespace(offline=OSError("the dir failed") if offline else None)
    return SimpleNamespace(topic="t", index=0, is_leader=leader, log=log)


def _broker(partition: Any) -> Any:
    return SimpleNamespace(replica_manager=SimpleNamespace(partition=lambda topic, index: partition),
                           image=MetadataImage())


@pytest.mark.parametrize(("leader", "offline", "expected"), [
    (False, True, ErrorCode.KAFKA_STORAGE_ERROR),
    (False, False, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),  # (not in this empty image)
    (True, True, ErrorCode.NONE),  # the append answers it (below)
])
def test_an_offline_replica_is_a_storage_error_before_the_leader_check(
        leader: bool, offline: bool, expected: ErrorCode) -> None:
    partition = _partition(leader=leader, offline=offline)
    found, code = partition_or_error(_broker(partition), "t", 0, leader=True)
    assert code == expected
    assert (found is partition) == (expected == ErrorCode.NONE)


def test_an_append_to_an_offline_log_that_lost_its_leadership_is_a_storage_error() -> None:
    manager: Any = object.__new__(ReplicaManager)
    manager.broker = SimpleNamespace(node_id=1)
    with pytest.raises(ProduceError) as raised:
        manager._append(_partition(leader=False, offline=True), None, b"", None, 9)
    assert raised.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    with pytest.raises(ProduceError) as raised:
        manager._append(_partition(leader=False, offline=False), None, b"", None, 9)
    assert raised.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
