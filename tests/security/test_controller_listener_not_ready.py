"""While a node loads its metadata, its authorizer lets only super users through, as Kafka 4.4's
StandardAuthorizer (``StandardAuthorizerData.authorize``: a super user is allowed, anyone else gets
AuthorizerNotReadyException, answered as a denial, until ``completeInitialLoad``).

The controller listener opens before the node has caught up with the metadata log (a controller must
take part in the quorum to catch up at all). Found by review: the authorizer was configured only when
the client listeners were bound, after the catch-up, so until then every API of the controller
listener was served to any principal — a Vote at a future epoch from a user with no ACL included.

The node here has been started once (alice was given CLUSTER_ACTION then, in the metadata log) and
starts again with its catch-up held: alice is refused while the ACLs are not loaded, admin (the
super user) is served; once the node has started, alice is served."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from wire import plain_login

from kbroker.broker import Broker
from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.security import acls as A
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.security.controller_sasl_node import grant_on_cluster, sasl_node_config

DENIED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def _grant_cluster_action(address: str, principal: str) -> None:
    admin = plain_login(address, "admin")
    try:
        grant_on_cluster(admin, [(principal, A.CLUSTER_ACTION)])
    finally:
        admin.close()


def _pre_vote(address: str, user: str, cluster_id: str) -> Any:
    """A pre-vote of replica 9 at epoch 0: answered by the Raft client without a change of state."""
    V = REQUESTS[52]
    part = V.TopicData.PartitionData(partition_index=0, replica_epoch=0, replica_id=9, last_offset_epoch=0,
                                     last_offset=0, pre_vote=True, replica_directory_id=uuid.uuid4(),
                                     voter_directory_id=uuid.UUID(int=0))
    w = plain_login(address, user)
    try:
        return w.call(52, 2, cluster_id=cluster_id, voter_id=1,
                      topics=[V.TopicData(topic_name="__cluster_metadata", partitions=[part])])
    finally:
        w.close()


def test_only_super_users_pass_the_controller_listener_until_the_metadata_is_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    port, cport = free_ports(2)
    config = sasl_node_config(data, port, cport, ["alice"])
    format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
    client, controller = f"127.0.0.1:{port}", f"127.0.0.1:{cport}"

    async def first_start() -> str:
        embedded = EmbeddedBroker(config, str(data))
        await embedded.start()
        try:
            await asyncio.to_thread(_grant_cluster_action, client, "User:alice")
            assert embedded.broker.cluster_id is not None
            return embedded.broker.cluster_id
        finally:
            await embedded.stop()

    cluster_id = asyncio.run(first_start())

    async def second_start() -> None:
        catching_up = asyncio.Event()
        release = asyncio.Event()
        catch_up = Broker._catch_up

        async def held_catch_up(self: Broker) -> None:  # the controller listener is open, nothing loaded
            catching_up.set()
            await release.wait()
            await catch_up(self)

        monkeypatch.setattr(Broker, "_catch_up", held_catch_up)
        embedded = EmbeddedBroker(config, str(data))
        start = asyncio.create_task(embedded.start())
        waiting = asyncio.create_task(catching_up.wait())
        await asyncio.wait({start, waiting}, return_when=asyncio.FIRST_COMPLETED)
        assert catching_up.is_set(), f"the node did not get to its catch-up: {start}"
        try:
            refused = await asyncio.to_thread(_pre_vote, controller, "alice", cluster_id)
            assert refused.error_code == DENIED
            served = await asyncio.to_thread(_pre_vote, controller, "admin", cluster_id)
            assert served.error_code != DENIED
            release.set()
            await start
            loaded = await asyncio.to_thread(_pre_vote, controller, "alice", cluster_id)
            assert loaded.error_code != DENIED
        finally:
            release.set()
            if not start.done():
                start.cancel()
            await embedded.stop()

    asyncio.run(second_start())
