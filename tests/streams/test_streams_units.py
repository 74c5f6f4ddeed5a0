"""The sticky task assignor and the group.streams.* start-up checks, without a broker."""

from __future__ import annotations

import pytest

from kbroker.config import BrokerConfig, ConfigError
from kbroker.coordinator.streams_assignor import AssignorMember, assign


def flat(tasks):
    return {(s, p) for s, ps in tasks.items() for p in ps}


def test_active_tasks_spread_evenly_and_every_task_once():
    members = {m: AssignorMember(process_id=m) for m in ("a", "b", "c")}
    out = assign(members, {"0": 4, "1": 5}, 0)
    everything = [t for a, _ in out.values() for t in flat(a)]
    assert sorted(everything) == sorted({("0", p) for p in range(4)} | {("1", p) for p in range(5)})
    assert sorted(len(flat(a)) for a, _ in out.values()) == [3, 3, 3]
    assert all(s == {} for _, s in out.values())


def test_previous_owners_keep_their_tasks():
    members = {"a": AssignorMember("a", active={"0": {0, 1}}), "b": AssignorMember("b", active={"0": {2, 3}})}
    out = assign(members, {"0": 4}, 0)
    assert out["a"][0] == {"0": {0, 1}} and out["b"][0] == {"0": {2, 3}}
    # A third member joins: each old member keeps what fits its fair share (2 of 4 over 3 -> 2).
    members["c"] = AssignorMember("c")
    out = assign(members, {"0": 6}, 0)
    assert flat(out["a"][0]) >= {("0", 0), ("0", 1)} and flat(out["b"][0]) >= {("0", 2), ("0", 3)}
    assert flat(out["c"][0]) == {("0", 4), ("0", 5)}


def test_standbys_never_on_the_active_process():
    members = {"a1": AssignorMember("p1"), "a2": AssignorMember("p1"), "b1": AssignorMember("p2"),
               "c1": AssignorMember("p3")}
    out = assign(members, {"0": 6}, 2)
    process = {m: members[m].process_id for m in members}
    for s, p in [("0", p) for p in range(6)]:
        active = [m for m, (a, _) in out.items() if (s, p) in flat(a)]
        standby = [m for m, (_, sb) in out.items() if (s, p) in flat(sb)]
        assert len(active) == 1 and len(standby) == 2
        used = [process[active[0]]] + [process[m] for m in standby]
        assert len(set(used)) == 3  # active and both standbys on different processes


def test_standbys_only_for_stateful_subtopologies():
    members = {"a": AssignorMember("a"), "b": AssignorMember("b")}
    out = assign(members, {"0": 2, "1": 2}, 1, stateful={"1"})
    standbys = {t for _, sb in out.values() for t in flat(sb)}
    assert standbys == {("1", 0), ("1", 1)}


def test_previous_standby_takes_over_an_orphaned_active_task():
    # a ran task 0_0 with b as its standby; a is gone: b gets the active task, not c.
    members = {"b": AssignorMember("b", standby={"0": {0}}), "c": AssignorMember("c")}
    out = assign(members, {"0": 2}, 0)
    assert ("0", 0) in flat(out["b"][0])


def test_more_standbys_than_processes_are_left_out():
    members = {"a": AssignorMember("a"), "b": AssignorMember("b")}
    out = assign(members, {"0": 2}, 2)
    assert sum(len(flat(sb)) for _, sb in out.values()) == 2  # one standby per task: only one other process


@pytest.mark.parametrize(("settings", "message"), [
    ({"group.streams.heartbeat.interval.ms": "300"},
     "group.streams.heartbeat.interval.ms must be greater than or equal to group.streams.min.heartbeat.interval.ms"),
    ({"group.streams.session.timeout.ms": "70000"},
     "group.streams.session.timeout.ms must be less than or equal to group.streams.max.session.timeout.ms"),
    ({"group.streams.num.standby.replicas": "3"},
     "group.streams.num.standby.replicas must be less than or equal to group.streams.max.standby.replicas"),
    ({"group.streams.min.session.timeout.ms": "1000", "group.streams.session.timeout.ms": "5000"},
     "group.streams.heartbeat.interval.ms must be less than group.streams.session.timeout.ms"),
])
def test_streams_group_settings_checked_at_start_up(settings, message):
    with pytest.raises(ConfigError) as exc:
        BrokerConfig(settings)
    assert str(exc.value) == message


def test_streams_group_defaults_are_kafkas():
    c = BrokerConfig({})
    assert (c["group.streams.session.timeout.ms"], c["group.streams.heartbeat.interval.ms"],
            c["group.streams.num.standby.replicas"], c["group.streams.initial.rebalance.delay.ms"],
            c["group.streams.max.size"]) == (45000, 5000, 0, 3000, 2**31 - 1)
