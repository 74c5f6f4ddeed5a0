"""The kraft.version 0 -> 1 upgrade of a statically configured quorum (KIP-853), as Kafka 4.4's
``LeaderState`` and ``UpdateVoterHandler`` do it.

At kraft.version 0 the voters are configuration (``controller.quorum.voters``): their directory
ids, endpoints and supported kraft.version ranges are in no log. So a leader at kraft.version 0
keeps them in memory for its epoch (Kafka's ``KRaftVersionUpgrade.Voters``): the configured voters
with kraft.version range 0-0 and their configured endpoint, itself as it runs. Each voter sends
its own description in an UpdateRaftVoter request to every new leader
(kbroker.raft.voter_update); the leader replaces the entry of that id, whatever its directory id
(``updateVoterIgnoringDirectoryId``).

``kafka-features.sh upgrade --feature kraft.version=1`` then asks the leader to upgrade: it checks
that the in-memory voters are the voters of the log, that each supports the new version ("Invalid
upgrade of kraft.version to 1 because not all of the voters support it" when one has not sent its
description, or cannot) and that every directory id is known, and appends one control batch: the
KRaftVersionRecord and the VotersRecord of those voters. From then on the voter set is data and
AddRaftVoter/RemoveRaftVoter/UpdateRaftVoter change it.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.raft.node import Role
from kbroker.raft.voters import (
    KRAFT_VERSION_MAX,
    KRAFT_VERSION_MIN,
    Voter,
    encode_kraft_version,
    encode_voters,
)
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.raft.node import RaftNode

log = logging.getLogger(__name__)

KRAFT_VERSION = "kraft.version"


class KRaftUpgradeError(Exception):
    """An upgrade Kafka refuses: ``code`` and Kafka's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class VoterDriver(Protocol):
    """What this module reads of the Raft driver (:class:`kbroker.raft.io.RaftDriver`, which
    imports this module)."""

    @property
    def node_id(self) -> int: ...

    @property
    def node(self) -> RaftNode | None: ...

    @property
    def listener_name(self) -> str: ...

    @property
    def addresses(self) -> Mapping[int, tuple[str, int]]: ...

    async def propose(self, values: Sequence[object], control: bool = False,
                      on_append: Callable[[int], None] | None = None) -> int: ...


@dataclass
class InMemoryVoters:
    """The voter set a kraft.version 0 leader keeps for its epoch."""

    epoch: int
    voters: dict[int, Voter] = field(default_factory=dict)


_by_driver: weakref.WeakKeyDictionary[VoterDriver, InMemoryVoters] = weakref.WeakKeyDictionary()


def local_voter(raft: Any, directory_id: uuid.UUID | None) -> Voter:
    """This node as a voter: its controller endpoint as advertised.listeners names it, else as it
    listens now (Kafka's effective advertised controller listeners, not controller.quorum.voters:
    a voter restarted on another port says so), directory id and kraft.version range."""
    host, port = raft.advertised_address()
    if getattr(raft, "advertised_endpoint", None) is not None:
        host, port = raft.advertised_endpoint
    elif raft.port:
        host, port = (raft.host if raft.host not in ("", "0.0.0.0", "::") else host), raft.port
    return Voter(raft.node_id, directory_id, ((raft.listener_name, host, port),), KRAFT_VERSION_MIN, KRAFT_VERSION_MAX)


def in_memory_voters(raft: VoterDriver, local: Voter) -> InMemoryVoters | None:
    """The leader's in-memory voters of its current epoch (None: not the leader, or the quorum is
    at kraft.version 1 already). A new epoch starts from the configured voters and ``local``."""
    node = raft.node
    if node is None or node.role is not Role.LEADER or node.kraft_version >= 1:
        return None
    state = _by_driver.get(raft)
    if state is None or state.epoch != node.epoch:
        voters = {}
        for v in sorted(node.voters):
            address = raft.addresses.get(v)
            endpoints = ((raft.listener_name, address[0], address[1]),) if address is not None else ()
            voters[v] = Voter(v, None, endpoints, 0, 0)  # a static voter: kraft.version 0 only, as Kafka
        voters[raft.node_id] = local
        state = _by_driver[raft] = InMemoryVoters(node.epoch, voters)
    return state


def update_voter(raft: Any, voter: Voter, local: Voter, now: int) -> int:
    """UpdateRaftVoter on a kraft.version 0 leader (after the handler's own checks): the error code."""
    node = raft.node
    if node._voter_change_pending(now) or node.high_watermark <= node._epoch_start_offset:
        return ErrorCode.REQUEST_TIMED_OUT
    state = in_memory_voters(raft, local)
    if state is None:
        return ErrorCode.REQUEST_TIMED_OUT
    if not voter.kraft_min <= node.kraft_version <= voter.kraft_max:
        return ErrorCode.INVALID_REQUEST
    if voter.node_id not in state.voters:
        return ErrorCode.VOTER_NOT_FOUND
    before = state.voters[voter.node_id]
    state.voters[voter.node_id] = voter
    if before != voter:
        log.info("Updated in-memory voter %d: directory id %s, endpoints %s, kraft.version %d-%d", voter.node_id,
                 voter.directory_id, list(voter.endpoints), voter.kraft_min, voter.kraft_max)
    return ErrorCode.NONE


async def upgrade(raft: VoterDriver, new_version: int, local: Voter, validate_only: bool) -> bool:
    """Upgrade kraft.version on the leader (Kafka's ``LeaderState.maybeAppendUpgradedKRaftVersion``);
    returns False when there is nothing to do. Raises KRaftUpgradeError."""
    node = raft.node
    if node is None or node.role is not Role.LEADER:
        raise KRaftUpgradeError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.")
    persisted = node.kraft_version
    if persisted == new_version:
        return False
    if persisted > new_version:
        raise KRaftUpgradeError(ErrorCode.INVALID_UPDATE_VERSION, (
            f"Invalid upgrade of {KRAFT_VERSION} from version {_name(persisted)} to {_name(new_version)} because the "
            "new version is a downgrade"))
    state = in_memory_voters(raft, local)
    if state is None:
        raise KRaftUpgradeError(ErrorCode.INVALID_UPDATE_VERSION, (
            f"Invalid upgrade of {KRAFT_VERSION} from version {_name(persisted)} to {_name(new_version)}"))
    if set(state.voters) != set(node.voters):
        raise KRaftUpgradeError(ErrorCode.UNKNOWN_SERVER_ERROR, (
            f"Unable to update {KRAFT_VERSION} to {_name(new_version)} due to missing voters "
            f"{sorted(state.voters)} compared to {sorted(node.voters)}"))
    if not all(v.kraft_min <= new_version <= v.kraft_max for v in state.voters.values()):
        log.info("Not all voters support kraft version %s: %s", _name(new_version), list(state.voters.values()))
        raise KRaftUpgradeError(ErrorCode.INVALID_UPDATE_VERSION, (
            f"Invalid upgrade of {KRAFT_VERSION} to {_name(new_version)} because not all of the voters support it"))
    if any(v.directory_id is None for v in state.voters.values()):
        raise KRaftUpgradeError(ErrorCode.UNKNOWN_SERVER_ERROR, (
            f"Directory id must be known for all of the voters: {list(state.voters.values())}"))
    if validate_only:
        return True
    voters = dict(state.voters)
    await raft.propose([encode_kraft_version(new_version), encode_voters(voters)], control=True)
    log.info("Upgraded %s to %d with the voter set %s", KRAFT_VERSION, new_version, sorted(voters))
    return True


def _name(level: int) -> str:
    return f"KRAFT_VERSION_{level}"
