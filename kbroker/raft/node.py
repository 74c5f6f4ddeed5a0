"""The Raft state machine of one KRaft replica, with no IO (Kafka's ``KafkaRaftClient`` + ``QuorumState``).

A ``RaftNode`` is driven by its owner:

- ``handle(message, now)`` for every message that arrives, ``tick(now)`` at ``next_deadline()`` (or
  earlier); both return the messages to send, each naming its destination;
- ``propose(values, now)`` on the leader appends records and returns the offset of the last one;
- ``poll_committed()`` returns the entries that became committed since the previous call (first a
  snapshot to load when the entries due were replaced by one);
- ``snapshot(end_offset, data)`` records the state machine's snapshot of a committed prefix;
- ``resign(now)`` on shutdown: a leader ends its epoch (EndQuorumEpoch to the other voters).

The node writes its log (an injected ``RaftLog``) and its ``quorum-state`` (an injected
``QuorumStateStore``) itself, synchronously: the state is durable before any message that depends
on it is returned. Time is an integer number of milliseconds given by the caller and randomness comes
from the injected ``random.Random``, so a run is a pure function of its inputs.

States (``Role``) and their Kafka classes: UNATTACHED (``UnattachedState``, possibly with a vote),
PROSPECTIVE (``ProspectiveState``, KIP-996 pre-vote), CANDIDATE (``CandidateState``), LEADER
(``LeaderState``), FOLLOWER (``FollowerState``, also used by observers), RESIGNED (``ResignedState``).
"""

from __future__ import annotations

import logging

from kbroker.raft import messages as m
from kbroker.raft.election import ElectionHandlers
from kbroker.raft.follower import FollowerRole
from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.messages import NO_LEADER, Message
from kbroker.raft.node_base import NONE, NotLeaderError, RaftConfig, RaftSafetyError, Role, VoterChange
from kbroker.raft.voter_changes import VoterChanges
from kbroker.raft.voters import ControlHistory

logger = logging.getLogger(__name__)

# what callers import from here (the node's parts live in node_base, election, leader, follower and
# voter_changes)
__all__ = ["NONE", "NO_LEADER", "ControlHistory", "NotLeaderError", "RaftConfig", "RaftNode", "RaftSafetyError",
           "Role", "VoterChange"]

# A request type -> the handler that answers it; a response type -> the handler that takes it in
# (it may add messages to send). Names, not functions, so that a subclass or a test may replace one.
_ANSWERS = {
    m.VoteRequest: "_on_vote_request",
    m.BeginQuorumEpochRequest: "_on_begin_epoch_request",
    m.EndQuorumEpochRequest: "_on_end_epoch_request",
    m.FetchSnapshotRequest: "_on_fetch_snapshot_request",
}
_TAKES = {
    m.VoteResponse: "_on_vote_response",
    m.BeginQuorumEpochResponse: "_on_begin_epoch_response",
    m.EndQuorumEpochResponse: "_on_end_epoch_response",
    m.FetchResponse: "_on_fetch_response",
    m.FetchSnapshotResponse: "_on_fetch_snapshot_response",
}


class RaftNode(VoterChanges, ElectionHandlers, FollowerRole):
    """One KRaft replica (see the module's docstring); its parts are the mixins it is made of."""

    def handle(self, msg: Message, now: int) -> list[Message]:
        out: list[Message] = []
        if isinstance(msg, m.FetchRequest):
            parked = self._parked.pop(msg.src, None)
            if parked is not None:
                # a newer request from the same replica: answer the held one now
                held = self._on_fetch_request(parked[0], now, may_park=False)
                assert held is not None  # may_park=False always answers
                out.append(held)
            resp = self._on_fetch_request(msg, now)
            if resp is not None:
                out.append(resp)
        elif type(msg) in _ANSWERS:
            out.append(getattr(self, _ANSWERS[type(msg)])(msg, now))
        elif type(msg) in _TAKES:
            getattr(self, _TAKES[type(msg)])(msg, now, out)
        else:
            raise TypeError(f"not a raft message: {type(msg).__name__}")
        self._poll(now, out)
        return out

    def tick(self, now: int) -> list[Message]:
        out: list[Message] = []
        self._poll(now, out)
        return out

    def poll_committed(self) -> list[tuple[int, Entry | Snapshot]]:
        """``(offset, entry)`` for every entry committed since the previous call (control records
        included), in order. When the entries to deliver next were replaced by a snapshot (after a
        restart, or one fetched from the leader), the first item is ``(end_offset - 1, snapshot)``:
        the state machine loads it in place of everything before (Kafka's ``handleLoadSnapshot``)."""
        out: list[tuple[int, Entry | Snapshot]] = []
        log = self.log
        if self._applied < log.start_offset:
            snap = log.snapshot
            assert snap is not None
            out.append((snap.end_offset - 1, snap))
            self._applied = snap.end_offset
        end = self.applicable_end()
        if self._applied < end:
            start = self._applied
            entries = log.read(start, end - start)
            self._applied = start + len(entries)
            out.extend((start + i, e) for i, e in enumerate(entries))
        return out

    def applicable_end(self) -> int:
        """The end of the committed entries that may be applied: the high watermark moved back to
        the end of the last whole proposal below it (a proposal is atomic: its entries are applied
        together or not at all, Kafka's whole batches), never below what was already applied or
        the log start."""
        log = self.log
        end = min(self.high_watermark, log.end_offset)
        floor = max(self._applied, log.start_offset)
        while end > floor and not log.entry(end - 1).batch_end:
            end -= 1
        return max(end, floor)

    def snapshot(self, end_offset: int, data: object) -> Snapshot:
        """Record the state machine's snapshot after the committed entries ``[0, end_offset)``;
        the log drops them (Kafka's ``createSnapshot`` + log start advance)."""
        if not self.log.start_offset < end_offset <= self.high_watermark:
            raise ValueError(
                f"a snapshot must end above the log start {self.log.start_offset} and at most at the "
                f"high watermark {self.high_watermark}, not at {end_offset}"
            )
        if not self.log.entry(end_offset - 1).batch_end:
            raise ValueError(f"a snapshot must end at the end of a proposal (a batch), not at {end_offset}")
        if end_offset > self.log.flushed_end:
            self.log.flush()
        snap = self.log.take_snapshot(end_offset, data)
        self.controls.compact(self.log.start_offset)
        return snap

    def request_failed(self, dst: int, request_id: int, now: int) -> list[Message]:
        """The IO layer could not deliver request ``request_id`` to ``dst`` or lost the connection
        before the answer (Kafka's ``onResponseError``): retry after ``retry_backoff_ms`` instead of
        waiting for the request timeout; an observer looking for the leader moves to the next voter."""
        out: list[Message] = []
        retry_at = now + self.config.retry_backoff_ms
        p = self._pending.get(dst)
        if p is not None and p[0] == request_id:
            # pretend it was sent so that the request timeout ends at retry_at
            self._pending[dst] = (request_id, retry_at - self.config.request_timeout_ms)
        inflight = self._fetch_inflight
        if inflight is not None and inflight[0] == request_id and inflight[1] == dst:
            self._fetch_inflight = None
            self._next_fetch_at = max(self._next_fetch_at, retry_at)
        self._poll(now, out)
        return out

    def next_deadline(self) -> int:
        """The time of the next ``tick`` this node needs (it may be ticked earlier)."""
        role = self.role
        t: list[int] = []
        if self._parked:
            if self._parked_dirty or role is not Role.LEADER:
                return 0
            t.extend(deadline for _, deadline in self._parked.values())
        if role is Role.LEADER:
            if self._flush_at is not None:
                t.append(self._flush_at)
            t.append(self._check_quorum_deadline())
            t.extend(self._resend_times(self._unacknowledged()))
        elif role is Role.FOLLOWER:
            t.append(self._fetch_deadline)
            t.append(self._fetch_send_time())
        elif role is Role.UNATTACHED:
            if self.is_voter:
                t.append(self._election_deadline)
            else:
                t.append(self._fetch_send_time())
        else:  # PROSPECTIVE, CANDIDATE, RESIGNED
            if role is not Role.RESIGNED and len(self._granted) >= self._majority:
                return 0
            t.append(self._election_deadline)
            t.extend(self._resend_times(self._vote_targets() if role is not Role.RESIGNED else self._end_targets()))
        return min(t)

    @property
    def committed_offset(self) -> int:
        return self.high_watermark

    def _poll(self, now: int, out: list[Message]) -> None:
        if self._parked:
            self._complete_parked(now, out)
        role = self.role
        if not self.is_voter and role in (Role.PROSPECTIVE, Role.CANDIDATE, Role.RESIGNED) and (
                role is not Role.RESIGNED or now >= self._election_deadline):
            # no longer a voter (removed, or a replaced directory): an observer of the quorum
            self._become_unattached(self.epoch, now)
            role = self.role
        if role is Role.LEADER:
            self._poll_leader(now, out)
        elif role is Role.FOLLOWER:
            if now >= self._fetch_deadline:
                if self.is_voter:
                    logger.info("raft node %d: fetch timeout in epoch %d", self.node_id, self.epoch)
                    self._start_election(now, out)
                else:
                    self._become_unattached(self.epoch, now)
                    self._maybe_send_fetch(now, out)
            else:
                self._maybe_send_fetch(now, out)
        elif role is Role.UNATTACHED:
            if self.is_voter:
                if now >= self._election_deadline:
                    self._start_election(now, out)
            else:
                self._maybe_send_fetch(now, out)
        elif role is Role.PROSPECTIVE:
            if len(self._granted) >= self._majority:
                self._become_candidate(now)
                self._send_votes(now, out)
                self._poll(now, out)
            elif now >= self._election_deadline:
                if self.leader_id != NO_LEADER:
                    self._become_follower(self.epoch, self.leader_id, now)
                    self._maybe_send_fetch(now, out)
                else:
                    self._start_election(now, out)
            else:
                self._send_votes(now, out)
        elif role is Role.CANDIDATE:
            if len(self._granted) >= self._majority:
                self._become_leader(now)
                self._poll_leader(now, out)
            elif now >= self._election_deadline:
                self._start_election(now, out)
            else:
                self._send_votes(now, out)
        elif role is Role.RESIGNED:
            if now >= self._election_deadline:
                self._start_election(now, out)
            else:
                self._send_end_epoch(now, out)

    def _start_election(self, now: int, out: list[Message]) -> None:
        """Pre-vote (Prospective); a node that is a majority by itself goes on at once."""
        self._become_prospective(now)
        if len(self._granted) >= self._majority:
            self._become_candidate(now)
            self._become_leader(now)
            self._poll_leader(now, out)
        else:
            self._send_votes(now, out)
