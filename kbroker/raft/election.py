"""Vote, BeginQuorumEpoch and EndQuorumEpoch handling of a ``RaftNode`` (Kafka's
``handleVoteRequest``/``handleBeginQuorumEpochRequest``/``handleEndQuorumEpochRequest`` and their
responses): how a replica grants votes and learns of a new epoch or a leaving leader.
"""

from __future__ import annotations

import logging
import uuid

from kbroker.raft.messages import (
    NO_LEADER,
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.node_base import (
    FENCED_LEADER_EPOCH,
    INVALID_REQUEST,
    INVALID_VOTER_KEY,
    NONE,
    NodeBase,
    Role,
)

logger = logging.getLogger("kbroker.raft.node")  # one logger for the whole node, as before the split


class ElectionHandlers(NodeBase):
    """The election RPCs, both sides."""

    def _on_vote_request(self, req: VoteRequest, now: int) -> VoteResponse:
        def answer(error: int, granted: bool = False) -> VoteResponse:
            return VoteResponse(
                self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch, granted
            )

        illegal = req.last_offset_epoch > req.replica_epoch if req.pre_vote else (
            req.last_offset_epoch >= req.replica_epoch
        )
        if req.last_offset < 0 or req.last_offset_epoch < 0 or illegal:
            return answer(INVALID_REQUEST)
        error = self._voter_only_error(req.src, req.replica_epoch)
        if error != NONE:
            return answer(error)
        if req.replica_epoch > self.epoch:
            self._become_unattached(req.replica_epoch, now)
        if not self._is_my_voter_key(req.dst, req.voter_directory_id):
            # the request was meant for another replica (Kafka's voter key check)
            return answer(INVALID_VOTER_KEY)
        up_to_date = (req.last_offset_epoch, req.last_offset) >= (self.log.last_epoch, self.log.end_offset)
        granted = self._can_grant(req.src, req.replica_directory_id, up_to_date, req.pre_vote)
        if granted and not req.pre_vote and self.voted_id == NO_LEADER:
            # the vote (the candidate's id and directory id) is durable before the answer goes out
            self._become_unattached(self.epoch, now, voted=req.src, voted_directory=req.replica_directory_id)
        return answer(NONE, granted)

    def _is_my_voter_key(self, voter_id: int, directory_id: uuid.UUID | None) -> bool:
        """Kafka's ``isValidVoterKey``: the id is this node's, and so is the directory id when
        the request names one (and this node knows its own)."""
        if voter_id != self.node_id:
            return False
        return directory_id is None or self.directory_id is None or directory_id == self.directory_id

    def _can_grant(self, candidate: int, directory_id: uuid.UUID | None, up_to_date: bool, pre_vote: bool) -> bool:
        role = self.role
        if role is Role.LEADER or role is Role.RESIGNED:
            return False
        if role is Role.FOLLOWER:
            # a follower that hears from its leader rejects pre-votes, and always rejects votes
            return pre_vote and up_to_date and not self._has_fetched_from_leader
        if pre_vote:
            return up_to_date
        if role is Role.CANDIDATE:
            return False
        if self.voted_id != NO_LEADER:
            # Kafka's unattachedOrProspectiveCanGrantVote: the same candidate, and the same directory
            # when the vote recorded one (none at kraft.version 0)
            return self.voted_id == candidate and (
                self.voted_directory_id is None or self.voted_directory_id == directory_id)
        return up_to_date

    def _on_vote_response(self, resp: VoteResponse, now: int, out: list[Message]) -> None:
        if not self._expected(resp.src, resp.request_id):
            return
        if self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now):
            return
        if resp.error != NONE or resp.leader_epoch != self.epoch:
            return
        role = self.role
        if role is not Role.PROSPECTIVE and role is not Role.CANDIDATE:
            return
        if resp.vote_granted:
            self._granted.add(resp.src)
        else:
            self._rejected.add(resp.src)
            if len(self._rejected) > len(self.voters) - self._majority:
                # the election is lost: back off (a random fraction of the maximum backoff)
                backoff = self.rng.randrange(self.config.election_backoff_max_ms + 1)
                self._election_deadline = min(self._election_deadline, now + backoff)

    def _voter_only_error(self, src: int, epoch: int) -> int:
        # Kafka 4.4's validateVoterOnlyRequest: since KIP-853 the sender is not checked against the
        # voter set (it may know a newer one); an election only counts the voters' answers.
        if epoch < self.epoch:
            return FENCED_LEADER_EPOCH
        if src < 0:
            return INVALID_REQUEST
        return NONE

    def _on_begin_epoch_request(self, req: BeginQuorumEpochRequest, now: int) -> BeginQuorumEpochResponse:
        error = self._voter_only_error(req.leader_id, req.leader_epoch)
        if error == NONE:
            self._transition_on_leader_info(req.leader_epoch, req.leader_id, now)
            if not self._is_my_voter_key(req.dst, req.voter_directory_id):
                error = INVALID_VOTER_KEY
        return BeginQuorumEpochResponse(
            self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch
        )

    def _on_begin_epoch_response(self, resp: BeginQuorumEpochResponse, now: int, out: list[Message]) -> None:
        if not self._expected(resp.src, resp.request_id):
            return
        if self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now):
            return
        if resp.error == NONE and self.role is Role.LEADER and resp.leader_epoch == self.epoch:
            self._acknowledged.add(resp.src)

    def _on_end_epoch_request(self, req: EndQuorumEpochRequest, now: int) -> EndQuorumEpochResponse:
        error = self._voter_only_error(req.leader_id, req.leader_epoch)
        if error == NONE:
            self._transition_on_leader_info(req.leader_epoch, req.leader_id, now)
            if (
                self.role is Role.FOLLOWER
                and self.leader_id == req.leader_id
                and self.epoch == req.leader_epoch
            ):
                # The leader is leaving: its preferred successors (by fetch offset) time out first,
                # and the pre-votes are no longer refused on behalf of a leader that is gone.
                self._has_fetched_from_leader = False
                self._fetch_deadline = min(
                    self._fetch_deadline, now + self._end_epoch_backoff(req.preferred_successors)
                )
        return EndQuorumEpochResponse(self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch)

    def _end_epoch_backoff(self, successors: tuple[int, ...]) -> int:
        # Kafka's strictExponentialElectionBackoffMs
        max_ms = self.config.election_backoff_max_ms
        if self.node_id not in successors:
            return max_ms
        pos = successors.index(self.node_id)
        if pos == 0:
            return 0
        base = max_ms >> (len(successors) - 1)
        return min(max_ms, base << (pos - 1))

    def _on_end_epoch_response(self, resp: EndQuorumEpochResponse, now: int, out: list[Message]) -> None:
        if not self._expected(resp.src, resp.request_id):
            return
        if self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now):
            return
        if self.role is Role.RESIGNED and resp.error == NONE:
            self._acknowledged.add(resp.src)
