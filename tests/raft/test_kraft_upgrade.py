"""The kraft.version 0 leader's in-memory voters and the upgrade checks (kbroker/raft/kraft_upgrade.py),
against Kafka 4.4's UpdateVoterHandler and LeaderState.maybeAppendUpgradedKRaftVersion, on a stand-in
for the raft driver; and the voter's decision to send UpdateRaftVoter (voter_update.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.raft import kraft_upgrade as ku
from kbroker.raft.node import Role
from kbroker.raft.voter_update import VoterUpdater
from kbroker.raft.voters import Voter
from kbroker_protocol.errors import ErrorCode as E


@dataclass
class FakeNode:
    role: Role = Role.LEADER
    epoch: int = 3
    kraft_version: int = 0
    voters: frozenset[int] = frozenset({1, 2, 3})
    voter_set: dict[int, Voter] = field(default_factory=dict)
    high_watermark: int = 10
    _epoch_start_offset: int = 5
    pending: bool = False
    leader_id: int = 1

    def _voter_change_pending(self, now: int) -> bool:
        return self.pending


@dataclass
class FakeConfig:
    fetch_timeout_ms: int = 2000
    request_timeout_ms: int = 2000


class FakeRaft:
    def __init__(self) -> None:
        self.node = FakeNode()
        self.node_id = 1
        self.listener_name = "CONTROLLER"
        self.host, self.port = "127.0.0.1", 9001
        self.addresses = {1: ("127.0.0.1", 9001), 2: ("127.0.0.1", 9002), 3: ("127.0.0.1", 9003)}
        self.proposed: list[Any] = []
        self.config = FakeConfig()
        self.open_connection = None
        self.connection_setup_timeout_ms = 10_000
        self.connection_setup_timeout_max_ms = 30_000

    def advertised_address(self) -> tuple[str, int]:
        return self.addresses[self.node_id]

    async def propose(self, values, control=False) -> int:
        self.proposed.append((list(values), control))
        return 11


DIRS = {n: uuid.uuid4() for n in (1, 2, 3)}


def voter(n: int, lo: int = 0, hi: int = 1, port: int | None = None) -> Voter:
    return Voter(n, DIRS[n], (("CONTROLLER", "127.0.0.1", port or 9000 + n),), lo, hi)


async def test_upgrade_waits_for_every_voter_then_writes_the_voter_set():
    raft = FakeRaft()
    local = ku.local_voter(raft, DIRS[1])
    assert local == voter(1)
    with pytest.raises(ku.KRaftUpgradeError) as info:
        await ku.upgrade(raft, 1, local, validate_only=False)
    assert info.value.code == E.INVALID_UPDATE_VERSION
    assert info.value.message == "Invalid upgrade of kraft.version to KRAFT_VERSION_1 because not all of the voters " \
                                 "support it"
    assert ku.update_voter(raft, voter(2), local, 0) == E.NONE
    with pytest.raises(ku.KRaftUpgradeError, match="not all of the voters support it"):
        await ku.upgrade(raft, 1, local, validate_only=False)
    assert ku.update_voter(raft, voter(3), local, 0) == E.NONE
    assert await ku.upgrade(raft, 1, local, validate_only=True) is True
    assert raft.proposed == []
    assert await ku.upgrade(raft, 1, local, validate_only=False) is True
    [(entries, control)] = raft.proposed
    assert control and len(entries) == 2


async def test_a_voter_that_cannot_run_kraft_version_1_blocks_the_upgrade():
    raft = FakeRaft()
    local = ku.local_voter(raft, DIRS[1])
    for n in (2, 3):
        assert ku.update_voter(raft, voter(n, 0, 0 if n == 3 else 1), local, 0) == E.NONE
    with pytest.raises(ku.KRaftUpgradeError, match="not all of the voters support it"):
        await ku.upgrade(raft, 1, local, validate_only=True)


async def test_a_new_leader_epoch_forgets_what_the_previous_one_heard():
    raft = FakeRaft()
    local = ku.local_voter(raft, DIRS[1])
    for n in (2, 3):
        ku.update_voter(raft, voter(n), local, 0)
    raft.node.epoch += 1
    with pytest.raises(ku.KRaftUpgradeError, match="not all of the voters support it"):
        await ku.upgrade(raft, 1, local, validate_only=True)


def test_update_voter_answers_as_kafkas_update_voter_handler():
    raft = FakeRaft()
    local = ku.local_voter(raft, DIRS[1])
    assert ku.update_voter(raft, voter(2, 1, 1), local, 0) == E.INVALID_REQUEST  # no kraft.version 0 support
    assert ku.update_voter(raft, Voter(7, uuid.uuid4(), (("CONTROLLER", "h", 1),)), local, 0) == E.VOTER_NOT_FOUND
    raft.node.pending = True
    assert ku.update_voter(raft, voter(2), local, 0) == E.REQUEST_TIMED_OUT
    raft.node.pending = False
    raft.node.high_watermark = raft.node._epoch_start_offset  # the epoch not committed yet
    assert ku.update_voter(raft, voter(2), local, 0) == E.REQUEST_TIMED_OUT
    raft.node.role = Role.FOLLOWER
    raft.node.high_watermark = 10
    assert ku.update_voter(raft, voter(2), local, 0) == E.REQUEST_TIMED_OUT


async def test_upgrade_refusals():
    raft = FakeRaft()
    local = ku.local_voter(raft, DIRS[1])
    raft.node.kraft_version = 1
    assert await ku.upgrade(raft, 1, local, validate_only=False) is False
    with pytest.raises(ku.KRaftUpgradeError, match="because the new version is a downgrade"):
        await ku.upgrade(raft, 0, local, validate_only=False)
    raft.node.role = Role.FOLLOWER
    with pytest.raises(ku.KRaftUpgradeError) as info:
        await ku.upgrade(raft, 1, local, validate_only=False)
    assert info.value.code == E.NOT_CONTROLLER


def test_a_voter_sends_its_description_when_the_log_differs_at_kraft_version_1():
    raft = FakeRaft()
    raft.node_id = 2
    raft.port = 9002
    raft.node.role = Role.FOLLOWER
    updater = VoterUpdater(raft, "cluster", DIRS[2])
    # kraft.version 0: once per (leader, epoch)
    updater._follower_of = (1, 3)
    assert updater.should_send()
    updater._updated = (1, 3)
    assert not updater.should_send()
    # kraft.version 1: only when the voter set describes this voter otherwise
    raft.node.kraft_version = 1
    raft.node.voter_set = {1: voter(1), 2: voter(2), 3: voter(3)}
    assert not updater.should_send()
    raft.node.voter_set[2] = voter(2, port=9999)
    assert updater.should_send()
    raft.node.voter_set[2] = voter(2, 0, 0)
    assert updater.should_send()
    raft.node.voter_set[2] = Voter(2, uuid.uuid4(), voter(2, port=9999).endpoints)  # another replica's entry
    assert not updater.should_send()


def test_a_leader_updates_its_own_entry_at_kraft_version_1():
    raft = FakeRaft()
    raft.node.kraft_version = 1
    raft.node.voter_set = {1: voter(1, port=7777), 2: voter(2), 3: voter(3)}
    asked: list[Voter] = []
    raft.update_voter = lambda v: (asked.append(v), SimpleNamespace(error=0))[1]
    updater = VoterUpdater(raft, "cluster", DIRS[1])
    updater.leader_step()
    assert asked == [voter(1)]  # the port it listens on, 9001
    updater.leader_step()  # not again within the update period
    assert len(asked) == 1
    raft.node.voter_set[1] = voter(1)
    updater._leader_tried = float("-inf")
    updater.leader_step()
    assert len(asked) == 1  # up to date: nothing to write


def test_a_voter_describes_itself_with_its_advertised_controller_listener(tmp_path):
    # Kafka's effective advertised controller listeners: advertised.listeners' controller entry when
    # it names one (a controller-only node behind another address), else the listener it binds.
    from kbroker.config import BrokerConfig
    from kbroker.wiring.metadata_quorum import advertised_controller_endpoint

    base = {"process.roles": "controller", "node.id": "1", "controller.quorum.bootstrap.servers": "127.0.0.1:9001",
            "listeners": "CONTROLLER://0.0.0.0:9001", "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT", "log.dirs": str(tmp_path)}
    advertised = BrokerConfig({**base, "advertised.listeners": "CONTROLLER://ctrl1.example:19001"})
    assert advertised_controller_endpoint(advertised) == ("ctrl1.example", 19001)
    assert advertised_controller_endpoint(BrokerConfig(base)) is None
    raft = FakeRaft()
    assert ku.local_voter(raft, DIRS[1]).endpoints == (("CONTROLLER", "127.0.0.1", 9001),)
    raft.advertised_endpoint = ("ctrl1.example", 19001)
    assert ku.local_voter(raft, DIRS[1]).endpoints == (("CONTROLLER", "ctrl1.example", 19001),)
