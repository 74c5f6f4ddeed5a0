"""Kafka's sticky task assignor for streams groups (KIP-1071), as ``StickyTaskAssignor`` does it.

Input: the members (member id -> process id and the tasks it has now), the tasks of every
subtopology (subtopology id -> number of tasks) and the number of standby replicas. Output: per
member the active and standby tasks.

Active tasks stay where they are when the owner's process is not over its fair share; the others go
to the least-loaded process (by active tasks per member), and within a process to its least-loaded
member. Standby tasks (``group.streams.num.standby.replicas``) never go to the process running the
task's active copy nor twice to one process; previous standby owners keep them first, the rest go
to the least-loaded eligible process. Warm-up tasks are not assigned: Kafka assigns them only
from task changelog offsets that this broker does not evaluate (see streams_group.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Tasks = dict[str, set[int]]  # subtopology id -> partitions (task ids)


@dataclass(slots=True)
class AssignorMember:
    process_id: str
    active: Tasks = field(default_factory=dict)  # what the member has (or was last targeted)
    standby: Tasks = field(default_factory=dict)


def _task_list(tasks: dict[str, int]) -> list[tuple[str, int]]:
    return [(s, p) for s in sorted(tasks) for p in range(tasks[s])]


def assign(members: dict[str, AssignorMember], tasks: dict[str, int], num_standby: int
           ) -> dict[str, tuple[Tasks, Tasks]]:
    """member id -> (active tasks, standby tasks)."""
    out: dict[str, tuple[Tasks, Tasks]] = {mid: ({}, {}) for mid in members}
    if not members:
        return out
    all_tasks = _task_list(tasks)
    processes: dict[str, list[str]] = {}
    for mid in sorted(members):
        processes.setdefault(members[mid].process_id, []).append(mid)
    active_load: dict[str, int] = {mid: 0 for mid in members}
    # Fair share of active tasks per member, rounded up, so a process's share is members * that.
    per_member = math.ceil(len(all_tasks) / len(members)) if all_tasks else 0
    owner: dict[tuple[str, int], str] = {}

    def give_active(mid: str, task: tuple[str, int]) -> None:
        out[mid][0].setdefault(task[0], set()).add(task[1])
        active_load[mid] += 1
        owner[task] = mid

    # 1. Sticky: previous active owners keep their tasks up to the fair share.
    previous: dict[tuple[str, int], str] = {}
    for mid in sorted(members):
        for s, parts in members[mid].active.items():
            for p in parts:
                if s in tasks and p < tasks[s]:
                    previous.setdefault((s, p), mid)
    for task in all_tasks:
        mid = previous.get(task)
        if mid is not None and active_load[mid] < per_member:
            give_active(mid, task)

    # 2. The rest to the least-loaded process, then its least-loaded member.
    def process_load(pid: str) -> float:
        return sum(active_load[m] for m in processes[pid]) / len(processes[pid])

    for task in all_tasks:
        if task in owner:
            continue
        pid = min(sorted(processes), key=process_load)
        mid = min(processes[pid], key=lambda m: (active_load[m], m))
        give_active(mid, task)

    # 3. Standby replicas on other processes.
    if num_standby > 0:
        standby_load: dict[str, int] = {mid: 0 for mid in members}
        prev_standby: dict[tuple[str, int], list[str]] = {}
        for mid in sorted(members):
            for s, parts in members[mid].standby.items():
                for p in parts:
                    prev_standby.setdefault((s, p), []).append(mid)
        for task in all_tasks:
            used = {members[owner[task]].process_id}
            for _ in range(num_standby):
                choice = None
                for mid in prev_standby.get(task, []):
                    if members[mid].process_id not in used:
                        choice = mid
                        break
                if choice is None:
                    candidates = [m for m in sorted(members) if members[m].process_id not in used]
                    if not candidates:
                        break
                    choice = min(candidates, key=lambda m: (standby_load[m] + active_load[m], m))
                out[choice][1].setdefault(task[0], set()).add(task[1])
                standby_load[choice] += 1
                used.add(members[choice].process_id)
    return out
