"""A RaftDriver whose connection breaks under it (a peer's reset closes the transport at once, as
uvloop does, before the connection's own task has seen it): what it sends there is reported
failed and retried, and its timer keeps ticking the node, whatever one tick raised.

The stall these guard against (a whole-suite run of tests/faults/test_cluster_disk_full.py): a
write on a transport a reset had just closed raised ``RuntimeError`` (uvloop) out of the timer's
step; the timer task ended, silently; the node then moved only when a message came in. As a
follower it fetched once after each election (on BeginQuorumEpoch) and never again (its next Fetch
was due on the timer), so the leader's high watermark never passed its epoch start, check-quorum
made it resign three seconds later, and the same happened in the next epoch, for as long as the
run went on.
"""

from __future__ import annotations

import asyncio
import logging

import uvloop

from kbroker.raft.connections import Inbound
from kbroker.raft.io import RaftDriver
from kbroker.raft.messages import FetchRequest
from tests.raft.raft_io_helpers import Cluster, wait_for


def _run_on_uvloop(main):  # the loop kbroker runs on (kbroker/__main__.py)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def _fetch_from(follower: RaftDriver, leader_id: int, request_id: int) -> FetchRequest:
    node = follower.node
    assert node is not None
    end = node.log.end_offset
    return FetchRequest(follower.node_id, leader_id, request_id, node.epoch, end, node.log.epoch_at(end), 0,
                        node.high_watermark)


def test_a_request_on_a_connection_a_reset_just_closed_fails_and_is_retried(tmp_path, caplog):
    """The follower's connection to the leader is closed by the loop (as a reset closes it) and,
    before its reader task has run, the follower sends the leader a Fetch: the step does not
    raise (nor log an error: a lost connection is no fault), the request is reported failed, and
    the follower goes on replicating over a new connection."""

    async def main() -> None:
        async with Cluster(tmp_path) as c:
            leader = await c.wait_leader()
            await c.propose([b"a"])
            await c.wait_committed_everywhere([b"a"])
            follower = next(d for n, d in c.drivers.items() if n != leader.node_id)
            peer = follower._peers[leader.node_id]
            writer = peer.writer
            assert writer is not None
            seen: list[object] = []

            def send_in_the_window() -> None:
                # uvloop's connection_lost ran just before this callback: the transport is closed
                # and the reader task, woken, has not run yet
                seen.append(peer.writer is writer and writer.transport.is_closing())
                try:
                    seen.append(follower._step(lambda now: [_fetch_from(follower, leader.node_id, 7)]))
                except Exception as exc:  # noqa: BLE001 - what the timer's step would have raised
                    seen.append(exc)

            writer.transport.abort()
            asyncio.get_running_loop().call_soon(send_in_the_window)
            await wait_for(lambda: len(seen) == 2, "the send in the window")
            assert seen == [True, True]
            assert follower._timer is not None and not follower._timer.done()
            for value in (b"b", b"c"):
                await c.propose([value])
                await c.wait_committed_everywhere([value])
            assert follower._peers[leader.node_id].writer is not writer

    _run_on_uvloop(main)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_answer_to_a_connection_a_reset_just_closed_is_dropped(tmp_path):
    """An inbound connection whose transport the loop closed (a reset) before its task saw it:
    an answer filled in for it is dropped and the connection counted closed, not raised into the
    step that made the answer (the timer's, for a held Fetch whose wait ended)."""

    async def main() -> None:
        async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        server = await asyncio.start_server(idle, "127.0.0.1", 0)
        try:
            _r, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            conn = Inbound(writer)
            slot = conn.add_slot(1)
            writer.transport.abort()
            await asyncio.sleep(0)  # the transport's connection_lost: closed
            conn.fill(slot, b"\x00\x00\x00\x04\x00\x00\x00\x01")
            assert conn.closed
            assert not conn.slots
        finally:
            server.close()

    _run_on_uvloop(main)


async def test_the_timer_outlives_a_failed_step(tmp_path, caplog):
    """One round of the timer raises (here next_deadline, once): the error is logged and the timer
    goes on ticking the node; the follower keeps fetching and every proposal commits on it."""
    async with Cluster(tmp_path) as c:
        leader = await c.wait_leader()
        follower = next(d for n, d in c.drivers.items() if n != leader.node_id)
        node = follower.node
        assert node is not None
        real = node.next_deadline
        failed: list[bool] = []

        def next_deadline_failing_once() -> int:
            if not failed:
                failed.append(True)
                raise RuntimeError("injected")
            return real()

        node.next_deadline = next_deadline_failing_once  # type: ignore[method-assign]
        follower._wakeup.set()
        await wait_for(lambda: failed, "the injected failure")
        for i in range(5):
            value = f"v{i}".encode()
            await c.propose([value])
            await c.wait_committed_everywhere([value])
        assert follower._timer is not None and not follower._timer.done()
        assert any(r.levelno == logging.ERROR and "timer" in r.getMessage() for r in caplog.records)
