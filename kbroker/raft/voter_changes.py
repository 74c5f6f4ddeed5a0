"""Voter changes on the leader of a dynamic quorum (KIP-853: Kafka's ``AddVoterHandler``,
``RemoveVoterHandler`` and ``UpdateVoterHandler``): one change at a time, each a new VotersRecord.
"""

from __future__ import annotations

import logging
import uuid

from kbroker.raft.leader import LeaderRole
from kbroker.raft.log import ControlRecord
from kbroker.raft.node_base import (
    DUPLICATE_VOTER,
    INVALID_REQUEST,
    NONE,
    NOT_LEADER_OR_FOLLOWER,
    ONE_HOUR_MS,
    REQUEST_TIMED_OUT,
    UNSUPPORTED_VERSION,
    VOTER_NOT_FOUND,
    Role,
    VoterChange,
)
from kbroker.raft.voters import (
    Voter,
    VoterSet,
    encode_kraft_version,
    encode_voters,
)

logger = logging.getLogger("kbroker.raft.node")  # one logger for the whole node, as before the split


class VoterChanges(LeaderRole):
    """AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter on the leader."""

    def voters_control_at(self, end_offset: int) -> list[ControlRecord]:
        """The KRaftVersionRecord and VotersRecord control records a snapshot ending at
        ``end_offset`` holds (none in a static quorum), as Kafka writes them in a snapshot's header
        batch."""
        if self.controls.kraft_version_at(end_offset) < 1 and self.controls.voters_offset < 0 \
                and self._bootstrap_base:
            return []
        return [encode_kraft_version(self.controls.kraft_version_at(end_offset)),
                encode_voters(self.controls.voters_at(end_offset))]

    def _voter_change_pending(self, now: int) -> bool:
        change = self._voter_change
        if change is None:
            return False
        offset, deadline = change
        if self.high_watermark > offset or now >= deadline:
            self._voter_change = None
            return False
        return True

    def _voter_change_precheck(self, now: int, what: str) -> VoterChange | None:
        """The checks Kafka's Add/Remove/UpdateVoterHandler make first, in their order."""
        if self._voter_change_pending(now):
            return VoterChange(REQUEST_TIMED_OUT,
                               "Request timed out waiting for leader to handle previous voter change request")
        if self.high_watermark <= self._epoch_start_offset:
            return VoterChange(REQUEST_TIMED_OUT,
                               "Request timed out waiting for leader to establish HWM and fence previous voter changes")
        if self.kraft_version < 1:
            return VoterChange(UNSUPPORTED_VERSION,
                               f"Cluster doesn't support {what} voter because the kraft.version feature is "
                               f"{self.kraft_version}")
        offset = self.controls.voters_offset
        if offset >= self.high_watermark:
            return VoterChange(REQUEST_TIMED_OUT,
                               f"Request timed out waiting for voters to commit the latest voter change at "
                               f"Optional[{offset}] with HWM {self.high_watermark}")
        return None

    def _leader_or_error(self) -> VoterChange | None:
        if self.role is not Role.LEADER:
            return VoterChange(NOT_LEADER_OR_FOLLOWER)
        return None

    def replica_caught_up(self, node_id: int, directory_id: uuid.UUID | None, now: int) -> bool:
        """Kafka's ``LeaderState.isReplicaCaughtUp``: an observer (with this directory id) that has
        been caught up with the leader once and fetched within the last hour."""
        obs = self._observers.get(node_id)
        return (obs is not None and obs.directory_id == directory_id and obs.last_caught_up >= 0
                and obs.last_fetch >= 0 and obs.last_fetch > now - ONE_HOUR_MS)

    def check_add_voter(self, voter: Voter, now: int) -> VoterChange | None:
        """The leader's checks of an AddRaftVoter before it contacts the new voter (Kafka's
        ``AddVoterHandler.handleAddVoterRequest``); None when it may go on."""
        err = self._leader_or_error() or self._voter_change_precheck(now, "adding")
        if err is not None:
            return err
        if voter.node_id in self.voters:
            keys = ", ".join(f"ReplicaKey(id={v.node_id}, directoryId={_dir(v.directory_id)})"
                             for v in sorted(self.voter_set.values(), key=lambda v: v.node_id))
            return VoterChange(DUPLICATE_VOTER,
                               f"The voter id for ReplicaKey(id={voter.node_id}, directoryId="
                               f"{_dir(voter.directory_id)}) is already part of the set of voters [{keys}].")
        return None

    def add_voter(self, voter: Voter, now: int) -> VoterChange:
        """Append the voter set with ``voter`` added (Kafka's ``handleApiVersionsResponse`` once the
        new voter answered): it must be caught up (an observer fetching with its directory id).
        One voter change at a time; ``offset`` is that of the new VotersRecord."""
        err = self.check_add_voter(voter, now)
        if err is not None:
            return err
        if voter.kraft_min > self.kraft_version or voter.kraft_max < self.kraft_version:
            return VoterChange(INVALID_REQUEST,
                               f"Aborted add voter operation for ReplicaKey(id={voter.node_id}, directoryId="
                               f"{_dir(voter.directory_id)}) since the kraft.version range (min: {voter.kraft_min}, "
                               f"max: {voter.kraft_max} doesn't support the finalized version {self.kraft_version}")
        if not self.replica_caught_up(voter.node_id, voter.directory_id, now):
            return VoterChange(REQUEST_TIMED_OUT,
                               f"Aborted add voter operation for ReplicaKey(id={voter.node_id}, directoryId="
                               f"{_dir(voter.directory_id)}) since it is lagging behind")
        new = dict(self.voter_set)
        new[voter.node_id] = voter
        return self._append_voters(new, now)

    def remove_voter(self, node_id: int, directory_id: uuid.UUID | None, now: int) -> VoterChange:
        """Append the voter set without ``node_id`` (Kafka's ``RemoveVoterHandler``): its directory id
        must match, and the last voter cannot be removed (VOTER_NOT_FOUND)."""
        err = self._leader_or_error() or self._voter_change_precheck(now, "removing")
        if err is not None:
            return err
        current = self.voter_set
        old = current.get(node_id)
        if old is None or old.directory_id != directory_id or len(current) <= 1:
            keys = ", ".join(f"ReplicaKey(id={v.node_id}, directoryId={_dir(v.directory_id)})"
                             for v in sorted(current.values(), key=lambda v: v.node_id))
            return VoterChange(VOTER_NOT_FOUND,
                               f"Cannot remove voter ReplicaKey(id={node_id}, directoryId={_dir(directory_id)}) "
                               f"from the set of voters [{keys}]")
        new = {k: v for k, v in current.items() if k != node_id}
        return self._append_voters(new, now)

    def update_voter(self, voter: Voter, now: int) -> VoterChange:
        """Replace a voter's endpoints and kraft.version range (Kafka's ``UpdateVoterHandler``, at
        kraft.version 1: the new VotersRecord is appended; the answer does not wait for its
        commit)."""
        err = self._leader_or_error()
        if err is not None:
            return err
        if self._voter_change_pending(now) or self.high_watermark <= self._epoch_start_offset:
            return VoterChange(REQUEST_TIMED_OUT)
        if self.kraft_version < 1 or self.controls.voters_offset >= self.high_watermark:
            return VoterChange(REQUEST_TIMED_OUT)
        if voter.kraft_min > self.kraft_version or voter.kraft_max < self.kraft_version:
            return VoterChange(INVALID_REQUEST)
        old = self.voter_set.get(voter.node_id)
        if old is None or not old.matches(voter.directory_id):
            return VoterChange(VOTER_NOT_FOUND)
        new = dict(self.voter_set)
        new[voter.node_id] = voter
        change = self._append_voters(new, now)
        self._voter_change = None  # not an operation in flight (Kafka answers at once)
        return change

    def _append_voters(self, voters: VoterSet, now: int) -> VoterChange:
        offset = self.propose([encode_voters(voters)], now, control=True)
        self._voter_change = (offset, now + self.config.request_timeout_ms)
        return VoterChange(NONE, None, offset)


def _dir(directory_id: uuid.UUID | None) -> str:
    """A directory id as Kafka's ``Uuid.toString`` prints it (base64, url-safe, no padding)."""
    import base64

    raw = (directory_id or uuid.UUID(int=0)).bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
