"""A request that fails on the controller listener is answered with its error response and the
connection stays open, as Kafka's ``ControllerApis.handle`` does (``requestHelper.handleError`` ->
``request.getErrorResponse(e)``, the code from ``Errors.forException``): UNKNOWN_SERVER_ERROR for an
unexpected exception, a controller refusal's own code. Both a controller API handler raising and the
Raft core failing on a Raft RPC. The handlers are the ones ``kbroker.api.controller_apis.install``
puts on a real ``RaftDriver``'s listener; the failure is injected by replacing what they call.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from kbroker.api import controller_apis
from kbroker.controller.errors import ControllerError
from kbroker.raft.io import RaftDriver
from kbroker.security.acls import Authorizer
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.messages import vote as vo
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest
from tests.raft.raft_io_helpers import CLUSTER_ID, WAIT, Cluster

UNKNOWN_SERVER_ERROR = int(ErrorCode.UNKNOWN_SERVER_ERROR)
DESCRIBE_QUORUM, BROKER_HEARTBEAT, VOTE, API_VERSIONS = 55, 63, 52, 18


class _Node:
    """What ``controller_apis.install`` needs of a node: its RaftDriver (nothing runs in the
    background), and the authorizer its APIs check the connection's principal with (none enabled)."""

    def __init__(self, raft: RaftDriver) -> None:
        self.raft = raft
        self.node_id = raft.node_id
        self.authorizer = Authorizer()

    def run_in_background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        coro.close()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.correlation = 0

    async def call(self, api_key: int, version: int, body: Any) -> Any:
        self.correlation += 1
        header = RequestHeader(request_api_key=api_key, request_api_version=version,
                               correlation_id=self.correlation, client_id="t")
        data = encode_request(header, body)
        self.writer.write(struct.pack(">i", len(data)) + data)
        await self.writer.drain()
        async with asyncio.timeout(WAIT):
            size = struct.unpack(">i", await self.reader.readexactly(4))[0]
            frame = await self.reader.readexactly(size)
        got, response = decode_response(frame, api_key, version)
        assert got.correlation_id == self.correlation
        return response

    async def api_versions_answered(self) -> bool:
        resp = await self.call(API_VERSIONS, 3, REQUESTS[API_VERSIONS](client_software_name="t",
                                                                        client_software_version="1"))
        return bool(resp.error_code == 0 and resp.api_keys)


@pytest.fixture
async def controller_node(tmp_path: Any) -> AsyncIterator[_Node]:
    cluster = Cluster(tmp_path)  # one node of its three voters is enough: no leader is needed
    driver = await cluster.start(1)
    try:
        node = _Node(driver)
        controller_apis.install(node)  # type: ignore[arg-type]  # (the part of a node it uses)
        yield node
    finally:
        await cluster.stop(1, graceful=True)


@pytest.fixture
def controller(controller_node: _Node) -> RaftDriver:
    return controller_node.raft


@pytest.fixture
async def connection(controller: RaftDriver) -> AsyncIterator[_Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", controller.port)
    yield _Connection(reader, writer)
    writer.close()


def _raise(exc: Exception) -> Any:
    async def handler(*args: Any) -> Any:
        raise exc

    return handler


async def test_a_handler_raising_gets_unknown_server_error_and_the_connection_stays_open(
        controller: RaftDriver, connection: _Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_apis, "describe_quorum", _raise(RuntimeError("internal detail")))
    resp = await connection.call(DESCRIBE_QUORUM, 2, DescribeQuorumRequest())
    # DescribeQuorumRequest.getTopLevelErrorResponse: the code and its default message, no topics
    assert (resp.error_code, resp.error_message, resp.topics) == (
        UNKNOWN_SERVER_ERROR, default_message(UNKNOWN_SERVER_ERROR), [])
    assert await connection.api_versions_answered()
    # and the next failing request on the same connection is answered too
    resp = await connection.call(DESCRIBE_QUORUM, 1, DescribeQuorumRequest())
    assert resp.error_code == UNKNOWN_SERVER_ERROR


async def test_a_controller_refusal_escaping_a_handler_gets_its_own_code(
        controller: RaftDriver, connection: _Connection) -> None:
    controller.handlers[BROKER_HEARTBEAT] = _raise(ControllerError(ErrorCode.NOT_CONTROLLER))
    resp = await connection.call(BROKER_HEARTBEAT, 2, BrokerHeartbeatRequest(broker_id=4, broker_epoch=7))
    # BrokerHeartbeatRequest.getErrorResponse: the code, the other fields at their defaults (fenced)
    assert (resp.error_code, resp.is_fenced, resp.is_caught_up) == (ErrorCode.NOT_CONTROLLER, True, False)
    assert await connection.api_versions_answered()


async def test_the_raft_core_failing_on_a_vote_gets_its_error_response(
        controller: RaftDriver, connection: _Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    node = controller.node
    assert node is not None
    handle = node.handle

    def failing(msg: Any, now: int) -> Any:
        if type(msg).__name__ == "VoteRequest":
            raise RuntimeError("core failure")
        return handle(msg, now)

    monkeypatch.setattr(node, "handle", failing)
    P = vo.VoteRequest.TopicData.PartitionData
    vote = vo.VoteRequest(cluster_id=CLUSTER_ID, voter_id=1, topics=[vo.VoteRequest.TopicData(
        topic_name="__cluster_metadata",
        partitions=[P(partition_index=0, replica_epoch=1, replica_id=99, last_offset_epoch=0, last_offset=0)])])
    resp = await connection.call(VOTE, 2, vote)
    # VoteRequest.getErrorResponse: the top-level code alone
    assert (resp.error_code, resp.topics) == (UNKNOWN_SERVER_ERROR, [])
    assert await connection.api_versions_answered()


async def test_the_authorization_of_a_raft_rpc_failing_gets_its_error_response(
        controller_node: _Node, connection: _Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Raft RPCs' CLUSTER_ACTION check (``raft_gate``) raising: as a handler's failure, the
    request's error response and the connection kept; the Raft core never sees the request."""
    node = controller_node.raft.node
    assert node is not None
    seen: list[str] = []
    handle = node.handle
    monkeypatch.setattr(node, "handle", lambda msg, now: seen.append(type(msg).__name__) or handle(msg, now))

    def broken_authorizer(principal: str, host: str, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("authorizer failure")

    authorizer = controller_node.authorizer
    authorizer.enabled = True
    monkeypatch.setattr(authorizer, "authorize", broken_authorizer)
    P = vo.VoteRequest.TopicData.PartitionData
    vote = vo.VoteRequest(cluster_id=CLUSTER_ID, voter_id=1, topics=[vo.VoteRequest.TopicData(
        topic_name="__cluster_metadata",
        partitions=[P(partition_index=0, replica_epoch=1, replica_id=99, last_offset_epoch=0, last_offset=0)])])
    resp = await connection.call(VOTE, 2, vote)
    assert (resp.error_code, resp.topics) == (UNKNOWN_SERVER_ERROR, [])
    assert "VoteRequest" not in seen
    assert await connection.api_versions_answered()
