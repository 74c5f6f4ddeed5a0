"""Producer-id allocation for idempotent and transactional producers (Kafka's RPCProducerIdManager).

Ids come in blocks that the controller reserves durably in the metadata log (AllocateProducerIds,
through the broker's :class:`~kbroker.metadata.client.ControllerClient`), so an id is never
handed out twice, across restarts and across the brokers of a cluster. As in Kafka, the next block
is asked for once 90% of the current one is used, so that allocation rarely waits; when the current
block is used up and the next has not arrived, :meth:`ProducerIdManager.allocate` raises
:class:`ProducerIdsUnavailable` (COORDINATOR_LOAD_IN_PROGRESS, which clients retry), and
:meth:`ProducerIdManager.ensure` waits for a block (InitProducerId awaits it before allocating).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.metadata.client import ControllerClient
    from kbroker.metadata.image import MetadataImage

log = logging.getLogger(__name__)

PREFETCH_RATIO = 0.9  # Kafka's RPCProducerIdManager.PID_PREFETCH_THRESHOLD


class ProducerIdsUnavailable(Exception):
    """No producer id block is available (yet): COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) -> None:
        super().__init__(message)
        self.code = code


class ProducerIdHost(Protocol):
    """What the allocator needs of the broker: its id, its registration (epoch) in the image, and
    the controller client."""

    node_id: int
    image: MetadataImage
    controller_client: ControllerClient


class ProducerIdManager:
    def __init__(self, broker: ProducerIdHost) -> None:
        self.broker = broker
        self.next_id = 0
        self.end_id = 0
        self._block_start = 0
        self._next_block: tuple[int, int] | None = None
        self._fetching: asyncio.Future[None] | None = None

    def allocate(self) -> int:
        """The next producer id, or ProducerIdsUnavailable when no block is at hand."""
        if self.next_id >= self.end_id:
            if self._next_block is None:
                self._prefetch()
                raise ProducerIdsUnavailable("Producer ID block is full. Waiting for next block")
            self._take_next_block()
        pid = self.next_id
        self.next_id += 1
        if self.next_id >= self._block_start + PREFETCH_RATIO * (self.end_id - self._block_start):
            self._prefetch()
        return pid

    async def ensure(self) -> None:
        """Wait until an id can be allocated (asking the controller for a block if needed); raises
        ProducerIdsUnavailable when the controller refuses or cannot be reached."""
        while self.next_id >= self.end_id and self._next_block is None:
            if self._fetching is None:
                self._fetching = asyncio.ensure_future(self._fetch())
            fetching = self._fetching
            await asyncio.shield(fetching)
            fetching.result()  # the fetch's error, if it failed

    def _take_next_block(self) -> None:
        assert self._next_block is not None
        start, count = self._next_block
        self._next_block = None
        self._block_start, self.next_id, self.end_id = start, start, start + count

    def _prefetch(self) -> None:
        if self._fetching is not None or self._next_block is not None:
            return
        try:
            self._fetching = asyncio.get_running_loop().create_task(self._fetch())
        except RuntimeError:  # no event loop: the next ensure() fetches
            return
        self._fetching.add_done_callback(_log_failure)

    async def _fetch(self) -> None:
        try:
            broker = self.broker
            registration = broker.image.brokers.get(broker.node_id)
            epoch = registration.epoch if registration is not None else -1
            response = await broker.controller_client.allocate_producer_ids(broker.node_id, epoch)
            if response.error_code != ErrorCode.NONE:
                raise ProducerIdsUnavailable(f"the controller refused a producer id block: "
                                             f"{ErrorCode(response.error_code).name}")
            if response.producer_id_start < 0 or response.producer_id_len <= 0:
                raise ProducerIdsUnavailable(f"the controller sent an invalid producer id block "
                                             f"({response.producer_id_start}, {response.producer_id_len})")
            self._next_block = (response.producer_id_start, response.producer_id_len)
            if self.next_id >= self.end_id:
                self._take_next_block()
        except ProducerIdsUnavailable:
            raise
        except Exception as exc:  # the controller unreachable (ControllerUnavailable), ...
            raise ProducerIdsUnavailable(f"no producer id block: {exc}") from exc
        finally:
            self._fetching = None


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("cannot prefetch a producer id block: %s", task.exception())
