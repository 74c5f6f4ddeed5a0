#!/usr/bin/env python3
"""What does a KIP-848 ConsumerGroupHeartbeat cost the coordinator, by group size? Mostly to keep
an eye on ``MemberGroupManager._all_or_nothing`` (the snapshot each operation takes so that a
failed append leaves the group as it was): it copies the group's containers one level and the
acting member deeply, not every member.

The consumer group manager runs on the unit tests' fakes (tests/unit/group_fakes.py: no broker, no
log): N well-behaved members of one topic with 10 partitions each are stabilised, then each
heartbeats in turn (a steady-state heartbeat: no records). The best of 5 runs is reported.

``--writes``: heartbeats that write records while the partition's high watermark is held (every
operation's snapshot is kept for reads at the last committed offset, ``group_views``): one member
in turn changes its subscription (a new group epoch and target assignment each time). With
``--writes`` the time of a read at the high watermark (what ConsumerGroupDescribe pays) after
those operations is printed too, where the coordinator keeps them (``views``).

    .venv/bin/python scripts/bench_group_heartbeat.py [--writes]
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from group_fakes import FakeCoordinator  # type: ignore[import-not-found]  # noqa: E402
from test_group_consumer import Client  # type: ignore[import-not-found]  # noqa: E402

from kbroker.coordinator.group_consumer import ConsumerGroupManager  # noqa: E402


def writes() -> None:
    from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest

    for members in (3, 50, 200):
        coordinator = FakeCoordinator()
        coordinator.broker.config["group.max.size"] = 10 * members
        coordinator.broker.image.add("t", 10 * members)
        coordinator.broker.image.add("u", 1)
        manager = ConsumerGroupManager(coordinator)
        clients = [Client(manager, f"m{i}", ["t"]) for i in range(members)]
        for _ in range(3):
            for client in clients:
                client.heartbeat()
        coordinator.high_watermark = len(coordinator.records)  # the followers stop
        turn = [0]
        with_u: set[str] = set()

        def heartbeat(clients: list[Client] = clients, turn: list[int] = turn, with_u: set[str] = with_u,
                      manager: ConsumerGroupManager = manager) -> None:
            client = clients[turn[0] % len(clients)]
            with_u ^= {client.member_id}  # every heartbeat changes its member's subscription
            topics = ["t", "u"] if client.member_id in with_u else ["t"]
            response = manager.heartbeat(ConsumerGroupHeartbeatRequest(
                group_id="g", member_id=client.member_id, member_epoch=client.epoch, subscribed_topic_names=topics),
                1, "client", "/h")
            assert response.error_code == 0, response
            client.epoch = response.member_epoch
            turn[0] += 1

        number = 50
        best = min(timeit.repeat(heartbeat, number=number, repeat=5)) / number
        line = f"{members:5d} members, {10 * members:6d} partitions: {best * 1e6:8.1f} us per writing heartbeat"
        views = getattr(coordinator, "views", None)
        if views is not None:
            def read(views: Any = views, groups: dict[str, Any] = coordinator.groups) -> None:
                with views.at_committed(["g"]):
                    len(groups["g"].members)

            read_best = min(timeit.repeat(read, number=20, repeat=3)) / 20
            line += f"; a read at the high watermark after {turn[0]} of them: {read_best * 1e6:8.1f} us"
        print(line)


def main() -> None:
    if "--writes" in sys.argv[1:]:
        writes()
        return
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
