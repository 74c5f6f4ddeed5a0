"""CreatePartitions decides on the controller's image, which runs ahead of the broker's by the
records appended but not committed (here a creation whose write was cancelled while waiting for
its commit): it must not need the topic in the broker's image (before: AssertionError, answered
UNKNOWN_SERVER_ERROR), and creates the new logs with the controller's topic configs."""
from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.controller.operations import create_partitions as cp
from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
from tests.unit.metadata_image_helpers import node

TID = uuid.UUID(int=9)


class _Logs:
    def __init__(self) -> None:
        self.made: list[list[tuple[str, int]]] = []
        self.removed: list[list[tuple[str, int]]] = []

    def make_dirs(self, keys: list[tuple[str, int]]) -> None:
        self.made.append(keys)

    def remove_new_logs(self, keys: list[tuple[str, int]]) -> None:
        self.removed.append(keys)


async def test_create_partitions_on_a_topic_only_the_controller_image_has(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, loader, raft = node()
    reg = mr.RegisterBrokerRecord(broker_id=1, incarnation_id=uuid.UUID(int=1), broker_epoch=0, fenced=False)
    w = asyncio.ensure_future(controller.write([mr.FeatureLevelRecord(name="metadata.version", feature_level=27), reg]))
    await raft.wait_appended()
    raft.commit_through(raft.log.end_offset)
    await w

    async def create_topic() -> None:
        async with controller.exclusive():
            await controller.write([
                mr.TopicRecord(name="t", topic_id=TID),
                mr.ConfigRecord(resource_type=2, resource_name="t", name="retention.ms", value="1000"),
                mr.PartitionRecord(partition_id=0, topic_id=TID, replicas=[1], isr=[1], leader=1)])
    task = asyncio.ensure_future(create_topic())
    await raft.wait_appended()
    task.cancel()  # e.g. the forwarding connection closed while the write waited for its commit
    with pytest.raises(asyncio.CancelledError):
        await task
    assert controller.image.topic("t") is not None and loader.image.topic("t") is None

    created: list[tuple[str, dict[str, str]]] = []

    def create_logs(broker: Any, name: str, records: Any, configs: dict[str, str]) -> list[tuple[str, int]]:
        created.append((name, dict(configs)))
        return [(name, 1)]
    monkeypatch.setattr(cp, "create_partition_logs", create_logs)
    logs = _Logs()
    broker = SimpleNamespace(controller=controller, image=loader.image, log_manager=logs)
    req = CreatePartitionsRequest(
        topics=[CreatePartitionsRequest.CreatePartitionsTopic(name="t", count=2, assignments=None)],
        timeout_ms=1000, validate_only=False)

    async def run() -> Any:
        async with controller.exclusive():
            return await cp._create_partitions(broker, req)  # type: ignore[arg-type]
    answer = asyncio.ensure_future(run())
    appended = asyncio.ensure_future(raft.wait_appended())
    await asyncio.wait([answer, appended], return_when=asyncio.FIRST_COMPLETED)
    if answer.done():  # failed before writing
        appended.cancel()
        answer.result()
    raft.commit_through(raft.log.end_offset)
    response = await answer
    assert [(r.name, r.error_code) for r in response.results] == [("t", ErrorCode.NONE)]
    assert created == [("t", {"retention.ms": "1000"})]
    assert logs.made == [[("t", 1)]] and logs.removed == []
    assert len(loader.image.topic("t").partitions) == 2  # type: ignore[union-attr]
