"""Kafka's sticky task assignor for streams groups (KIP-1071), as Kafka 4.4's ``StickyTaskAssignor``.

Input: the members (member id -> process id, the active and standby tasks of its last target
assignment, the changelog offsets it reported), the tasks of every subtopology (subtopology id ->
number of tasks, the largest partition count of its source topics), which subtopologies are
stateful (have changelogs), and the number of standby replicas. Output: per member the active and
standby tasks.

Active tasks, in order of partition then subtopology: first to their previous active owner while
that member is under its quota (the fair share of active tasks per member, recomputed as members
fill up), then to a previous standby owner under quota (the least loaded one), and the rest, in
order of subtopology then partition, to the least-loaded process (tasks per member) and its
least-loaded member.

Standby tasks (``group.streams.num.standby.replicas``, stateful subtopologies only) never go to a
process that already has the task: first to the previous active owner, then to a previous standby
owner (previous standbys before members that only reported offsets, the most caught-up first),
each under its quota of all tasks; the rest to the least-loaded processes. Replicas that cannot be
placed are left out, as Kafka does (with a warning). Warm-up tasks are not assigned: Kafka 4.4's
``AssignmentRefiner`` inserts none yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Tasks = dict[str, set[int]]  # subtopology id -> partitions (task ids)
Task = tuple[str, int]


@dataclass(slots=True)
class AssignorMember:
    process_id: str
    active: Tasks = field(default_factory=dict)  # the member's last target (or current) assignment
    standby: Tasks = field(default_factory=dict)
    task_offsets: dict[Task, int] = field(default_factory=dict)  # reported changelog offset sums


class _Process:
    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.counts: dict[str, int] = {}
        self.tasks: set[Task] = set()
        self.active: dict[str, set[Task]] = {}
        self.standby: dict[str, set[Task]] = {}

    @property
    def load(self) -> float:
        return sum(self.counts.values()) / len(self.counts) if self.counts else float("inf")

    def add(self, mid: str, task: Task, active: bool) -> int:
        self.tasks.add(task)
        (self.active if active else self.standby).setdefault(mid, set()).add(task)
        self.counts[mid] += 1
        return self.counts[mid]

    def add_to_least_loaded(self, task: Task, active: bool) -> int:
        mid = min(self.counts, key=lambda m: (self.counts[m], m))
        return self.add(mid, task, active)


def _per_member(tasks: int, members: int) -> int:
    return 0 if members == 0 else -(-tasks // members)


def assign(members: dict[str, AssignorMember], tasks: dict[str, int], num_standby: int,
           stateful: set[str] | None = None) -> dict[str, tuple[Tasks, Tasks]]:
    """member id -> (active tasks, standby tasks). ``stateful``: the subtopologies with state
    (all of them when not given)."""
    out: dict[str, tuple[Tasks, Tasks]] = {mid: ({}, {}) for mid in members}
    if not members:
        return out
    stateful = set(tasks) if stateful is None else stateful
    processes: dict[str, _Process] = {}
    for mid in sorted(members):
        processes.setdefault(members[mid].process_id, _Process(members[mid].process_id)).counts[mid] = 0
    total_active = sum(tasks.values())
    total = total_active + sum(n * num_standby for s, n in tasks.items() if s in stateful)
    quota = {"active_members": len(members), "active_total": total_active,
             "active": _per_member(total_active, len(members)),
             "all_members": len(members), "all_total": total, "all": _per_member(total, len(members))}

    def filled_active(n: int) -> None:
        if n == quota["active"]:
            quota["active_members"] -= 1
            quota["active_total"] -= n
            quota["active"] = _per_member(quota["active_total"], quota["active_members"])

    def filled_all(n: int) -> None:
        if n == quota["all"]:
            quota["all_members"] -= 1
            quota["all_total"] -= n
            quota["all"] = _per_member(quota["all_total"], quota["all_members"])

    prev_active: dict[Task, str] = {}
    candidates: dict[Task, list[tuple[int, int, str]]] = {}  # (previous standby first, -offset, member)
    for mid in sorted(members):
        m = members[mid]
        for s, ps in m.active.items():
            for p in ps:
                prev_active[(s, p)] = mid
        for s, ps in m.standby.items():
            for p in ps:
                candidates.setdefault((s, p), []).append((0, -m.task_offsets.get((s, p), 0), mid))
        for (s, p), offset in m.task_offsets.items():
            if p not in m.standby.get(s, set()):
                candidates.setdefault((s, p), []).append((1, -offset, mid))
    prev_standby = {t: [mid for _, _, mid in sorted(c)] for t, c in candidates.items()}

    def proc(mid: str) -> _Process:
        return processes[members[mid].process_id]

    def least_loaded_prev(mids: list[str] | None, task: Task | None) -> str | None:
        best = None
        for mid in mids or []:
            p = proc(mid)
            if task is not None and task in p.tasks:
                continue
            if best is None or (p.load < proc(best).load and p.counts[mid] < proc(best).counts[best]):
                best = mid
        return best

    # -- active tasks
    active_tasks = sorted(((s, part) for s in tasks for part in range(tasks[s])), key=lambda t: (t[1], t[0]))
    rest: list[Task] = []
    for task in active_tasks:
        member = prev_active.get(task)
        if member is not None and proc(member).counts[member] < quota["active"]:
            n = proc(member).add(member, task, True)
            filled_active(n)
            filled_all(n)
        else:
            rest.append(task)
    remaining: list[Task] = []
    for task in rest:
        member = least_loaded_prev(prev_standby.get(task), None)
        if member is not None and proc(member).counts[member] < quota["active"]:
            n = proc(member).add(member, task, True)
            filled_active(n)
            filled_all(n)
        else:
            remaining.append(task)
    for task in sorted(remaining):
        process = min(processes.values(), key=lambda x: (x.load, x.pid))
        n = process.add_to_least_loaded(task, True)
        filled_active(n)
        filled_all(n)

    # -- standby tasks
    if num_standby > 0:
        standby_tasks = sorted(((s, part) for s in tasks if s in stateful for part in range(tasks[s])),
                               key=lambda t: (t[1], t[0]), reverse=True)
        to_least_loaded: list[tuple[Task, int]] = []
        for task in standby_tasks:
            for i in range(num_standby):
                member = prev_active.get(task)
                if member is not None and task not in proc(member).tasks and proc(member).counts[member] < quota["all"]:
                    filled_all(proc(member).add(member, task, False))
                    continue
                member = least_loaded_prev(prev_standby.get(task), task)
                if member is not None and proc(member).counts[member] < quota["all"]:
                    filled_all(proc(member).add(member, task, False))
                    continue
                to_least_loaded.append((task, num_standby - i))
                break
        for task, replicas in sorted(to_least_loaded, key=lambda x: x[0], reverse=True):
            for i in range(replicas):
                eligible = [p for p in processes.values() if task not in p.tasks]
                if not eligible:
                    log.warning("Unable to assign %d of %d standby tasks for task %s. There is not enough available "
                                "capacity.", replicas - i, num_standby, task)
                    break
                process = min(eligible, key=lambda x: (x.load, x.pid))
                filled_all(process.add_to_least_loaded(task, False))

    for process in processes.values():
        for mid, ts in process.active.items():
            for s, part in ts:
                out[mid][0].setdefault(s, set()).add(part)
        for mid, ts in process.standby.items():
            for s, part in ts:
                out[mid][1].setdefault(s, set()).add(part)
    return out
