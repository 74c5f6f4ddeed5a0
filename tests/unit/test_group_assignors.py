"""Server-side assignors of KIP-848 groups, and the __consumer_offsets record helpers."""

from __future__ import annotations

import random

import pytest

from kbroker.coordinator.group_assignors import AssignmentMember, range_assign, uniform_assign
from kbroker.coordinator.group_records import (
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from kbroker.coordinator.partitioning import java_string_hash, partition_for
from kbroker_protocol.messages.coordinator import GroupMetadataValue


def flat(assignment):
    return sorted((t, p) for parts in assignment.values() for t, ps in parts.items() for p in ps)


def counts(assignment):
    return sorted(sum(len(ps) for ps in parts.values()) for parts in assignment.values())


def test_range_gives_contiguous_co_partitioned_ranges():
    members = {m: AssignmentMember({"a", "b"}) for m in ("m1", "m2", "m3")}
    out = range_assign(members, {"a": 7, "b": 7, "c": 3})
    assert out["m1"] == {"a": {0, 1, 2}, "b": {0, 1, 2}}
    assert out["m2"] == {"a": {3, 4}, "b": {3, 4}}
    assert out["m3"] == {"a": {5, 6}, "b": {5, 6}}


def test_range_only_assigns_subscribed_topics():
    members = {"m1": AssignmentMember({"a"}), "m2": AssignmentMember({"a", "b"})}
    out = range_assign(members, {"a": 2, "b": 2})
    assert out == {"m1": {"a": {0}}, "m2": {"a": {1}, "b": {0, 1}}}


@pytest.mark.parametrize("seed", range(20))
def test_uniform_is_complete_disjoint_and_balanced(seed):
    rng = random.Random(seed)
    topics = {f"t{i}": rng.randint(1, 9) for i in range(rng.randint(1, 4))}
    members = {f"m{i}": AssignmentMember(set(topics)) for i in range(rng.randint(1, 8))}
    out = uniform_assign(members, topics)
    every = sorted((t, p) for t, n in topics.items() for p in range(n))
    assert flat(out) == every  # each partition exactly once
    sizes = counts(out)
    assert sizes[-1] - sizes[0] <= 1


def test_uniform_is_sticky_when_a_member_joins():
    topics = {"t": 6}
    before = uniform_assign({"a": AssignmentMember({"t"}), "b": AssignmentMember({"t"})}, topics)
    members = {m: AssignmentMember({"t"}, before[m]) for m in ("a", "b")}
    members["c"] = AssignmentMember({"t"})
    after = uniform_assign(members, topics)
    assert counts(after) == [2, 2, 2]
    for m in ("a", "b"):
        assert after[m]["t"] <= before[m]["t"]  # nobody gets a partition it did not own, except c


def test_uniform_heterogeneous_subscriptions():
    members = {"a": AssignmentMember({"x"}), "b": AssignmentMember({"x", "y"})}
    out = uniform_assign(members, {"x": 2, "y": 2})
    assert flat(out) == [("x", 0), ("x", 1), ("y", 0), ("y", 1)]
    assert "y" not in out["a"]


def test_java_hash_and_partition():
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -(1 << 31)  # Integer.MIN_VALUE: Utils.abs gives 0
    assert partition_for("polygenelubricants", 50) == 0
    for name in ("a", "group-1", "ünïcode", "😀"):
        h = 0
        data = name.encode("utf-16-be")
        for i in range(0, len(data), 2):
            h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
        assert java_string_hash(name) == (h - (1 << 32) if h >= 1 << 31 else h)


def test_record_round_trips():
    key = encode_offset_key("g", "t", 3)
    assert key[:2] == b"\x00\x01"
    assert decode_key(key).partition == 3
    value = decode_offset_value(encode_offset_value(42, 5, "meta", 1000))
    assert (value.offset, value.leader_epoch, value.metadata, value.commit_timestamp) == (42, 5, "meta", 1000)
    expiring = encode_offset_value(1, -1, "", 1000, 5000)
    assert expiring[:2] == b"\x00\x01" and decode_offset_value(expiring).expire_timestamp == 5000
    gkey = encode_group_key("g")
    assert gkey[:2] == b"\x00\x02" and decode_key(gkey).group == "g"
    gv = GroupMetadataValue(protocol_type="consumer", generation=4, protocol="range", leader="m", members=[
        GroupMetadataValue.MemberMetadata(member_id="m", client_id="c", client_host="/h", session_timeout=10,
                                          rebalance_timeout=20, subscription=b"s", assignment=b"a")])
    back = decode_group_value(encode_group_value(gv))
    assert (back.generation, back.leader, bytes(back.members[0].assignment)) == (4, "m", b"a")
