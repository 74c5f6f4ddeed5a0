#!/usr/bin/env python3
"""What does a KIP-848 ConsumerGroupHeartbeat cost the coordinator, by group size? Mostly to keep
an eye on ``MemberGroupManager._all_or_nothing`` (the snapshot each operation takes so that a
failed append leaves the group as it was): it copies the group's containers one level and the
acting member deeply, not every member.

The consumer group manager runs on the unit tests' fakes (tests/unit/group_fakes.py: no broker, no
log): N well-behaved members of one topic with 10 partitions each are stabilised, then each
heartbeats in turn (a steady-state heartbeat: no records). The best of 5 runs is reported.

    .venv/bin/python scripts/bench_group_heartbeat.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from group_fakes import FakeCoordinator  # type: ignore[import-not-found]  # noqa: E402
from test_group_consumer import Client  # type: ignore[import-not-found]  # noqa: E402

from kbroker.coordinator.group_consumer import ConsumerGroupManager  # noqa: E402


def main() -> None:
    for members in (3, 50, 200):
        coordinator = FakeCoordinator()
        coordinator.broker.config["group.max.size"] = 10 * members
        coordinator.broker.image.add("t", 10 * members)
        manager = ConsumerGroupManager(coordinator)
        clients = [Client(manager, f"m{i}", ["t"]) for i in range(members)]
        for _ in range(3):
            for client in clients:
                client.heartbeat()
        turn = [0]

        def heartbeat(clients: list[Client] = clients, turn: list[int] = turn) -> None:
            clients[turn[0] % len(clients)].heartbeat()
            turn[0] += 1

        number = 200
        best = min(timeit.repeat(heartbeat, number=number, repeat=5)) / number
        print(f"{members:5d} members, {10 * members:6d} partitions: {best * 1e6:8.1f} us per heartbeat")


if __name__ == "__main__":
    main()
