"""The share groups' ``simple`` assignor (Kafka's ``SimpleAssignor``, homogeneous builder).

Partitions of a share group may be assigned to several members. With M members and P target
partitions each partition goes to ``desired_sharing = ceil(M / P)`` members, and member i takes
``ceil(d * (i + 1)) - ceil(d * i)`` partitions where ``d = desired_sharing * P / M``: with more
partitions than members each partition has one member; with more members than partitions every
member gets one partition and partitions are shared evenly (two members and one partition: both
consume it). The previous assignment is kept where it still fits (unsubscribed topics, surplus
partitions and over-shared partitions are taken away first), then the remaining slots are filled
in partition order, as Kafka's builder does. Members subscribing to different topics are
assigned per group of identical subscriptions.
"""

from __future__ import annotations

import math
import uuid

Parts = dict[uuid.UUID, set[int]]


def _assign_homogeneous(members: list[str], topics: set[uuid.UUID], partitions: dict[uuid.UUID, int],
                        old: dict[str, Parts]) -> dict[str, Parts]:
    target = [(t, p) for t in sorted(topics, key=str) for p in range(partitions.get(t, 0))]
    m = len(members)
    if not target or not m:
        return {mid: {} for mid in members}
    n = len(target)
    sharing = (m + n - 1) // n
    precise = sharing * n / m
    desired = [math.ceil(precise * (i + 1)) - math.ceil(precise * i) for i in range(m)]
    by_partition: dict[tuple[uuid.UUID, int], list[int]] = {tp: [] for tp in target}
    by_member: list[list[tuple[uuid.UUID, int]]] = [[] for _ in range(m)]
    valid = set(target)
    for i, mid in enumerate(members):
        for t, ps in sorted(old.get(mid, {}).items(), key=lambda kv: str(kv[0])):
            for p in sorted(ps):
                tp = (t, p)
                if tp in valid and len(by_member[i]) < desired[i]:
                    by_member[i].append(tp)
                    by_partition[tp].append(i)
    # Over-shared partitions give members back.
    for tp, owners in by_partition.items():
        while len(owners) > sharing:
            i = owners.pop()
            by_member[i].remove(tp)
    unfilled = [i for i in range(m) if len(by_member[i]) < desired[i]]
    cursor = 0
    for tp in target:
        owners = by_partition[tp]
        tries = 0
        while len(owners) < sharing and unfilled and tries < len(unfilled) * 2:
            i = unfilled[cursor % len(unfilled)]
            tries += 1
            if i in owners:
                cursor += 1
                continue
            owners.append(i)
            by_member[i].append(tp)
            if len(by_member[i]) >= desired[i]:
                unfilled.remove(i)
            else:
                cursor += 1
        if not unfilled:
            break
    out: dict[str, Parts] = {}
    for i, mid in enumerate(members):
        parts: Parts = {}
        for t, p in by_member[i]:
            parts.setdefault(t, set()).add(p)
        out[mid] = parts
    return out


def assign(members: list[str], subscriptions: dict[str, set[uuid.UUID]], partitions: dict[uuid.UUID, int],
           old: dict[str, Parts]) -> dict[str, Parts]:
    """``members`` in a stable order; ``subscriptions``: topic ids each subscribes to (existing
    topics only); ``partitions``: partition count by topic id; ``old``: the previous target."""
    by_subscription: dict[frozenset[uuid.UUID], list[str]] = {}
    for mid in members:
        by_subscription.setdefault(frozenset(subscriptions.get(mid, set())), []).append(mid)
    out: dict[str, Parts] = {}
    for topics, group in by_subscription.items():
        out.update(_assign_homogeneous(group, set(topics), partitions, old))
    return out
