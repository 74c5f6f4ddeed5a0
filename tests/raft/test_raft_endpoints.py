"""The leader's endpoint in the KRaft RPCs, as Kafka 4.4's RaftUtil writes and KafkaRaftClient reads
it (KIP-853): BeginQuorumEpoch requests carry LeaderEndpoints, and the responses of Vote,
BeginQuorumEpoch, EndQuorumEpoch, FetchSnapshot (v1+) and Fetch (v16+) carry NodeEndpoints naming
the leader they report."""

from __future__ import annotations

import asyncio
import random
import struct

from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.io import RaftDriver
from kbroker.raft.messages import BeginQuorumEpochRequest, VoteResponse
from kbroker.raft.node import RaftConfig
from kbroker.raft.state_store import FileQuorumStateStore
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages import begin_quorum_epoch as bqe
from kbroker_protocol.messages import vote as vo
from tests.integration.waiting import async_wait_until

CLUSTER_ID = "raft-endpoints-cluster"
# long timeouts: node 1 keeps following the leader it is told about for the whole test
CONFIG = RaftConfig(election_timeout_ms=20_000, fetch_timeout_ms=40_000, request_timeout_ms=20_000)
WAIT = 15.0


async def _call(port: int, body: object, api_key: int, version: int) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=3, client_id="t")
        payload = encode_request(header, body)
        writer.write(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), WAIT))[0]
        _header, resp = decode_response(await reader.readexactly(size), api_key, version)
        return resp
    finally:
        writer.close()


def _begin_epoch(leader_id: int, epoch: int, endpoints: list[tuple[str, str, int]]) -> bqe.BeginQuorumEpochRequest:
    B = bqe.BeginQuorumEpochRequest
    part = B.TopicData.PartitionData(partition_index=0, leader_id=leader_id, leader_epoch=epoch)
    return B(cluster_id=CLUSTER_ID, voter_id=1, topics=[B.TopicData(topic_name="__cluster_metadata", partitions=[part])],
             leader_endpoints=[B.LeaderEndpoint(name=n, host=h, port=p) for n, h, p in endpoints])


def _vote(candidate: int, epoch: int) -> vo.VoteRequest:
    P = vo.VoteRequest.TopicData.PartitionData
    part = P(partition_index=0, replica_epoch=epoch, replica_id=candidate, last_offset_epoch=0, last_offset=0)
    return vo.VoteRequest(cluster_id=CLUSTER_ID, voter_id=1,
                          topics=[vo.VoteRequest.TopicData(topic_name="__cluster_metadata", partitions=[part])])


async def test_a_follower_learns_its_leader_from_begin_quorum_epoch_and_names_it(tmp_path):
    """Node 1 knows no address for voter 2. A BeginQuorumEpoch from leader 2 names its CONTROLLER
    endpoint (a server recording what it gets): node 1 fetches from there, and its answers to
    BeginQuorumEpoch and Vote name leader 2 at that address (v1+ only)."""
    received: list[int] = []

    async def leader_2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                received.append(struct.unpack_from(">h", await reader.readexactly(size))[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(leader_2, "127.0.0.1", 0)
    leader_address = ("127.0.0.1", server.sockets[0].getsockname()[1])
    addresses: dict[int, tuple[str, int]] = {}
    log = FileRaftLog(tmp_path / "node1")
    driver = RaftDriver(1, (1, 2, 3), addresses, log, FileQuorumStateStore(tmp_path / "node1"), config=CONFIG,
                        cluster_id=CLUSTER_ID, rng=random.Random(1))
    addresses[1] = ("127.0.0.1", await driver.listen())
    driver.start()
    try:
        begin = await _call(driver.port, _begin_epoch(2, 5, [("OTHER", "elsewhere", 1), ("CONTROLLER", *leader_address)]),
                            53, 1)
        assert isinstance(begin, bqe.BeginQuorumEpochResponse)
        p = begin.topics[0].partitions[0]
        assert (begin.error_code, p.error_code, p.leader_id, p.leader_epoch) == (0, 0, 2, 5)
        assert [(e.node_id, e.host, e.port) for e in begin.node_endpoints] == [(2, *leader_address)]
        assert driver.addresses[2] == leader_address
        await async_wait_until(lambda: 1 in received, WAIT, 0.01, message="node 1 fetching from leader 2's endpoint")
        # a Vote of an epoch that is not newer is refused and names the leader and, from v1, its endpoint
        for version in (0, 1, 2):
            vote = await _call(driver.port, _vote(3, 5), 52, version)
            assert isinstance(vote, vo.VoteResponse)
            p = vote.topics[0].partitions[0]
            assert (p.error_code, p.leader_id, p.leader_epoch, p.vote_granted) == (0, 2, 5, False)
            expected = [(2, *leader_address)] if version >= 1 else []
            assert [(e.node_id, e.host, e.port) for e in vote.node_endpoints] == expected
        # an answer naming no leader names no endpoint
        none = driver.response_body(VoteResponse(1, 3, 0, 0, -1, 5, False), 52, 2)
        assert isinstance(none, vo.VoteResponse) and list(none.node_endpoints) == []
    finally:
        await driver.stop(graceful=False)
        log.close()
        server.close()
        await server.wait_closed()


async def test_a_leaders_begin_quorum_epoch_names_its_controller_endpoint(tmp_path):
    addresses: dict[int, tuple[str, int]] = {}
    log = FileRaftLog(tmp_path / "node1")
    driver = RaftDriver(1, (1, 2, 3), addresses, log, FileQuorumStateStore(tmp_path / "node1"), config=CONFIG,
                        cluster_id=CLUSTER_ID, listener_name="CTRL")
    await driver.listen()
    try:
        body = driver.request_body(BeginQuorumEpochRequest(1, 2, 7, 1, 4))
        assert isinstance(body, bqe.BeginQuorumEpochRequest)
        assert [(e.name, e.host, e.port) for e in body.leader_endpoints] == [("CTRL", "127.0.0.1", driver.port)]
        driver.advertised_endpoint = ("controller-1.example", 9093)
        body = driver.request_body(BeginQuorumEpochRequest(1, 2, 8, 1, 4))
        assert [(e.name, e.host, e.port) for e in body.leader_endpoints] == [("CTRL", "controller-1.example", 9093)]
    finally:
        await driver.stop(graceful=False)
        log.close()
