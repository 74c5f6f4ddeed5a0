"""The conversations of the sequence fuzzer (``sequence_fuzz``): each is a generator yielding
``(request, version)`` and receiving the decoded response (``None`` when there is none to give), so
that later steps use the member ids, generations, producer ids and epochs and fetch sessions the
broker handed out, as real clients do."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_partitions_to_txn import AddPartitionsToTxnTopic
from kbroker_protocol.records import Record, build_batch

E = ErrorCode
Step = tuple[Any, int]
Sequence = Generator[Step, Any, None]


FC, JG, SG, HB, OC, OF, LG = messages.FindCoordinatorRequest, messages.JoinGroupRequest, messages.SyncGroupRequest, messages.HeartbeatRequest, messages.OffsetCommitRequest, messages.OffsetFetchRequest, messages.LeaveGroupRequest
IPID, APT, AOT, TOC, ET, P, F, CGH = messages.InitProducerIdRequest, messages.AddPartitionsToTxnRequest, messages.AddOffsetsToTxnRequest, messages.TxnOffsetCommitRequest, messages.EndTxnRequest, messages.ProduceRequest, messages.FetchRequest, messages.ConsumerGroupHeartbeatRequest
OD, DG = messages.OffsetDeleteRequest, messages.DeleteGroupsRequest
CT, CP, DR, LO, OFLE, IAC, DT, MD = messages.CreateTopicsRequest, messages.CreatePartitionsRequest, messages.DeleteRecordsRequest, messages.ListOffsetsRequest, messages.OffsetForLeaderEpochRequest, messages.IncrementalAlterConfigsRequest, messages.DeleteTopicsRequest, messages.MetadataRequest
ZERO_UUID = uuid.UUID(int=0)


def _leaves(obj: object) -> list[tuple[object, str, Any]]:
    out = []
    for name in getattr(obj, "_FIELDS", ()):
        value = getattr(obj, name)
        out.append((obj, name, value))
        if isinstance(value, list):
            for item in value:
                if hasattr(item, "_FIELDS"):
                    out.extend(_leaves(item))
        elif hasattr(value, "_FIELDS"):
            out.extend(_leaves(value))
    return out


@dataclass
class Context:
    rng: random.Random
    topic: str
    topic_id: uuid.UUID
    wait_cap_ms: int
    serial: int = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"


def _first_error(resp: object) -> int | None:
    """The response's top-level error code if it is one, else its first nested error, else NONE
    (None without a response)."""
    if resp is None:
        return None
    code: int | None = getattr(resp, "error_code", None)
    if code:
        return code
    for _obj, name, value in _leaves(resp):
        if name in ("error_code", "partition_error_code") and value:
            nested: int = value
            return nested
    return E.NONE


def _err(resp: object) -> int | None:
    code: int | None = None if resp is None else getattr(resp, "error_code", None)
    return code


def classic_group(ctx: Context) -> Sequence:
    rng = ctx.rng
    group = ctx.fresh("group")
    instance = rng.choice([None, None, ctx.fresh("instance")])
    yield FC(key_type=0, coordinator_keys=[group]), 4
    member, resp = "", None
    for _ in range(2):  # v4+: the first join is answered MEMBER_ID_REQUIRED with the id to use
        resp = yield JG(group_id=group, session_timeout_ms=ctx.wait_cap_ms, rebalance_timeout_ms=ctx.wait_cap_ms,
                        member_id=member, group_instance_id=instance, protocol_type="consumer",
                        protocols=[JG.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")],
                        reason=None), 9
        if resp is None:
            break
        member = resp.member_id or member
        if resp.error_code != E.MEMBER_ID_REQUIRED:
            break
    generation = resp.generation_id if resp is not None else -1
    yield SG(group_id=group, generation_id=generation, member_id=member, group_instance_id=instance,
             protocol_type="consumer", protocol_name="range",
             assignments=[SG.SyncGroupRequestAssignment(member_id=member, assignment=b"\x00\x01")]), 5
    for _ in range(rng.randrange(1, 4)):
        yield HB(group_id=group, generation_id=generation, member_id=member, group_instance_id=instance), 4
    partition = OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
        partition_index=rng.randrange(2), committed_offset=rng.randrange(5), committed_leader_epoch=-1,
        committed_metadata="m")
    yield OC(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
             group_instance_id=instance, retention_time_ms=-1,
             topics=[OC.OffsetCommitRequestTopic(name=ctx.topic, partitions=[partition])]), 9
    yield OF(groups=[OF.OffsetFetchRequestGroup(group_id=group, member_id=None, member_epoch=-1, topics=None)],
             require_stable=rng.random() < 0.5), 9
    yield LG(group_id=group, members=[LG.MemberIdentity(member_id=member, group_instance_id=instance,
                                                         reason="fuzz")]), 5
    if rng.random() < 0.5:  # an empty group's offsets, then the group, are deleted
        yield OD(group_id=group, topics=[OD.OffsetDeleteRequestTopic(name=ctx.topic, partitions=[
            OD.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(partition_index=partition.partition_index)])]), 0
        yield DG(groups_names=[group]), 2


def consumer_group(ctx: Context) -> Sequence:
    """KIP-848: heartbeats with the member epoch the coordinator hands out, then leaving (-1)."""
    rng = ctx.rng
    group = ctx.fresh("cgroup")
    member = str(uuid.uuid4())
    yield FC(key_type=0, coordinator_keys=[group]), 4
    epoch = 0
    owned: list[messages.ConsumerGroupHeartbeatRequest.TopicPartitions] = []
    for i in range(rng.randrange(2, 5)):
        resp = yield CGH(group_id=group, member_id=member, member_epoch=epoch, instance_id=None, rack_id=None,
                         rebalance_timeout_ms=ctx.wait_cap_ms if i == 0 else -1,
                         subscribed_topic_names=[ctx.topic] if i == 0 else None, subscribed_topic_regex=None,
                         server_assignor=None, topic_partitions=owned if i else []), 1
        if resp is not None and resp.error_code == E.NONE:
            epoch = resp.member_epoch
            if resp.assignment is not None:
                owned = [CGH.TopicPartitions(topic_id=tp.topic_id, partitions=list(tp.partitions))
                         for tp in resp.assignment.topic_partitions]
    yield CGH(group_id=group, member_id=member, member_epoch=-1, topic_partitions=None), 1


def transaction(ctx: Context) -> Sequence:
    rng = ctx.rng
    tid = ctx.fresh("txn")
    yield FC(key_type=1, coordinator_keys=[tid]), 4
    pid, epoch, sequence = -1, -1, 0
    for _round in range(rng.choice((1, 1, 2))):
        resp = yield IPID(transactional_id=tid, transaction_timeout_ms=rng.choice((ctx.wait_cap_ms, 60000)),
                          producer_id=pid, producer_epoch=epoch), 5
        if resp is not None and resp.error_code == E.NONE:
            pid, epoch, sequence = resp.producer_id, resp.producer_epoch, 0
        partitions = sorted(rng.sample((0, 1), rng.randrange(1, 3)))
        yield APT(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
                  v3_and_below_topics=[AddPartitionsToTxnTopic(name=ctx.topic, partitions=partitions)]), 3
        for p in partitions:
            count = rng.randrange(1, 4)
            batch = build_batch([Record(key=b"k", value=b"v%d" % i, timestamp=1_700_000_000_000) for i in range(count)],
                                producer_id=pid, producer_epoch=epoch, base_sequence=sequence, transactional=True)
            sequence += count
            yield P(transactional_id=tid, acks=-1, timeout_ms=ctx.wait_cap_ms, topic_data=[
                P.TopicProduceData(name=ctx.topic, partition_data=[
                    P.TopicProduceData.PartitionProduceData(index=p, records=batch)])]), 9
        group = ctx.fresh("txgroup")
        yield AOT(transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group), 3
        yield FC(key_type=0, coordinator_keys=[group]), 4
        yield TOC(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch,
                  generation_id_or_member_epoch=-1, member_id="", group_instance_id=None, topics=[
                      TOC.TxnOffsetCommitRequestTopic(name=ctx.topic, partitions=[
                          TOC.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                              partition_index=partitions[0], committed_offset=rng.randrange(10),
                              committed_leader_epoch=-1, committed_metadata=None)])]), 3
        yield ET(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=rng.random() < 0.5), 4


def idempotent_produce(ctx: Context) -> Sequence:
    """An idempotent producer: sequence numbers per partition, which replayed and skipped steps
    turn into duplicates and gaps."""
    rng = ctx.rng
    resp = yield IPID(transactional_id=None, transaction_timeout_ms=ctx.wait_cap_ms, producer_id=-1,
                      producer_epoch=-1), rng.choice((2, 5))
    pid, epoch = (resp.producer_id, resp.producer_epoch) if _err(resp) == E.NONE else (-1, -1)
    sequences = [0, 0]
    for _ in range(rng.randrange(2, 7)):
        p, count = rng.randrange(2), rng.randrange(1, 4)
        batch = build_batch([Record(key=None, value=b"i%d" % i, timestamp=1_700_000_000_000) for i in range(count)],
                            producer_id=pid, producer_epoch=epoch, base_sequence=sequences[p])
        resp = yield P(transactional_id=None, acks=-1, timeout_ms=ctx.wait_cap_ms, topic_data=[
            P.TopicProduceData(name=ctx.topic, partition_data=[
                P.TopicProduceData.PartitionProduceData(index=p, records=batch)])]), rng.choice((3, 9))
        if _first_error(resp) == E.NONE:
            sequences[p] += count


def fetch_session(ctx: Context) -> Sequence:
    """A full fetch creating a session, incremental fetches adding and forgetting partitions, and
    the session's close (epoch -1)."""
    rng = ctx.rng
    version = rng.choice((12, 13, 17))

    def topic(partitions: list[int]) -> messages.FetchRequest.FetchTopic:
        return F.FetchTopic(topic=ctx.topic, topic_id=ctx.topic_id, partitions=[
            F.FetchTopic.FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=rng.randrange(3),
                                        last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=65536)
            for p in partitions])

    def forgotten(partitions: list[int]) -> list[messages.FetchRequest.ForgottenTopic]:
        return [F.ForgottenTopic(topic=ctx.topic, topic_id=ctx.topic_id, partitions=partitions)] if partitions else []

    def fetch(session_id: int, epoch: int, fetch_parts: list[int], forget: list[int]) -> Step:
        return F(replica_id=-1, max_wait_ms=rng.choice((0, 10)), min_bytes=rng.choice((0, 1)), max_bytes=1 << 20,
                 isolation_level=rng.choice((0, 1)), session_id=session_id, session_epoch=epoch,
                 topics=[topic(fetch_parts)] if fetch_parts else [], forgotten_topics_data=forgotten(forget),
                 rack_id=""), version

    resp = yield fetch(0, 0, [0, 1], [])
    session = resp.session_id if resp is not None and resp.error_code == E.NONE else 0
    epoch = 1
    for _ in range(rng.randrange(1, 4)):
        parts = sorted(rng.sample((0, 1), rng.randrange(0, 3)))
        forget = sorted(set(rng.sample((0, 1), rng.randrange(0, 2))) - set(parts))
        resp = yield fetch(session, epoch, parts, forget)
        if _err(resp) == E.NONE:
            epoch += 1
    yield fetch(session, -1, [], [])


def topic_lifecycle(ctx: Context) -> Sequence:
    """A topic's life while it is used: created, produced to, fetched in a session, grown,
    trimmed, looked up, reconfigured, deleted, then fetched, produced to and asked for again."""
    rng = ctx.rng
    name = ctx.fresh("life")
    count = rng.randrange(1, 4)
    policy = rng.choice(("delete", "compact", "compact,delete"))
    resp = yield CT(topics=[CT.CreatableTopic(name=name, num_partitions=count, replication_factor=1, assignments=[],
                                              configs=[CT.CreatableTopic.CreatableTopicConfig(name="cleanup.policy",
                                                                                            value=policy)])],
                    timeout_ms=ctx.wait_cap_ms, validate_only=False), 7
    topic_id = resp.topics[0].topic_id if resp is not None and resp.topics else ZERO_UUID
    for p in range(count):
        batch = build_batch([Record(key=b"k%d" % i, value=b"v", timestamp=1_700_000_000_000)
                             for i in range(rng.randrange(1, 4))])
        yield P(transactional_id=None, acks=rng.choice((1, -1)), timeout_ms=ctx.wait_cap_ms, topic_data=[
            P.TopicProduceData(name=name, partition_data=[P.TopicProduceData.PartitionProduceData(
                index=p, records=batch)])]), 9

    def fetch(session_id: int, epoch: int, partitions: range | list[int]) -> Step:
        return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                 session_id=session_id, session_epoch=epoch, topics=[F.FetchTopic(
                     topic=name, topic_id=topic_id, partitions=[F.FetchTopic.FetchPartition(
                         partition=p, fetch_offset=0, partition_max_bytes=65536) for p in partitions])]
                 if partitions else [], forgotten_topics_data=[], rack_id=""), 13

    resp = yield fetch(0, 0, range(count))
    session = resp.session_id if _err(resp) == E.NONE else 0
    yield CP(topics=[CP.CreatePartitionsTopic(name=name, count=count + rng.randrange(1, 3), assignments=None)],
             timeout_ms=ctx.wait_cap_ms, validate_only=rng.random() < 0.3), 3
    yield DR(topics=[DR.DeleteRecordsTopic(name=name, partitions=[DR.DeleteRecordsTopic.DeleteRecordsPartition(
        partition_index=0, offset=rng.choice((-1, 0, 1)))])], timeout_ms=ctx.wait_cap_ms), 2
    yield LO(replica_id=-1, isolation_level=rng.choice((0, 1)), topics=[LO.ListOffsetsTopic(name=name, partitions=[
        LO.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                 timestamp=rng.choice((-1, -2, -3, -4, 0)))])],
             timeout_ms=ctx.wait_cap_ms), 8
    yield OFLE(replica_id=-1, topics=[OFLE.OffsetForLeaderTopic(topic=name, partitions=[
        OFLE.OffsetForLeaderTopic.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1,
                                                           leader_epoch=0)])]), 4
    # A valid value for its key (unmutated steps must succeed; the mutations bring the bad ones).
    key, value = rng.choice((("retention.ms", "60000"), ("segment.bytes", "1048576"), ("cleanup.policy", "delete")))
    yield IAC(resources=[IAC.AlterConfigsResource(resource_type=2, resource_name=name, configs=[
        IAC.AlterConfigsResource.AlterableConfig(name=key, config_operation=rng.choice((0, 1)), value=value)])],
              validate_only=False), 1
    yield fetch(session, 1, [0])
    yield DT(topics=[DT.DeleteTopicState(name=name)], timeout_ms=ctx.wait_cap_ms), 6
    yield fetch(session, 2, [0])
    yield P(transactional_id=None, acks=1, timeout_ms=ctx.wait_cap_ms, topic_data=[
        P.TopicProduceData(name=name, partition_data=[P.TopicProduceData.PartitionProduceData(
            index=0, records=build_batch([Record(key=b"k", value=b"late", timestamp=1_700_000_000_000)]))])]), 9
    yield MD(topics=[MD.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False,
             include_topic_authorized_operations=False), 12


SEQUENCES: dict[str, Callable[[Context], Sequence]] = {
    "classic_group": classic_group,
    "consumer_group": consumer_group,
    "transaction": transaction,
    "fetch_session": fetch_session,
    "idempotent_produce": idempotent_produce,
    "topic_lifecycle": topic_lifecycle,
}
