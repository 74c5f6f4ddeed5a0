"""The ReplicaManager façade on its own (no cluster): leadership from metadata deltas
(become-leader / become-follower, stale records skipped), appends routed to the leader replica and
refused elsewhere (with the partition lookup the partition APIs answer from), fetch routing (the
follower fetches from the leader; the leader tracks its followers' fetches), and the delayed
operations on a manual clock: acks=all produces and the ISR expiration. The broker around it, and the
tests' set-ups, are tests/unit/replica_fakes.py; real partition logs live in a temporary directory."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbroker.api.context import partition_or_error
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.replica_manager import RACK_AWARE_SELECTOR, ReplicaManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch
from tests.unit.replica_fakes import (
    NODE_ID,
    PRODUCE_VERSION,
    START_MS,
    FakeControllerChannel,
    FakeFetchers,
    FakePartitionState,
    FakeReplicaBroker,
    append,
    apply,
    awaiting_replication,
    batch,
    close,
    led_with_follower,
    refused,
    replica_manager,
    settle,
)


@pytest.fixture
async def rm(tmp_path: Path) -> AsyncIterator[tuple[ReplicaManager, FakeReplicaBroker, FakeFetchers]]:
    manager, broker, fetchers = replica_manager(tmp_path)
    yield manager, broker, fetchers
    close(manager, broker)


# -- leadership from metadata deltas ---------------------------------------------------------

async def test_become_leader_takes_appends_at_the_next_offsets(rm) -> None:
    manager, broker, fetchers = rm
    p = broker.open_partition("t", 0)
    apply(manager, broker, p, FakePartitionState(leader=NODE_ID, replicas=[NODE_ID], isr=[NODE_ID], leader_epoch=2))
    assert p.is_leader and p.leader_epoch == 2
    assert fetchers.fetching == {}
    first = append(manager, broker, "t", 0, b"a", b"b")
    second = append(manager, broker, "t", 0, b"c")
    assert (first.error, first.base_offset, second.base_offset) == (ErrorCode.NONE, 0, 2)
    assert p.log.high_watermark == 3  # no followers: committed at once
    assert partition_or_error(broker, "t", 0, leader=True) == (p, ErrorCode.NONE)


async def test_become_follower_fetches_from_the_leader_and_refuses_appends(rm) -> None:
    manager, broker, fetchers = rm
    p = broker.open_partition("t", 0)
    apply(manager, broker, p, FakePartitionState(leader=2, replicas=[2, NODE_ID], isr=[2, NODE_ID], leader_epoch=1))
    assert not p.is_leader and p.leader_id == 2
    assert fetchers.leader_of(p) == 2
    assert refused(manager, broker, "t", 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    with pytest.raises(ProduceError) as info:
        manager.append_internal(p, batch(b"marker"))
    assert info.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert p.log.log_end_offset == 0
    # The partition APIs: Produce (leader only) is sent away, Fetch from a follower is served.
    assert partition_or_error(broker, "t", 0, leader=True) == (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert partition_or_error(broker, "t", 0) == (p, ErrorCode.NONE)


async def test_leadership_moves_both_ways_and_a_stale_record_is_skipped(rm) -> None:
    manager, broker, fetchers = rm
    p = broker.open_partition("t", 0)
    apply(manager, broker, p, FakePartitionState(2, [2, NODE_ID], [2, NODE_ID], leader_epoch=1, partition_epoch=1))
    apply(manager, broker, p, FakePartitionState(NODE_ID, [2, NODE_ID], [NODE_ID], leader_epoch=2, partition_epoch=2))
    assert p.is_leader and fetchers.fetching == {}  # no longer fetching once it leads
    assert append(manager, broker, "t", 0, b"a").base_offset == 0
    # A record older than the one applied (partition epoch 1) changes nothing.
    manager.apply_partition_state(p, FakePartitionState(3, [3, NODE_ID], [3], leader_epoch=1,
                                                        partition_epoch=1))
    assert p.is_leader and p.leader_epoch == 2
    apply(manager, broker, p, FakePartitionState(3, [3, NODE_ID], [3, NODE_ID], leader_epoch=3, partition_epoch=3))
    assert not p.is_leader and fetchers.leader_of(p) == 3
    assert refused(manager, broker, "t", 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_a_partition_not_hosted_here_is_unknown_or_led_elsewhere(rm) -> None:
    manager, broker, _fetchers = rm
    assert manager.partition("t", 0) is None
    assert partition_or_error(broker, "t", 0, leader=True) == (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    broker.image.partitions[("t", 0)] = FakePartitionState(2, [2, 3], [2, 3])  # in the metadata, not here
    assert partition_or_error(broker, "t", 0, leader=True) == (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert partition_or_error(broker, "t", 0) == (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)


async def test_acks_all_is_refused_below_min_insync_replicas(rm) -> None:
    manager, broker, _fetchers = rm
    p = broker.open_partition("t", 0, {"min.insync.replicas": "2"})
    apply(manager, broker, p, FakePartitionState(NODE_ID, [NODE_ID, 2], [NODE_ID]))
    assert refused(manager, broker, "t", 0, acks=-1) == ErrorCode.NOT_ENOUGH_REPLICAS
    assert append(manager, broker, "t", 0, b"a", acks=1).base_offset == 0  # acks=1 goes ahead


def _refusal(manager: ReplicaManager, broker: FakeReplicaBroker, records: bytes, acks: int) -> ErrorCode:
    partition = broker.partitions[("t", 0)]
    with pytest.raises(ProduceError) as info:
        manager.append_from_client(partition, records, PRODUCE_VERSION, acks, None, broker.clock.now_ms())
    return info.value.code


async def test_below_min_insync_replicas_acks_all_is_refused_before_the_log_checks_the_batch(rm) -> None:
    """Kafka's order: the request's rules (KafkaApis, ProduceRequest.validateRecords), then the
    leader's min-ISR check (Partition.appendRecordsToLeader), then the log's checks of the batch
    (UnifiedLog.analyzeAndValidateRecords, LogValidator): an under-replicated partition answers a
    corrupt batch NOT_ENOUGH_REPLICAS for acks=all."""
    manager, broker, _fetchers = rm
    p = broker.open_partition("t", 0, {"min.insync.replicas": "2", "max.message.bytes": "200"})
    apply(manager, broker, p, FakePartitionState(NODE_ID, [NODE_ID, 2], [NODE_ID]))
    good = batch(b"a")
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 1
    offset_5 = bytearray(good)
    struct.pack_into(">q", offset_5, 0, 5)
    no_sequence = build_batch([Record(key=None, value=b"a", timestamp=START_MS)], producer_id=7, producer_epoch=0)
    too_large = batch(b"x" * 300)
    for records, log_error in ((bytes(bad_crc), ErrorCode.CORRUPT_MESSAGE), (bytes(offset_5), ErrorCode.INVALID_RECORD),
                               (no_sequence, ErrorCode.INVALID_RECORD), (too_large, ErrorCode.MESSAGE_TOO_LARGE)):
        assert _refusal(manager, broker, records, acks=-1) == ErrorCode.NOT_ENOUGH_REPLICAS
        assert _refusal(manager, broker, records, acks=1) == log_error
    # the request's own rules come first: two batches, a batch of magic 1
    assert _refusal(manager, broker, good + good, acks=-1) == ErrorCode.INVALID_RECORD
    magic_1 = bytearray(good)
    magic_1[16] = 1
    assert _refusal(manager, broker, bytes(magic_1), acks=-1) == ErrorCode.INVALID_RECORD
    assert p.log.log_end_offset == 0


# -- the follower's fetches and the high watermark -------------------------------------------

async def test_follower_fetches_move_the_high_watermark(rm) -> None:
    manager, broker, _fetchers = rm
    p = led_with_follower(manager, broker)
    append(manager, broker, "t", 0, b"a", b"b")
    assert p.log.high_watermark == 0  # follower 2, in the ISR, has not fetched
    manager.on_follower_fetch(p, 2, 1, 0, p.log.log_end_offset, 7)
    assert p.log.high_watermark == 1
    manager.on_follower_fetch(p, 2, 2, 0, p.log.log_end_offset, 7)
    assert p.log.high_watermark == 2


# -- delayed operations on the manual clock --------------------------------------------------

async def test_acks_all_waits_for_the_follower_then_answers(rm) -> None:
    manager, broker, _fetchers = rm
    p = led_with_follower(manager, broker)
    waiting = await awaiting_replication(manager, broker, p)
    broker.clock.advance(29_999)
    await settle()
    assert not waiting.done()
    manager.on_follower_fetch(p, 2, 1, 0, p.log.log_end_offset, 7)
    assert await waiting == ErrorCode.NONE


async def test_acks_all_times_out_when_the_clock_passes_its_deadline(rm) -> None:
    manager, broker, _fetchers = rm
    p = led_with_follower(manager, broker)
    waiting = await awaiting_replication(manager, broker, p)
    broker.clock.advance(29_999)
    await settle()
    assert not waiting.done()
    broker.clock.advance(1)
    assert await waiting == ErrorCode.REQUEST_TIMED_OUT


async def test_acks_all_waiting_when_leadership_moves_answers_not_leader(rm) -> None:
    manager, broker, _fetchers = rm
    p = led_with_follower(manager, broker, partition_epoch=1)
    waiting = await awaiting_replication(manager, broker, p)
    apply(manager, broker, p, FakePartitionState(2, [NODE_ID, 2], [NODE_ID, 2], leader_epoch=1, partition_epoch=2))
    assert await waiting == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_time(rm) -> None:
    manager, broker, _fetchers = rm
    channel = FakeControllerChannel()
    manager.alter_partition_channel = channel
    lag = broker.config["replica.lag.time.max.ms"]
    p = led_with_follower(manager, broker, partition_epoch=4)
    manager.on_follower_fetch(p, 2, 0, 0, 0, 7)  # caught up now
    append(manager, broker, "t", 0, b"a")  # ... and not after this
    broker.clock.advance(lag)
    await settle()
    assert channel.requests == [] and p.isr == [NODE_ID, 2]  # not yet out of sync for longer than the lag
    broker.clock.advance(lag)
    await settle()
    [request] = channel.requests
    [topic] = request.topics
    [data] = topic.partitions
    assert (data.new_isr, data.partition_epoch) == ([NODE_ID], 4)
    assert p.isr == [NODE_ID] and manager.isr_shrinks == 1
    assert p.log.high_watermark == 1  # the high watermark no longer waits for the follower


# -- KIP-392: which replica a consumer fetches from -------------------------------------------

async def test_a_consumer_is_sent_to_the_caught_up_follower_in_its_rack(tmp_path: Path) -> None:
    manager, broker, _fetchers = replica_manager(tmp_path, {"replica.selector.class": RACK_AWARE_SELECTOR})
    try:
        for node, rack in ((1, "a"), (2, "b"), (3, "c")):
            broker.image.brokers[node].rack = rack
        p = broker.open_partition("t", 0)
        apply(manager, broker, p, FakePartitionState(NODE_ID, [NODE_ID, 2, 3], [NODE_ID, 2, 3]))
        append(manager, broker, "t", 0, b"a", b"b")
        manager.on_follower_fetch(p, 2, 2, 0, p.log.log_end_offset, 7)
        manager.on_follower_fetch(p, 3, 1, 0, p.log.log_end_offset, 7)
        listener = "PLAINTEXT"
        assert manager.preferred_read_replica(p, "b", 1, listener) == 2
        assert manager.preferred_read_replica(p, "c", 1, listener) == 3
        assert manager.preferred_read_replica(p, "c", 2, listener) is None  # follower 3 does not have offset 2
        assert manager.preferred_read_replica(p, "a", 1, listener) is None  # the leader's own rack
        assert manager.preferred_read_replica(p, None, 1, listener) is None  # no rack given
        assert manager.preferred_read_replica(p, "b", 1, "SSL") is None  # not reachable on that listener
        apply(manager, broker, p, FakePartitionState(2, [NODE_ID, 2, 3], [NODE_ID, 2, 3], leader_epoch=1,
                                                     partition_epoch=1))
        assert manager.preferred_read_replica(p, "b", 1, listener) is None  # only the leader chooses
    finally:
        close(manager, broker)


async def test_without_the_rack_aware_selector_consumers_fetch_from_the_leader(rm) -> None:
    manager, broker, _fetchers = rm
    broker.image.brokers[2].rack = "b"
    p = led_with_follower(manager, broker)
    append(manager, broker, "t", 0, b"a")
    manager.on_follower_fetch(p, 2, 1, 0, p.log.log_end_offset, 7)
    assert manager.preferred_read_replica(p, "b", 0, "PLAINTEXT") is None


async def test_internal_appends_on_the_leader_are_committed_as_client_ones(rm) -> None:
    manager, broker, _fetchers = rm
    p = led_with_follower(manager, broker)
    assert manager.append_internal(p, batch(b"m1", b"m2")) == 0
    assert manager.append_internal(p, batch(b"m3")) == 2
    assert p.log.high_watermark == 0  # waits for follower 2 like any append
    manager.on_follower_fetch(p, 2, 3, 0, p.log.log_end_offset, 7)
    assert p.log.high_watermark == 3


async def test_stopping_a_replica_ends_its_waiting_produces_and_its_fetching(rm) -> None:
    manager, broker, fetchers = rm
    p = led_with_follower(manager, broker)
    waiting = await awaiting_replication(manager, broker, p)
    manager.stop_replica(p)
    await settle()
    assert waiting.done()  # woken at once, without the clock moving
    assert waiting.result() == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert refused(manager, broker, "t", 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    q = broker.open_partition("t", 1)
    apply(manager, broker, q, FakePartitionState(2, [NODE_ID, 2], [NODE_ID, 2]))
    assert fetchers.leader_of(q) == 2
    manager.stop_replica(q)
    assert fetchers.leader_of(q) is None
