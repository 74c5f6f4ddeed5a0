"""The leader's ApiVersions probe of a new voter (AddRaftVoter, RaftDriver._probe_kraft_version) on a
connection the new voter reset before the probe was written: on uvloop (the loop kbroker runs on),
a write to a connection the loop has seen reset raises ``RuntimeError`` ("the handler is closed"),
which the probe did not expect and which ended AddRaftVoter with an error; it is a failed probe,
as a refused connection or a silent voter is (None: the caller answers REQUEST_TIMED_OUT, "not
ready to receive requests", and the client retries), on either loop.

Deterministic as tests/unit/test_outgoing_reset_connections.py: the driver's opener hands the
connection over only once its end has seen the reset."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from pathlib import Path

import pytest
from event_loops import LOOPS, reset_seen

from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.io import RaftDriver
from kbroker.raft.node import RaftConfig
from kbroker.raft.state_store import FileQuorumStateStore


async def _probe_a_voter_that_resets(tmp_path: Path) -> tuple[object, int]:
    """The probe's result (or what it raised) and how many connections the new voter accepted."""
    accepted: list[socket.socket] = []

    def reset(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.append(sock)
        writer.transport.abort()  # closed with SO_LINGER 0: a reset

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()[:2]

    async def open_after_the_reset(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        await reset_seen(reader, writer)
        return reader, writer

    config = RaftConfig(election_timeout_ms=200, fetch_timeout_ms=400, election_backoff_max_ms=200,
                        request_timeout_ms=30_000, retry_backoff_ms=20)
    driver = RaftDriver(1, (1,), {}, FileRaftLog(tmp_path / "log"), FileQuorumStateStore(tmp_path / "log"),
                        config=config, cluster_id="probe", rng=random.Random(1))
    driver.open_connection = open_after_the_reset
    try:
        try:
            result: object = await driver._probe_kraft_version(address)
        except Exception as exc:  # noqa: BLE001 - what AddRaftVoter's handler would have got
            result = exc
        return result, len(accepted)
    finally:
        server.close()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_probe_on_a_connection_the_new_voter_reset_fails(tmp_path: Path, loop_name: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kbroker.raft")
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        result, accepted = runner.run(_probe_a_voter_that_resets(tmp_path))
    assert accepted == 1
    assert result is None, f"the probe gave {result!r}"
    assert any("did not answer ApiVersions" in r.getMessage() for r in caplog.records)
