"""A voter tells the leader about itself (KIP-853), as Kafka 4.4's ``KafkaRaftClient.
pollFollowerAsVoter`` does with UpdateRaftVoter.

While this node is a follower voter, once per fetch timeout (``controller.quorum.fetch.timeout.ms``,
Kafka's update-voter period) it sends the leader an UpdateRaftVoter request naming its controller
endpoint, directory id and supported kraft.version range (Kafka's ``shouldSendUpdateVoteRequest``):

- at kraft.version 0, once to every new leader (the leader keeps the voters in memory only, and
  needs them to upgrade kraft.version: kbroker.raft.kraft_upgrade); NONE or UNSUPPORTED_VERSION
  answers it (``setHasUpdatedLeader``);
- at kraft.version 1, whenever the voter set in the log describes this voter otherwise than it
  runs (a new endpoint after a restart on another port, a new kraft.version range); the leader
  writes a new VotersRecord. A leader whose own entry is out of date writes it itself.

The request goes over the controller listener with the raft driver's own connection factory (its
TLS and SASL, kbroker.security.internode).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection, Coroutine
from typing import Protocol

from kbroker.metadata.channel import ControllerChannel
from kbroker.metadata.client import ControllerUnavailable
from kbroker.raft.io import RaftDriver
from kbroker.raft.kraft_upgrade import local_voter
from kbroker.raft.node import RaftNode, Role
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.update_raft_voter import UpdateRaftVoterRequest

log = logging.getLogger(__name__)

UPDATE_RAFT_VOTER = 82


class VoterUpdater:
    def __init__(self, raft: RaftDriver, cluster_id: str | None, directory_id: uuid.UUID | None) -> None:
        self.raft = raft
        self.cluster_id = cluster_id
        self.directory_id = directory_id
        self.period_s = raft.config.fetch_timeout_ms / 1000
        self._follower_of: tuple[int, int] | None = None  # (leader, epoch) followed since _since
        self._since = 0.0
        self._updated: tuple[int, int] | None = None  # the (leader, epoch) that took this voter's update
        self._leader_tried = float("-inf")  # when this node, as leader, last updated its own entry
        self._channel = ControllerChannel(self._leader, lambda: self.raft.addresses,
                                          client_id=f"raft-client-{raft.node_id}-update-voter",
                                          request_timeout_ms=raft.config.request_timeout_ms,
                                          socket_timeout_ms=raft.config.request_timeout_ms,
                                          setup_timeout_ms=raft.connection_setup_timeout_ms,
                                          setup_timeout_max_ms=raft.connection_setup_timeout_max_ms,
                                          open_connection=raft.open_connection)

    def _leader(self) -> int | None:
        return self._follower_of[0] if self._follower_of is not None else None

    def _node(self) -> RaftNode:
        node = self.raft.node
        assert node is not None  # (called once the driver has started)
        return node

    def should_send(self) -> bool:
        """Kafka's shouldSendUpdateVoteRequest, for the current follower state."""
        if self._node().kraft_version >= 1:
            return self.needs_update()
        return self._updated != self._follower_of

    def needs_update(self) -> bool:
        """At kraft.version 1: the voter set describes this voter otherwise than it runs (Kafka's
        ``VoterSet.voterNodeNeedsUpdate``)."""
        entry = self._node().voter_set.get(self.raft.node_id)
        local = local_voter(self.raft, self.directory_id)
        return entry is not None and entry.matches(self.directory_id) and (
            set(entry.endpoints) != set(local.endpoints) or (entry.kraft_min, entry.kraft_max) !=
            (local.kraft_min, local.kraft_max))

    def leader_step(self) -> None:
        """A leader at kraft.version 1 whose own entry is out of date writes the new voter set. The
        core does it with its epoch's first records (``RaftNode.local_voter``, as Kafka's
        ``appendStartOfEpochControlRecords``); this covers an entry that changes during the epoch
        (an endpoint learnt after the start), through the core's UpdateVoter checks."""
        now = time.monotonic()
        if now - self._leader_tried < self.period_s or not self.needs_update():
            return
        self._leader_tried = now
        local = local_voter(self.raft, self.directory_id)
        change = self.raft.update_voter(local)
        log.info("leader %d: its voter set entry updated to endpoints %s, kraft.version %d-%d: %s", self.raft.node_id,
                 list(local.endpoints), local.kraft_min, local.kraft_max,
                 ErrorCode(change.error).name if change.error in ErrorCode._value2member_map_ else change.error)

    async def step(self) -> None:
        """One poll: send the update when due."""
        node = self.raft.node
        if node is not None and node.role is Role.LEADER and node.kraft_version >= 1:
            self._follower_of = None
            self.leader_step()
            return
        if node is None or node.role is not Role.FOLLOWER or self.raft.node_id not in node.voters:
            self._follower_of = None
            return
        state = (node.leader_id, node.epoch)
        if state != self._follower_of:
            self._follower_of, self._since = state, time.monotonic()
            return
        if time.monotonic() - self._since < self.period_s or not self.should_send():
            return
        self._since = time.monotonic()  # Kafka resets the update-voter period once the request is sent
        local = local_voter(self.raft, self.directory_id)
        R = UpdateRaftVoterRequest
        request = R(cluster_id=self.cluster_id, current_leader_epoch=node.epoch, voter_id=self.raft.node_id,
                    voter_directory_id=self.directory_id or uuid.UUID(int=0),
                    listeners=[R.Listener(name=n, host=h, port=p) for n, h, p in local.endpoints],
                    kraft_version_feature=R.KRaftVersionFeature(min_supported_version=local.kraft_min,
                                                                max_supported_version=local.kraft_max))
        try:
            response = await self._channel.send(UPDATE_RAFT_VOTER, request,
                                                timeout_ms=self.raft.config.request_timeout_ms)
        except (ControllerUnavailable, OSError) as exc:
            log.info("UpdateRaftVoter to leader %d (epoch %d) failed: %s", state[0], state[1], exc)
            return
        code = response.error_code
        if code in (ErrorCode.NONE, ErrorCode.UNSUPPORTED_VERSION):
            if self._follower_of == state:
                self._updated = state
            log.info("voter %d sent its endpoints %s and kraft.version %d-%d to leader %d (epoch %d): %s",
                     self.raft.node_id, list(local.endpoints), local.kraft_min, local.kraft_max, state[0], state[1],
                     ErrorCode(code).name)
        else:
            log.info("UpdateRaftVoter to leader %d (epoch %d) answered %s", state[0], state[1],
                     ErrorCode(code).name if code in ErrorCode._value2member_map_ else code)

    async def run(self) -> None:
        try:
            while self.raft.running:
                try:
                    await self.step()
                except Exception:  # noqa: BLE001 - a version mismatch, a bug: logged, the next poll tries
                    # again (an updater ended here would never send this voter's endpoints)
                    log.exception("raft node %d: the voter update failed; going on", self.raft.node_id)
                await asyncio.sleep(min(0.1, self.period_s / 4))
        finally:
            await self._channel.close()


class NodeRoles(Protocol):
    """The node's ``process.roles`` (``BrokerConfig``)."""

    @property
    def process_roles(self) -> Collection[str]: ...


class VoterNode(Protocol):
    """What the updater needs of its node (``kbroker.broker.Broker``): its Raft driver, roles and
    cluster id, and a task that ends when the node stops."""

    @property
    def raft(self) -> RaftDriver | None: ...

    @property
    def config(self) -> NodeRoles: ...

    @property
    def cluster_id(self) -> str: ...

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]: ...


def start(broker: VoterNode, metadata_directory_id: uuid.UUID | None) -> asyncio.Task[object] | None:
    """Run the updater of a controller with a controller listener (a task of the broker's);
    ``metadata_directory_id`` is the metadata log directory's id (meta.properties), used when the
    raft node has none of its own."""
    raft = broker.raft
    if raft is None or "controller" not in broker.config.process_roles or not raft.port:
        return None
    updater = VoterUpdater(raft, broker.cluster_id, raft.directory_id or metadata_directory_id)
    return broker.run_in_background(updater.run(), "raft-voter-update")
