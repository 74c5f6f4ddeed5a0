"""The Raft client's request timeout (Kafka's NetworkClient.handleTimedOutRequests with
controller.quorum.request.timeout.ms), for the sockets of a ``RaftDriver`` (``kbroker/raft/transport.py``,
whose ``RaftTransport`` this is mixed into): a request with no answer in time closes its connection."""

from __future__ import annotations

import asyncio
import logging

from kbroker.raft.connections import answer_waiting
from kbroker.raft.node import RaftConfig
from kbroker.raft.peers import Peer

logger = logging.getLogger("kbroker.raft.io")  # the driver's logger


class RequestTimer:
    """The request-timeout part of ``RaftTransport`` (the attributes below are the driver's)."""

    node_id: int
    config: RaftConfig
    _loop: asyncio.AbstractEventLoop | None

    def _arm_request_timeout(self, peer: Peer) -> None:
        """The timer of the oldest request in flight to ``peer`` (none when one is armed)."""
        if peer.timeout_timer is None and peer.sent_at:
            assert self._loop is not None
            due = min(peer.sent_at.values()) + self.config.request_timeout_ms / 1000
            peer.timeout_timer = self._loop.call_at(due, self._check_request_timeout, peer)

    def _check_request_timeout(self, peer: Peer) -> None:
        """Kafka's NetworkClient.handleTimedOutRequests: a request with no answer in
        controller.quorum.request.timeout.ms closes its connection, failing what is in flight on it
        (the node retries it); the next request reconnects."""
        peer.timeout_timer = None
        writer = peer.writer
        if writer is None or not peer.sent_at:
            return
        assert self._loop is not None
        if self._loop.time() - min(peer.sent_at.values()) >= self.config.request_timeout_ms / 1000:
            if answer_waiting(peer.reader, writer):
                # Kafka's NetworkClient.poll handles the answers received before it looks for timed-out
                # requests: after a stall of this loop the answer may be here but not yet read (the
                # timer runs before the reader task): look again once it has been read
                peer.timeout_timer = self._loop.call_later(0.001, self._check_request_timeout, peer)
                return
            logger.info("raft node %d: disconnecting from node %d due to request timeout", self.node_id, peer.node_id)
            peer.request_timeouts += 1
            writer.transport.abort()  # the reader task sees it end and fails what was in flight
        else:
            self._arm_request_timeout(peer)
