"""Checks of the shape of the committed log for the simulation (``kbroker/raft/simulation.py``):
where proposals end (a proposal is one batch, delivered whole) and what a LeaderChangeMessage names.
"""

from __future__ import annotations

from kbroker.raft.log import ControlRecord, Entry, LeaderChange
from kbroker.raft.node import RaftNode
from kbroker_protocol.records import ControlType


class InvariantViolation(AssertionError):
    pass


class LogShapeChecks:
    """Mixed into ``Simulation``, whose bookkeeping it reads."""

    proposal_ends: set[int]  # the last value of each proposal of data entries
    leader_of_epoch: dict[int, int]

    def _fail(self, what: str) -> None:
        raise NotImplementedError

    def _ends_proposal(self, entry: Entry, following: Entry | None) -> bool:
        """Whether ``entry`` is the last of its proposal (by the simulation's own bookkeeping, not
        the entry's flag), ``following`` being the entry after it when known. A KRaftVersionRecord
        is always followed in its batch by the voter set; a LeaderChangeMessage is, when the
        bootstrap kraft.version and voter set follow it (Kafka's appendStartOfEpochControlRecords)."""
        if not entry.control:
            return entry.value in self.proposal_ends
        if _is_kraft_version(entry):
            return False
        return not (isinstance(entry.value, LeaderChange) and following is not None
                    and following.epoch == entry.epoch and _is_kraft_version(following))

    @staticmethod
    def _continues(prev: Entry, entry: Entry) -> bool:
        """Whether ``entry`` is the next one of the proposal ``prev`` is in (the same batch)."""
        if prev.control:
            return entry.control and entry.epoch == prev.epoch and isinstance(entry.value, ControlRecord)
        return not entry.control and entry.value == prev.value + 1

    @staticmethod
    def _entry_at(node: RaftNode, offset: int) -> Entry | None:
        log = node.log
        return log.entry(offset) if log.start_offset <= offset < log.end_offset else None

    def _check_leader_change(self, off: int, entry: Entry) -> None:
        """A committed LeaderChangeMessage names a leader elected by a majority of its voters (Kafka's
        GrantingVoters), and the voters of its epoch."""
        change = entry.value
        assert isinstance(change, LeaderChange)
        if int(change) not in change.granting or not set(change.granting) <= set(change.voters) or (
                2 * len(change.granting) <= len(change.voters)):
            self._fail(f"the LeaderChangeMessage at {off} names no majority of its voters: {change!r}")
        if self.leader_of_epoch.get(entry.epoch, int(change)) != int(change):
            self._fail(f"the LeaderChangeMessage at {off} names {int(change)}, the leader of epoch {entry.epoch} was "
                       f"{self.leader_of_epoch[entry.epoch]}")


def _is_kraft_version(entry: Entry) -> bool:
    return isinstance(entry.value, ControlRecord) and entry.value.type == ControlType.KRAFT_VERSION
