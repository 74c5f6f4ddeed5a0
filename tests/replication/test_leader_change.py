"""Leadership moves: the old leader follows the new one and truncates what was never replicated;
clients are pointed at the new leader (KIP-951) and fenced by leader epochs."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, fetch, produce, wait_for
from tests.replication.leadership import connected, produced, replica_fetch, write_unreplicated_suffix

E = ErrorCode


async def test_old_leader_truncates_its_unreplicated_suffix_after_a_leader_change():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        old, new = cluster.partition(1, "t"), cluster.partition(2, "t")
        await write_unreplicated_suffix(cluster, [b"kept"] * 4, [b"lost"] * 3)
        assert old.log.log_end_offset == 7 and new.log.log_end_offset == 4
        # The controller moves leadership to broker 2 (from the ISR), leader epoch 1.
        cluster.change("t", 0, leader=2)
        assert new.is_leader and new.leader_epoch == 1
        assert new.log.leader_epochs.entries() == [(0, 0), (1, 4)]  # epoch 1 starts at its log end
        assert not old.is_leader and old.leader_id == 2 and old.leader_epoch == 1
        # The old leader fetches from the new one, learns that epoch 0 ends at 4 and truncates there.
        await wait_for(lambda: old.log.log_end_offset == 4, message="the old leader truncated to 4",
                       details=lambda: old.log.log_end_offset)
        async with connected(cluster, 2) as conn:
            part = produced(await produce(conn, "t", batch([b"new"] * 2), acks=-1))
            assert part.error_code == E.NONE and part.base_offset == 4
        await wait_for(lambda: old.log.log_end_offset == 6, message="the old leader caught up")
        assert cluster.log_bytes(1, "t") == cluster.log_bytes(2, "t")
        assert old.log.leader_epochs.entries() == [(0, 0), (1, 4)]
        values = [data for _h, data in old.log.iter_batches()]
        assert not any(b"lost" in v for v in values)


async def test_requests_to_a_follower_name_the_leader_and_epochs_are_fenced():
    async with Cluster(3) as cluster:
        topic_id = cluster.create_topic("t", [[1, 2]])
        cluster.change("t", 0, leader=2)  # epoch 1, leader 2; broker 1 follows, broker 3 has no replica
        host, port = cluster.bootstrap(2).split(",")[0].rsplit(":", 1)
        async with connected(cluster, 1) as conn:
            resp = await produce(conn, "t", batch([b"x"]), acks=1, version=11)
            part = produced(resp)
            assert part.error_code == E.NOT_LEADER_OR_FOLLOWER
            assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (2, 1)
            assert [(n.node_id, n.host, n.port) for n in resp.node_endpoints] == [(2, host, int(port))]
            # A batch breaking the request's rules (two batches) is answered so first, as Kafka's
            # KafkaApis checks them (ProduceRequest.validateRecords) before the replica manager
            two = batch([b"x"]) + batch([b"y"])
            assert produced(await produce(conn, "t", two, acks=1, version=11)).error_code == E.INVALID_RECORD
            # A consumer with the old leader epoch is fenced and told the new leader (v16+).
            resp = await fetch(conn, "t", 0, leader_epoch=0, version=16, topic_id=topic_id)
            p = resp.responses[0].partitions[0]
            assert p.error_code == E.FENCED_LEADER_EPOCH
            assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (2, 1)
            assert [(n.node_id, n.port) for n in resp.node_endpoints] == [(2, int(port))]
            # Before v11 (no client metadata) only the leader serves consumers.
            resp = await fetch(conn, "t", 0, version=10)
            assert resp.responses[0].partitions[0].error_code == E.NOT_LEADER_OR_FOLLOWER
        async with connected(cluster, 3) as conn:
            assert produced(await produce(conn, "t", two, acks=1, version=11)).error_code == E.INVALID_RECORD
            resp = await fetch(conn, "t", 0, version=16, topic_id=topic_id)
            p = resp.responses[0].partitions[0]
            assert p.error_code == E.NOT_LEADER_OR_FOLLOWER
            assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (2, 1)
            assert [(n.node_id, n.port) for n in resp.node_endpoints] == [(2, int(port))]
        async with connected(cluster, 2) as conn:
            for epoch, code in ((0, E.FENCED_LEADER_EPOCH), (2, E.UNKNOWN_LEADER_EPOCH), (1, E.NONE)):
                resp = await fetch(conn, "t", 0, leader_epoch=epoch, version=16, topic_id=topic_id)
                assert resp.responses[0].partitions[0].error_code == code, epoch


async def test_replica_fetch_from_a_broker_that_is_not_a_replica_is_refused():
    async with Cluster(3) as cluster:
        topic_id = cluster.create_topic("t", [[1, 2]])
        async with connected(cluster, 1) as conn:
            for epoch, code in ((0, E.UNKNOWN_LEADER_EPOCH), (-1, E.NOT_LEADER_OR_FOLLOWER)):
                assert (await replica_fetch(conn, topic_id, 3, epoch)).error_code == code
            assert 3 not in cluster.partition(1, "t").followers


async def test_diverging_epoch_answer_to_a_follower_ahead_of_the_leader():
    async with Cluster(2) as cluster:
        topic_id = cluster.create_topic("t", [[1, 2]])
        async with connected(cluster, 1) as conn:
            assert produced(await produce(conn, "t", batch([b"a"] * 5), acks=-1)).error_code == E.NONE
            # A replica claiming epoch 0 up to offset 9: the leader's epoch 0 ends at 5.
            p = await replica_fetch(conn, topic_id, 2, 0, fetch_offset=9, last_fetched_epoch=0)
            assert p.error_code == E.NONE
            # Epoch 0 is the current one: its end is the log end.
            assert (p.diverging_epoch.epoch, p.diverging_epoch.end_offset) == (0, 5)
            assert not p.records


async def test_restarted_old_leader_follows_the_new_one_and_drops_what_it_alone_had():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        await write_unreplicated_suffix(cluster, [b"kept"] * 3, [b"lost"] * 2)
        await cluster.stop(1)
        # Broker 1 is gone: the controller elects broker 2 (ISR [2], leader epoch 1).
        cluster.change("t", 0, leader=2, isr=[2])
        async with connected(cluster, 2) as conn:
            part = produced(await produce(conn, "t", batch([b"new"] * 4), acks=-1))
            assert part.error_code == E.NONE and part.base_offset == 3
        await cluster.start(1)
        old = cluster.partition(1, "t")
        assert not old.is_leader and old.leader_epoch == 1
        await wait_for(lambda: old.log.log_end_offset == 7 and cluster.log_bytes(1, "t") == cluster.log_bytes(2, "t"),
                       message="broker 1 truncated to 3 and caught up to 7", details=lambda: old.log.log_end_offset)
        assert old.log.leader_epochs.entries() == [(0, 0), (1, 3)]
        # Caught up, it is added back to the ISR through AlterPartition.
        await wait_for(lambda: cluster.partition(2, "t").isr == [2, 1], message="ISR [2, 1]")


async def test_restarted_leader_keeps_its_high_watermark_not_its_log_end():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        await write_unreplicated_suffix(cluster, [b"c"] * 3, [b"u"] * 2)
        assert cluster.partition(1, "t").log.high_watermark == 3
        await cluster.stop(1)
        refuse = {"api": "Fetch", "client_id": "broker-2-fetcher-0", "error": "NOT_LEADER_OR_FOLLOWER"}
        await cluster.start(1, faults=[refuse])
        leader = cluster.partition(1, "t")
        assert leader.is_leader and leader.log.log_end_offset == 5
        # From replication-offset-checkpoint: the two records the follower never had stay invisible.
        assert leader.log.high_watermark == 3
        async with connected(cluster, 1) as conn:
            part = (await fetch(conn, "t", 3)).responses[0].partitions[0]
            assert part.high_watermark == 3 and not part.records
        # The follower fetches again: it gets them and the high watermark moves.
        cluster.nodes[1].clear_faults()
        await wait_for(lambda: leader.log.high_watermark == 5, message="the high watermark at 5")


async def test_batch_validated_while_leadership_moves_is_not_appended_by_the_old_leader():
    import asyncio

    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        old = cluster.partition(1, "t")
        async with connected(cluster, 1) as conn:
            # Over the inline bounds, even those of a pool still starting (COLD_INLINE_RECORDS):
            # validated in the worker pool, the append waits for it.
            from kbroker.replication.validation import COLD_INLINE_RECORDS

            big = batch([b"r%d" % i for i in range(COLD_INLINE_RECORDS + 1000)])
            pending = asyncio.ensure_future(produce(conn, "t", big, acks=1, version=11))
            await wait_for(lambda: old.append_order.busy, message="the append queued behind its validation")
            cluster.change("t", 0, leader=2)
            part = produced(await pending)
        assert part.error_code == E.NOT_LEADER_OR_FOLLOWER
        assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (2, 1)
        assert old.log.log_end_offset == 0 and cluster.partition(2, "t").log.log_end_offset == 0
