"""A controller and a MetadataLoader wired to one metadata log held by the test (HeldRaft): the
controller's image and the broker's, fed as in a node (wire_metadata)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from kbroker.controller.quorum import QuorumController
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.loader import MetadataLoader
from kbroker.raft.log import Entry, MemoryLog
from kbroker.wiring.metadata_quorum import wire_metadata


class HeldRaft:
    """A RaftDriver stand-in whose proposals are appended at once and committed only when the test
    says so (``commit_through``), as a leader whose followers have not fetched them yet."""

    def __init__(self) -> None:
        self.node = SimpleNamespace(voters=frozenset({1, 2, 3}), epoch_start_offset=0, applied_offset=0)
        self.log = MemoryLog()
        self.epoch = 3
        self.leader_id = 1
        self.is_leader = True
        self.high_watermark = 0
        self.on_commit = None
        self.on_resign = None
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self.appended: asyncio.Event | None = None  # set once a proposal is appended

    async def wait_appended(self) -> None:
        self.appended = self.appended or asyncio.Event()
        await self.appended.wait()
        self.appended.clear()

    async def propose(self, values, control=False, on_append=None):
        self.log.append([Entry(self.epoch, v, control=control, batch_end=i == len(values) - 1)
                         for i, v in enumerate(values)])
        last = self.log.end_offset - 1
        if on_append is not None:
            on_append(last)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[last] = future
        self.appended = self.appended or asyncio.Event()
        self.appended.set()
        return await future

    def commit_through(self, end: int) -> None:
        """Commit the log up to ``end`` (exclusive) and deliver it, as RaftDriver._deliver does."""
        start = self.high_watermark
        self.high_watermark = end
        for offset, entry in enumerate(self.log.read(start, end - start), start):
            future = self._waiting.pop(offset, None)
            if future is not None and not future.done():  # (a cancelled wait)
                future.set_result(offset)
            self.on_commit(offset, entry)


def node() -> tuple[QuorumController, MetadataLoader, HeldRaft]:
    raft = HeldRaft()
    loader = MetadataLoader()
    controller = QuorumController(1, None, MetadataImage(), raft=raft, committed=loader)  # type: ignore[arg-type]
    wire_metadata(raft, loader, controller)  # type: ignore[arg-type]
    return controller, loader, raft
