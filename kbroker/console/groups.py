"""The console's consumer groups (state, members, lag, offset reset), transactions and producers:
ListGroups, DescribeGroups, ConsumerGroupDescribe, OffsetFetch, OffsetCommit, ListTransactions,
DescribeTransactions and DescribeProducers requests (see :mod:`kbroker.console.ops`)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from kbroker.console.client import KafkaClient, KafkaError, check, leaderless
from kbroker.console.ops import (
    EARLIEST,
    LATEST,
    Conflict,
    Invalid,
    NotFound,
    _offsets,
    topic_name,
    want_int,
)
from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from typing import TypedDict

    class TopicAssignment(TypedDict):
        """One topic of a member's assignment, as the console shows it."""

        topic: str
        partitions: list[int]

# -- groups -----------------------------------------------------------------------------------


async def list_groups(client: KafkaClient) -> dict[str, Any]:
    groups = []
    for node, resp in await client.each_broker(16, 5, states_filter=[], types_filter=[]):
        check(resp.error_code, None, f"ListGroups on broker {node}")
        for g in resp.groups:
            groups.append({"group_id": g.group_id, "state": g.group_state, "type": g.group_type,
                           "protocol_type": g.protocol_type, "coordinator": node})
    groups.sort(key=lambda g: g["group_id"])
    return {"groups": groups}


def _consumer_assignment(data: bytes | None) -> list[TopicAssignment]:
    """A classic consumer group's member assignment (ConsumerProtocolAssignment v0-3): topics
    and partitions; an assignment that does not parse is shown as empty."""
    if not data:
        return []
    buf = bytes(data)
    try:
        pos = 2  # version
        (count,) = struct.unpack_from(">i", buf, pos)
        pos += 4
        out: list[TopicAssignment] = []
        for _ in range(max(count, 0)):
            (n,) = struct.unpack_from(">h", buf, pos)
            pos += 2
            name = buf[pos:pos + n].decode("utf-8", "replace")
            pos += n
            (pc,) = struct.unpack_from(">i", buf, pos)
            pos += 4
            parts = list(struct.unpack_from(f">{max(pc, 0)}i", buf, pos))
            pos += 4 * max(pc, 0)
            out.append({"topic": name, "partitions": parts})
        return out
    except (struct.error, ValueError):
        return []


async def _group_type(client: KafkaClient, group: str) -> str | None:
    for g in (await list_groups(client))["groups"]:
        if g["group_id"] == group:
            group_type: str = g["type"]
            return group_type
    return None


async def _describe(client: KafkaClient, group: str, coordinator: int) -> dict[str, Any]:
    kind = await _group_type(client, group)
    if kind == "consumer":
        resp = await client.send(69, 0, node=coordinator, group_ids=[group], include_authorized_operations=False)
        g = resp.groups[0]
        check(g.error_code, g.error_message, f"ConsumerGroupDescribe {group}")
        return {"group_id": group, "type": "consumer", "state": g.group_state, "protocol_type": "consumer",
                "protocol": g.assignor_name, "epoch": g.group_epoch,
                "members": [{"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                             "client_host": m.client_host,
                             "assignment": [{"topic": tp.topic_name, "partitions": list(tp.partitions)}
                                            for tp in m.assignment.topic_partitions]}
                            for m in g.members]}
    resp = await client.send(15, 5, node=coordinator, groups=[group], include_authorized_operations=False)
    g = resp.groups[0]
    check(g.error_code, g.error_message, f"DescribeGroups {group}")
    consumer = g.protocol_type == "consumer"
    return {"group_id": group, "type": kind or "classic", "state": g.group_state,
            "protocol_type": g.protocol_type, "protocol": g.protocol_data,
            "members": [{"member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id,
                         "client_host": m.client_host,
                         "assignment": _consumer_assignment(m.member_assignment) if consumer else []}
                        for m in g.members]}


async def _committed(client: KafkaClient, group: str, coordinator: int) -> dict[tuple[str, int], int]:
    Req = messages.OffsetFetchRequest
    resp = await client.send(9, 8, node=coordinator, groups=[Req.OffsetFetchRequestGroup(group_id=group, topics=None)],
                             require_stable=False)
    g = resp.groups[0]
    check(g.error_code, None, f"OffsetFetch {group}")
    out = {}
    for t in g.topics:
        for p in t.partitions:
            check(p.error_code, None, f"OffsetFetch {group} {t.name}-{p.partition_index}")
            if p.committed_offset >= 0:
                out[(t.name, p.partition_index)] = p.committed_offset
    return out


async def describe_group(client: KafkaClient, group: str) -> dict[str, Any]:
    if not group:
        raise Invalid("group", "the group id is required")
    coordinator = await client.coordinator(group)
    desc = await _describe(client, group, coordinator)
    if desc["state"] == "Dead" and await _group_type(client, group) is None:
        raise NotFound(f"no group {group!r}")
    committed = await _committed(client, group, coordinator)
    assigned: dict[tuple[str, int], str] = {}
    for m in desc["members"]:
        for a in m["assignment"]:
            for p in a["partitions"]:
                assigned[(a["topic"], p)] = m["member_id"]
    keys = sorted(set(committed) | set(assigned))
    ends: dict[tuple[str, int], int] = {}
    for topic in sorted({t for t, _ in keys}):
        try:
            leaders = await client.leaders(topic)
        except KafkaError:
            continue
        wanted = {p: leaders[p] for t, p in keys if t == topic and p in leaders}
        # a partition offline (no leader) or whose leader just moved: its end and lag unknown (None)
        for p, off in (await _offsets(client, topic, wanted, LATEST, strict=False)).items():
            ends[(topic, p)] = off
    rows = []
    for key in keys:
        c = committed.get(key)
        end = ends.get(key)
        rows.append({"topic": key[0], "partition": key[1], "committed": c, "end_offset": end,
                     "lag": None if c is None or end is None else max(0, end - c),
                     "member": assigned.get(key)})
    desc["coordinator"] = coordinator
    desc["offsets"] = rows
    desc["total_lag"] = sum(r["lag"] for r in rows if r["lag"] is not None)
    return desc


async def reset_offsets(client: KafkaClient, group: str, data: dict[str, Any]) -> dict[str, Any]:
    """kafka-consumer-groups --reset-offsets --execute: only while the group is inactive."""
    if not group:
        raise Invalid("group", "the group id is required")
    to = data.get("to")
    if to not in ("earliest", "latest", "offset", "timestamp"):
        raise Invalid("to", "to must be one of earliest, latest, offset, timestamp")
    topic = data.get("topic")
    if topic not in (None, ""):
        topic_name(topic, "topic")
    coordinator = await client.coordinator(group)
    desc = await _describe(client, group, coordinator)
    if desc["state"] not in ("Empty", "Dead"):
        raise Conflict(f"Assignments can only be reset if the group '{group}' is inactive, "
                       f"but the current state is {desc['state']}.")
    committed = await _committed(client, group, coordinator)
    if topic:
        leaders_of = {topic: await client.leaders(topic)}
    else:
        leaders_of = {}
        for t in sorted({t for t, _ in committed}):
            leaders_of[t] = await client.leaders(t)
        if not leaders_of:
            raise Invalid("topic", f"group {group!r} has no committed offsets: name a topic to reset")
    for t, leaders in leaders_of.items():
        for p, leader in sorted(leaders.items()):
            if leader < 0:  # no offsets to reset to: refused, nothing committed
                raise leaderless(t, p, f"reset offsets of {group}")
    targets: dict[tuple[str, int], int] = {}
    for t, leaders in leaders_of.items():
        if to == "earliest":
            offs = await _offsets(client, t, leaders, EARLIEST)
        elif to == "latest":
            offs = await _offsets(client, t, leaders, LATEST)
        elif to == "offset":
            wanted = want_int(data, "offset", low=0)
            lo = await _offsets(client, t, leaders, EARLIEST)
            hi = await _offsets(client, t, leaders, LATEST)
            offs = {p: min(max(wanted, lo[p]), hi[p]) for p in leaders}  # clamped, as Kafka's tool does
        else:
            ts = want_int(data, "timestamp", low=0)
            found = await _offsets(client, t, leaders, ts)
            hi = await _offsets(client, t, leaders, LATEST)
            offs = {p: hi[p] if found[p] < 0 else found[p] for p in leaders}
        for p, off in offs.items():
            targets[(t, p)] = off
    Req = messages.OffsetCommitRequest
    topics = []
    for t in sorted(leaders_of):
        topics.append(Req.OffsetCommitRequestTopic(name=t, partitions=[
            Req.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=off, committed_leader_epoch=-1, committed_metadata="")
            for (tt, p), off in sorted(targets.items()) if tt == t]))
    resp = await client.send(8, 8, node=coordinator, group_id=group, generation_id_or_member_epoch=-1,
                             member_id="", group_instance_id=None, topics=topics)
    for t in resp.topics:
        for p in t.partitions:
            check(p.error_code, None, f"OffsetCommit {group} {t.name}-{p.partition_index}")
    return {"group_id": group, "offsets": [{"topic": t, "partition": p, "offset": off}
                                           for (t, p), off in sorted(targets.items())]}


# -- transactions and producers ---------------------------------------------------------------


async def transactions(client: KafkaClient) -> dict[str, object]:
    listed = []
    for node, resp in await client.each_broker(66, 1, state_filters=[], producer_id_filters=[],
                                              duration_filter=-1):
        check(resp.error_code, None, f"ListTransactions on broker {node}")
        listed += [(node, s.transactional_id) for s in resp.transaction_states]
    out = []
    for node, tid in sorted(listed, key=lambda x: x[1]):
        resp = await client.send(65, 0, node=node, transactional_ids=[tid])
        s = resp.transaction_states[0]
        if s.error_code != ErrorCode.NONE:
            out.append({"transactional_id": tid, "coordinator": node, "error": KafkaError(s.error_code).code})
            continue
        out.append({"transactional_id": tid, "coordinator": node, "state": s.transaction_state,
                    "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
                    "timeout_ms": s.transaction_timeout_ms, "start_time_ms": s.transaction_start_time_ms,
                    "partitions": [{"topic": t.topic, "partitions": list(t.partitions)} for t in s.topics]})
    return {"transactions": out}


async def producers(client: KafkaClient) -> dict[str, object]:
    meta = await client.metadata(None)
    Req = messages.DescribeProducersRequest
    by_leader: dict[int, dict[str, list[int]]] = {}
    for t in meta.topics:
        if t.error_code != ErrorCode.NONE or t.is_internal:
            continue
        for p in t.partitions:
            by_leader.setdefault(p.leader_id, {}).setdefault(t.name, []).append(p.partition_index)
    out = []
    for leader, topics in sorted(by_leader.items()):
        if leader < 0:
            continue
        resp = await client.send(61, 0, node=leader, topics=[Req.TopicRequest(name=n, partition_indexes=sorted(ps))
                                                             for n, ps in sorted(topics.items())])
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE:
                    continue
                for s in p.active_producers:
                    out.append({"topic": t.name, "partition": p.partition_index, "producer_id": s.producer_id,
                                "producer_epoch": s.producer_epoch, "last_sequence": s.last_sequence,
                                "last_timestamp": s.last_timestamp, "coordinator_epoch": s.coordinator_epoch,
                                "txn_start_offset": s.current_txn_start_offset})
    out.sort(key=lambda r: (r["topic"], r["partition"], r["producer_id"]))
    return {"producers": out}
