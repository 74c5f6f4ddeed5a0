"""On a broker: a ConsumerGroupHeartbeat whose records the log refuses (a storage error here) is
answered NOT_COORDINATOR, as Kafka normalises KAFKA_STORAGE_ERROR, and leaves no group behind (the
unit tests in tests/unit/test_group_write_failures.py cover the group state in detail)."""

from __future__ import annotations

from typing import Any

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from tests.replication.harness import Cluster

E = ErrorCode


async def test_a_heartbeat_the_log_refuses_changes_nothing() -> None:
    async with Cluster(1, {"offsets.topic.num.partitions": "1"}) as cluster:
        cluster.create_topic("t", [[1]])
        cluster.create_topic("__consumer_offsets", [[1]], configs={"cleanup.policy": "compact"})
        broker = cluster.broker(1)
        conn = await cluster.connect(1)
        real = broker.replica_manager.append_internal
        failing = {"on": True}

        def append_internal(partition: Any, batch: Any) -> int:
            if failing["on"] and partition.topic == "__consumer_offsets":
                raise OSError(5, "Input/output error")
            result: int = real(partition, batch)
            return result

        broker.replica_manager.append_internal = append_internal
        request = ConsumerGroupHeartbeatRequest(group_id="g", member_id="m1", member_epoch=0, rebalance_timeout_ms=30000,
                                                subscribed_topic_names=["t"], topic_partitions=[])
        try:
            refused = await conn.request(request, 1, 10)
            assert refused.error_code == E.NOT_COORDINATOR
            assert "g" not in broker.group_coordinator.groups
            assert cluster.partition(1, "__consumer_offsets").log.log_end_offset == 0
            failing["on"] = False
            joined = await conn.request(request, 1, 10)
            assert (joined.error_code, joined.member_epoch) == (E.NONE, 1)
        finally:
            broker.replica_manager.append_internal = real
            conn.close()


async def test_a_group_deletion_the_log_refuses_keeps_the_group() -> None:
    """DeleteGroups whose tombstones cannot be appended answers the error as Kafka normalises it
    (it was an UNKNOWN_SERVER_ERROR from the handler's unexpected exception) and keeps the group."""
    from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest

    async with Cluster(1, {"offsets.topic.num.partitions": "1"}) as cluster:
        cluster.create_topic("t", [[1]])
        cluster.create_topic("__consumer_offsets", [[1]], configs={"cleanup.policy": "compact"})
        broker = cluster.broker(1)
        conn = await cluster.connect(1)
        real = broker.replica_manager.append_internal
        try:
            join = ConsumerGroupHeartbeatRequest(group_id="g", member_id="m1", member_epoch=0,
                                                 rebalance_timeout_ms=30000, subscribed_topic_names=["t"],
                                                 topic_partitions=[])
            joined = await conn.request(join, 1, 10)
            left = await conn.request(ConsumerGroupHeartbeatRequest(group_id="g", member_id="m1", member_epoch=-1), 1, 10)
            assert (joined.error_code, left.error_code) == (E.NONE, E.NONE)

            def append_internal(partition: Any, batch: Any) -> int:
                if partition.topic == "__consumer_offsets":
                    raise OSError(28, "No space left on device")
                result: int = real(partition, batch)
                return result

            broker.replica_manager.append_internal = append_internal
            refused = await conn.request(DeleteGroupsRequest(groups_names=["g"]), 2, 10)
            assert refused.results[0].error_code == E.NOT_COORDINATOR
            assert "g" in broker.group_coordinator.groups
            broker.replica_manager.append_internal = real
            deleted = await conn.request(DeleteGroupsRequest(groups_names=["g"]), 2, 10)
            assert deleted.results[0].error_code == E.NONE
            assert "g" not in broker.group_coordinator.groups
        finally:
            broker.replica_manager.append_internal = real
            conn.close()
