"""Server-side partition assignors of KIP-848 consumer groups, and the consumer embedded protocol.

Classic groups never run these: there the group leader (a client) assigns. KIP-848 groups name one
of ``group.consumer.assignors`` (``uniform``, the default, and ``range``) in ConsumerGroupHeartbeat.

- ``uniform``: every member gets the same number of partitions (±1) of the topics it subscribes to,
  keeping what it already owns where the balance allows (sticky), like Kafka's UniformAssignor.
- ``range``: per topic, the members subscribed to it (sorted by member id) get contiguous ranges,
  the first ``partitions % members`` one more, like the client-side RangeAssignor; so members with
  the same subscription get co-partitioned ranges of topics with equal partition counts.

Both are pure functions of (members, topic partition counts) → member → topic → partitions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

Assignment = dict[str, dict[str, set[int]]]  # member id -> topic -> partitions


@dataclass(slots=True)
class AssignmentMember:
    subscribed: set[str]
    current: dict[str, set[int]] = field(default_factory=dict)


def decode_subscription(metadata: bytes) -> list[str]:
    """Topic names of a classic consumer's JoinGroup metadata (``ConsumerProtocolSubscription``)."""
    (version,) = struct.unpack_from(">h", metadata)
    sub = ConsumerProtocolSubscription.decode(memoryview(metadata)[2:], min(max(version, 0), 3))
    return list(sub.topics)


def range_assign(members: dict[str, AssignmentMember], topics: dict[str, int]) -> Assignment:
    out: Assignment = {mid: {} for mid in members}
    for topic in sorted(topics):
        count = topics[topic]
        subscribers = sorted(mid for mid, m in members.items() if topic in m.subscribed)
        if not subscribers or count <= 0:
            continue
        per, extra = divmod(count, len(subscribers))
        start = 0
        for i, mid in enumerate(subscribers):
            n = per + (1 if i < extra else 0)
            if n:
                out[mid][topic] = set(range(start, start + n))
            start += n
    return out


def uniform_assign(members: dict[str, AssignmentMember], topics: dict[str, int]) -> Assignment:
    out: Assignment = {mid: {} for mid in members}
    if not members:
        return out
    partitions = [(t, p) for t in sorted(topics) for p in range(topics[t])]
    eligible = {tp: [mid for mid in sorted(members) if tp[0] in members[mid].subscribed] for tp in partitions}
    assignable = [tp for tp in partitions if eligible[tp]]
    # Quota: an even share of what each member can take (exact for homogeneous subscriptions).
    counts: dict[str, int] = dict.fromkeys(members, 0)
    taken: set[tuple[str, int]] = set()
    total = len(assignable)
    n = len(members)
    quota = {mid: -(-total // n) for mid in members}

    def give(mid: str, tp: tuple[str, int]) -> None:
        out[mid].setdefault(tp[0], set()).add(tp[1])
        counts[mid] += 1
        taken.add(tp)

    # 1. Stickiness: keep owned partitions up to the floor of the fair share.
    floor = total // n
    for mid in sorted(members):
        m = members[mid]
        for topic in sorted(m.current):
            if topic not in m.subscribed or topic not in topics:
                continue
            for p in sorted(m.current[topic]):
                tp = (topic, p)
                if p < topics[topic] and tp not in taken and counts[mid] < max(floor, 1):
                    give(mid, tp)
    # 2. The rest go to the eligible member with the fewest partitions.
    for tp in assignable:
        if tp in taken:
            continue
        candidates = eligible[tp]
        best = min(candidates, key=lambda mid: (counts[mid] >= quota[mid], counts[mid], mid))
        give(best, tp)
    return out


ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}
