"""KIP-848 regular expression subscriptions are persisted as Kafka persists them: every resolution
writes a ConsumerGroupRegularExpression record (type 16) to ``__consumer_offsets``, an expression
nobody subscribes to any more gets a tombstone, and the coordinator that loads the partition (a
leadership move, a restart) has the group's resolutions (kbroker kept them in memory only, so a
new coordinator had none: with an authorizer an unresolved expression matches nothing)."""

from __future__ import annotations

from typing import Any

from kbroker.coordinator.group_members import decode_record
from kbroker.coordinator.group_regex import ResolvedRegex
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.coordinator import (
    ConsumerGroupRegularExpressionKey,
    ConsumerGroupRegularExpressionValue,
)
from kbroker_protocol.records import iter_records
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
REGEX_TYPES = {16: (ConsumerGroupRegularExpressionKey, ConsumerGroupRegularExpressionValue)}


async def _heartbeat(conn: Any, member_epoch: int, regex: str | None = None) -> Any:
    return await conn.request(ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="m1", member_epoch=member_epoch,
        rebalance_timeout_ms=30000 if member_epoch == 0 else -1, subscribed_topic_regex=regex,
        topic_partitions=[] if member_epoch == 0 else None), 1, 10)


def _regex_records(cluster: Cluster, node: int) -> list[tuple[str, str, list[str] | None, int]]:
    """(group, expression, topics or None for a tombstone, version) of the type 16 records in
    ``node``'s copy of __consumer_offsets-0."""
    out: list[tuple[str, str, list[str] | None, int]] = []
    for header, data in cluster.partition(node, "__consumer_offsets").log.iter_batches():
        if header.is_control:
            continue
        for record in iter_records(data):
            if record.key is None or int.from_bytes(bytes(record.key[:2]), "big") != 16:
                continue
            k, v = decode_record(REGEX_TYPES, 16, bytes(record.key),
                                 None if record.value is None else bytes(record.value))
            assert isinstance(k, ConsumerGroupRegularExpressionKey)
            assert v is None or isinstance(v, ConsumerGroupRegularExpressionValue)
            out.append((k.group_id, k.regular_expression, None if v is None else list(v.topics),
                        -1 if v is None else v.version))
    return out


def _group(cluster: Cluster, node: int) -> Any:
    return cluster.broker(node).group_coordinator.groups.get("g")


async def test_resolved_regexes_are_written_and_move_with_the_group() -> None:
    """(The refreshes are asynchronous and at most every 10 s per group, as Kafka's: the nodes run
    on manual clocks that the test moves past that interval.)"""
    manual = {"kbroker.clock": "manual"}
    async with Cluster(2, {"offsets.topic.num.partitions": "1"}, per_node={1: manual, 2: manual}) as cluster:
        for topic in ("orders-b", "orders-a", "other"):
            cluster.create_topic(topic, [[1, 2]])
        cluster.create_topic("__consumer_offsets", [[1, 2]], configs={"cleanup.policy": "compact"})
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            joined = await _heartbeat(c1, 0, "orders-.*")
            assert (joined.error_code, joined.member_epoch) == (E.NONE, 1)
            await wait_for(lambda: "orders-.*" in _group(cluster, 1).resolved_regexes, message="the refresh")
            resolved = _group(cluster, 1).resolved_regexes
            assert resolved["orders-.*"].topics == {"orders-a", "orders-b"}
            version = resolved["orders-.*"].version
            # Written and replicated: the sorted topics, the image's offset.
            await wait_for(lambda: _regex_records(cluster, 2) == [("g", "orders-.*", ["orders-a", "orders-b"], version)],
                           message="the resolution replicated", details=lambda: _regex_records(cluster, 2))
            assigned = await _heartbeat(c1, 1)
            assert (assigned.error_code, assigned.member_epoch) == (E.NONE, 2)

            cluster.change("__consumer_offsets", 0, leader=2)
            await wait_for(lambda: cluster.partition(2, "__consumer_offsets").is_leader, message="broker 2 leads")
            await wait_for(lambda: _group(cluster, 2) is not None, message="the group loaded on broker 2")
            assert _group(cluster, 2).resolved_regexes == {
                "orders-.*": ResolvedRegex(frozenset({"orders-a", "orders-b"}), version,
                                           resolved["orders-.*"].resolved_at_ms)}
            # No topic appeared since: the new coordinator uses the resolution as it is.
            cluster.nodes[2].advance(20_000)
            again = await _heartbeat(c2, 2)
            assert (again.error_code, again.member_epoch) == (E.NONE, 2)
            assert len(_regex_records(cluster, 2)) == 1
            # A new matching topic: resolved again by a heartbeat 10 s after the last refresh, and written.
            cluster.create_topic("orders-c", [[1, 2]])
            bumped = await _heartbeat(c2, 2)
            assert bumped.error_code == E.NONE
            group = _group(cluster, 2)
            await wait_for(lambda: "orders-c" in group.resolved_regexes["orders-.*"].topics, message="the new topic")
            assert group.resolved_regexes["orders-.*"].topics == {"orders-a", "orders-b", "orders-c"}
            assert _regex_records(cluster, 2)[-1][:3] == ("g", "orders-.*", ["orders-a", "orders-b", "orders-c"])

            # The last subscriber moves to another expression: the old one is tombstoned at once;
            # the new one waits for the next refresh (10 s after the last one).
            moved = await _heartbeat(c2, bumped.member_epoch, "other")
            assert moved.error_code == E.NONE
            assert group.resolved_regexes == {}
            assert _regex_records(cluster, 2)[-1][:3] == ("g", "orders-.*", None)
            cluster.nodes[2].advance(10_001)
            assert (await _heartbeat(c2, moved.member_epoch)).error_code == E.NONE
            await wait_for(lambda: "other" in group.resolved_regexes, message="the refresh of the new expression")
            assert _regex_records(cluster, 2)[-1][:3] == ("g", "other", ["other"])
            # ... and when it leaves, that one is tombstoned too.
            left = await _heartbeat(c2, -1)
            assert left.error_code == E.NONE
            assert _regex_records(cluster, 2)[-1][:3] == ("g", "other", None)
            assert group.resolved_regexes == {}
        finally:
            c1.close()
            c2.close()


async def test_deleting_a_group_tombstones_its_resolved_regexes_before_its_epoch_record() -> None:
    """Kafka's ConsumerGroup.createGroupTombstoneRecords order: members' records, the target
    assignment metadata, the resolved expressions, the group epoch last."""
    async with Cluster(1, {"offsets.topic.num.partitions": "1"}) as cluster:
        cluster.create_topic("orders-a", [[1]])
        cluster.create_topic("__consumer_offsets", [[1]], configs={"cleanup.policy": "compact"})
        conn = await cluster.connect(1)
        try:
            assert (await _heartbeat(conn, 0, "orders-.*")).error_code == E.NONE
            coordinator = cluster.broker(1).group_coordinator
            group = _group(cluster, 1)
            kinds = [int.from_bytes(key[:2], "big") for key, value in coordinator.consumer.tombstones(group)]
            assert kinds == [8, 7, 5, 6, 16, 3]
        finally:
            conn.close()
