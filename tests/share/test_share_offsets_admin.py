"""DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets at the wire."""

from __future__ import annotations

import uuid

from share_wire import ACCEPT, E, ShareClient, acquired, heartbeat, part, topic_id
from wire import create_topic, produce

from kbroker_protocol.messages import REQUESTS


def describe(wire, group: str, topics: dict[str, list[int]] | None, version: int = 1):
    Req = REQUESTS[90]
    G = Req.DescribeShareGroupOffsetsRequestGroup
    ts = None if topics is None else [G.DescribeShareGroupOffsetsRequestTopic(topic_name=t, partitions=ps)
                                      for t, ps in topics.items()]
    return wire.call(90, version, groups=[G(group_id=group, topics=ts)]).groups[0]


def alter(wire, group: str, topic: str, offsets: dict[int, int]):
    Req = REQUESTS[91]
    T = Req.AlterShareGroupOffsetsRequestTopic
    return wire.call(91, 0, group_id=group, topics=[T(topic_name=topic, partitions=[
        T.AlterShareGroupOffsetsRequestPartition(partition_index=p, start_offset=o) for p, o in offsets.items()])])


def delete(wire, group: str, topics: list[str]):
    Req = REQUESTS[92]
    return wire.call(92, 0, group_id=group, topics=[Req.DeleteShareGroupOffsetsRequestTopic(topic_name=t)
                                                    for t in topics])


def _parts(g) -> dict[tuple[str, int], tuple[int, int]]:
    return {(t.topic_name, p.partition_index): (p.start_offset, p.lag) for t in g.topics for p in t.partitions}


def test_describe_alter_delete(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic, partitions=2)
    tid = topic_id(wire, topic)
    c = ShareClient(wire, group)
    c.join([topic])
    c.fetch(tid)  # partition 0 starts at the end (0)
    produce(wire, topic, 0, 5)
    assert acquired(c.fetch(tid)) == [(0, 4, 1)]
    assert part(c.ack(tid, [(0, 0, [ACCEPT]), (2, 2, [ACCEPT])])).error_code == E.NONE
    # SPSO 1; of [1, 5) offset 2 is complete: lag = 5 - 1 - 1.
    g = describe(wire, group, {topic: [0, 1], "no-such-topic": [0]})
    assert g.error_code == E.NONE
    assert _parts(g) == {(topic, 0): (1, 3), (topic, 1): (-1, -1), ("no-such-topic", 0): (-1, -1)}
    assert _parts(describe(wire, group, None)) == {(topic, 0): (1, 3)}
    assert _parts(describe(wire, group, {topic: [0]}, version=0))[(topic, 0)][0] == 1

    # Not while the group has members.
    r = alter(wire, group, topic, {0: 3})
    assert r.error_code == E.NON_EMPTY_GROUP
    assert delete(wire, group, [topic]).error_code == E.NON_EMPTY_GROUP
    assert heartbeat(wire, group, c.member, -1).error_code == E.NONE

    r = alter(wire, group, topic, {0: 3, 7: 0})
    assert r.error_code == E.NONE
    assert [(p.partition_index, p.error_code) for p in r.responses[0].partitions] == [
        (0, E.NONE), (7, E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert _parts(describe(wire, group, {topic: [0]}))[(topic, 0)] == (3, 2)
    # A new member starts at the altered offset, nothing in flight.
    c2 = ShareClient(wire, group)
    c2.join([topic])
    assert acquired(c2.fetch(tid)) == [(3, 4, 1)]
    heartbeat(wire, group, c2.member, -1)

    d = delete(wire, group, [topic, "no-such-topic"])
    assert d.error_code == E.NONE
    assert [(t.topic_name, t.error_code) for t in d.responses] == [
        (topic, E.NONE), ("no-such-topic", E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert _parts(describe(wire, group, {topic: [0]}))[(topic, 0)] == (-1, -1)
    again = delete(wire, group, [topic])
    assert (again.responses[0].error_code, again.responses[0].error_message) == (
        E.UNKNOWN_TOPIC_OR_PARTITION, "There is no offset information to delete.")


def test_alter_creates_the_group_and_refuses_other_group_types(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    produce(wire, topic, 0, 4)
    assert alter(wire, group, topic, {0: 2}).error_code == E.NONE
    d = wire.call(77, 1, group_ids=[group], include_authorized_operations=False).groups[0]
    assert (d.error_code, d.group_state) == (E.NONE, "Empty")
    c = ShareClient(wire, group)
    c.join([topic])
    assert acquired(c.fetch(topic_id(wire, topic))) == [(2, 3, 1)]  # the batch carries 0-3; 2 is the start
    consumer = f"cg-{uuid.uuid4().hex[:8]}"
    wire.call(68, 1, group_id=consumer, member_id="c" * 22, member_epoch=0, rebalance_timeout_ms=30000,
              subscribed_topic_names=[topic], server_assignor=None, topic_partitions=[])
    r = alter(wire, consumer, topic, {0: 0})
    assert (r.error_code, r.error_message) == (E.GROUP_ID_NOT_FOUND, f"Group {consumer} is not a share group.")
    gone = delete(wire, "no-such-group", [topic])
    assert (gone.error_code, gone.error_message) == (E.GROUP_ID_NOT_FOUND, "Group no-such-group not found.")
    # Unknown topics first (refused before the coordinator), as Kafka orders them.
    T = REQUESTS[91].AlterShareGroupOffsetsRequestTopic
    P = T.AlterShareGroupOffsetsRequestPartition
    r = wire.call(91, 0, group_id=f"sg-{uuid.uuid4().hex[:8]}", topics=[
        T(topic_name=topic, partitions=[P(partition_index=0, start_offset=0)]),
        T(topic_name="no-such-topic", partitions=[P(partition_index=0, start_offset=0)])])
    assert [(t.topic_name, [p.error_code for p in t.partitions]) for t in r.responses] == [
        ("no-such-topic", [E.UNKNOWN_TOPIC_OR_PARTITION]), (topic, [E.NONE])]
