"""Failing coordinator and state probe shared by the group write-failure unit tests (moved from test_group_write_failures)."""

from __future__ import annotations

import dataclasses
from typing import Any

from group_fakes import FakeCoordinator

from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode


class FailingCoordinator(FakeCoordinator):
    """Appends fail with ``error`` while it is set (as a lost leadership or a storage error)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: ErrorCode | None = None

    def append(self, group_id: str, records: list[Any]) -> int:
        if self.error is not None:
            raise ProduceError(self.error)
        return super().append(group_id, records)


def state(coordinator: FailingCoordinator) -> tuple[Any, Any]:
    """Every group's fields and the pending timers (key, due time, callback)."""
    groups = {gid: dataclasses.asdict(g) for gid, g in coordinator.groups.items()}
    return groups, dict(coordinator.timer.timers)
