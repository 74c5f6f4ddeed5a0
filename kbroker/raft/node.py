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

import enum
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kbroker.raft.log import ControlRecord, Entry, RaftLog, Snapshot
from kbroker.raft.messages import (
    NO_LEADER,
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.state_store import ElectionState, QuorumStateStore
from kbroker.raft.voters import (
    ControlHistory,
    Voter,
    VoterSet,
    encode_kraft_version,
    encode_voters,
    snapshot_controls,
)
from kbroker_protocol.errors import ErrorCode

logger = logging.getLogger(__name__)

NONE = int(ErrorCode.NONE)
FENCED_LEADER_EPOCH = int(ErrorCode.FENCED_LEADER_EPOCH)
UNKNOWN_LEADER_EPOCH = int(ErrorCode.UNKNOWN_LEADER_EPOCH)
NOT_LEADER_OR_FOLLOWER = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)
INVALID_VOTER_KEY = int(ErrorCode.INVALID_VOTER_KEY)
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
SNAPSHOT_NOT_FOUND = int(ErrorCode.SNAPSHOT_NOT_FOUND)
REQUEST_TIMED_OUT = int(ErrorCode.REQUEST_TIMED_OUT)
UNSUPPORTED_VERSION = int(ErrorCode.UNSUPPORTED_VERSION)
DUPLICATE_VOTER = int(ErrorCode.DUPLICATE_VOTER)
VOTER_NOT_FOUND = int(ErrorCode.VOTER_NOT_FOUND)
ONE_HOUR_MS = 3_600_000

CHECK_QUORUM_TIMEOUT_FACTOR = 1.5  # Kafka's LeaderState.CHECK_QUORUM_TIMEOUT_FACTOR


class Role(enum.Enum):
    UNATTACHED = "Unattached"
    PROSPECTIVE = "Prospective"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    FOLLOWER = "Follower"
    RESIGNED = "Resigned"


class NotLeaderError(Exception):
    """``propose`` on a node that is not the leader (Kafka's NotLeaderException)."""

    def __init__(self, node_id: int, epoch: int, leader_id: int) -> None:
        super().__init__(f"node {node_id} is not the leader of epoch {epoch} (leader: {leader_id})")
        self.epoch = epoch
        self.leader_id = leader_id


@dataclass(slots=True)
class ReplicaState:
    """What the leader knows of a replica outside the voter set (Kafka's ``LeaderState.ReplicaState``
    of an observer): its directory id, fetch offset, and when it last fetched and was caught up."""

    directory_id: uuid.UUID | None
    end_offset: int = -1
    last_fetch: int = -1
    last_caught_up: int = -1
    last_fetch_leader_end: int = -1

    def update(self, fetch_offset: int, leader_end: int, now: int) -> None:
        # Kafka's ReplicaState.updateFollowerState
        if fetch_offset >= leader_end:
            self.last_caught_up = max(self.last_caught_up, now)
        elif self.last_fetch_leader_end > 0 and fetch_offset >= self.last_fetch_leader_end:
            self.last_caught_up = max(self.last_caught_up, self.last_fetch)
        self.last_fetch_leader_end = leader_end
        self.last_fetch = max(self.last_fetch, now)
        self.end_offset = fetch_offset


@dataclass(frozen=True, slots=True)
class VoterChange:
    """The result of a voter change asked of the leader: an error code (0: the new VotersRecord was
    appended at ``offset``; the change is done once that offset is committed) and Kafka's message."""

    error: int
    message: str | None = None
    offset: int = -1


class RaftSafetyError(AssertionError):
    """Something that Raft's invariants exclude happened (two leaders in one epoch, truncation of
    committed entries). Never raised by a correct quorum; the simulation treats it as a failure."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Kafka's ``controller.quorum.*`` settings (defaults as in Kafka 4.4) plus sans-IO knobs."""

    election_timeout_ms: int = 1000  # controller.quorum.election.timeout.ms
    fetch_timeout_ms: int = 2000  # controller.quorum.fetch.timeout.ms
    election_backoff_max_ms: int = 1000  # controller.quorum.election.backoff.max.ms
    request_timeout_ms: int = 2000  # controller.quorum.request.timeout.ms
    retry_backoff_ms: int = 20  # controller.quorum.retry.backoff.ms
    # How long a follower lets the leader hold its Fetch when there is nothing new (long poll).
    fetch_max_wait_ms: int = 500
    # The leader flushes appended records this long after the first unflushed one (Kafka's
    # quorum.append.linger.ms); a follower flushes what it fetched before its next Fetch, this long
    # after the append.
    append_linger_ms: int = 25
    fetch_max_entries: int = 64


class RaftNode:
    def __init__(
        self,
        node_id: int,
        voters: Iterable[int],
        log: RaftLog,
        store: QuorumStateStore,
        rng: random.Random,
        config: RaftConfig | None = None,
        now: int = 0,
        *,
        kraft_version: int = 0,
        directory_id: uuid.UUID | None = None,
        read_snapshot_controls: Callable[[Snapshot], tuple[dict[int, Voter] | None, int | None]] = snapshot_controls,
        bootstrap_targets: Sequence[int] = (),
    ) -> None:
        self.node_id = node_id
        self.directory_id = directory_id
        # ``voters``: ids (a static quorum, kraft.version 0) or a voter set (the bootstrap one of a
        # dynamic quorum); the voter set in effect is the latest in the log (KIP-853)
        base: dict[int, Voter] = (
            dict(voters) if isinstance(voters, Mapping) else {v: Voter(v) for v in voters}
        )
        # controller.quorum.bootstrap.servers (KIP-853): where a replica that knows no leader sends its
        # Fetch (the IO layer maps these ids, negative as Kafka's, to the servers' addresses); a
        # replica that knows no voter yet learns the voter set from the log it fetches
        self.bootstrap_targets = tuple(bootstrap_targets)
        if not base and not self.bootstrap_targets:
            raise ValueError("a quorum needs at least one voter")
        self._read_snapshot_controls = read_snapshot_controls
        self._initial_voters = base
        self._initial_kraft = kraft_version
        self.controls = ControlHistory(base, kraft_version)
        self.log = log
        self.store = store
        self.rng = rng
        self.config = config or RaftConfig()
        self._next_request_id = rng.getrandbits(40) << 8

        self.role = Role.UNATTACHED
        self.epoch = 0
        self.leader_id = NO_LEADER
        self.voted_id = NO_LEADER
        # entries covered by the snapshot are committed
        self.high_watermark = log.start_offset
        self._applied = 0
        self._fetching_snapshot: tuple[int, int] | None = None  # snapshot id being fetched
        # Fetch requests held by the leader until it has something new (Kafka's fetch purgatory):
        # replica id -> (request, deadline); answered when records are appended, the high
        # watermark moves, the wait ends or the node stops leading.
        self._parked: dict[int, tuple[FetchRequest, int]] = {}
        self._parked_dirty = False

        self._election_deadline = 0
        self._fetch_deadline = 0
        self._granted: set[int] = set()
        self._rejected: set[int] = set()
        # one in-flight Vote / BeginQuorumEpoch / EndQuorumEpoch per destination: dst -> (id, sent at)
        self._pending: dict[int, tuple[int, int]] = {}
        self._fetch_inflight: tuple[int, int, int] | None = None  # (request id, dst, sent at)
        self._next_fetch_at = 0
        self._has_fetched_from_leader = False
        self._flush_at: int | None = None
        self._observer_target = 0
        # leader state
        self._epoch_start_offset = 0
        self._voter_end: dict[int, int] = {}
        self._voter_last_fetch: dict[int, int] = {}
        self._acknowledged: set[int] = set()
        self._successors: tuple[int, ...] = ()
        # replicas outside the voter set that fetched from this leader, by id
        self._observers: dict[int, ReplicaState] = {}
        # the voter change in flight on this leader: (offset of its VotersRecord, deadline)
        self._voter_change: tuple[int, int] | None = None
        self._epoch_start_controls: list[object] = []
        self._load_controls()
        self._voters_changed(now)

        stored = store.read()
        if stored is None:
            self._become_unattached(0, now)
        else:
            self.epoch = stored.epoch
            self.voted_id = stored.voted_id
            if stored.leader_id == node_id and self.is_voter:
                self.leader_id = node_id
                self._become_resigned(now, ())
            elif stored.leader_id == node_id:
                # it led this epoch, then left the voter set: an observer now
                self._become_unattached(stored.epoch, now, voted=stored.voted_id, persist=False)
            elif stored.leader_id != NO_LEADER:
                self._become_follower(stored.epoch, stored.leader_id, now)
            elif stored.voted_id == node_id and self.is_voter:
                self._become_prospective(now)
            else:
                self._become_unattached(stored.epoch, now, voted=stored.voted_id, persist=False)
        if self.voters == {node_id} and self.role is not Role.LEADER:
            # the only voter elects itself at once (Kafka's KafkaRaftClient.initialize: "onlyVoter")
            self._election_deadline = now
        logger.info("raft node %d started as %s in epoch %d", node_id, self.role.value, self.epoch)

    # ------------------------------------------------------------------ public driver interface

    def handle(self, msg: Message, now: int) -> list[Message]:
        out: list[Message] = []
        if isinstance(msg, FetchRequest):
            parked = self._parked.pop(msg.src, None)
            if parked is not None:
                # a newer request from the same replica: answer the held one now
                out.append(self._on_fetch_request(parked[0], now, may_park=False))
            resp = self._on_fetch_request(msg, now)
            if resp is not None:
                out.append(resp)
        elif isinstance(msg, FetchResponse):
            self._on_fetch_response(msg, now, out)
        elif isinstance(msg, VoteRequest):
            out.append(self._on_vote_request(msg, now))
        elif isinstance(msg, VoteResponse):
            self._on_vote_response(msg, now, out)
        elif isinstance(msg, BeginQuorumEpochRequest):
            out.append(self._on_begin_epoch_request(msg, now))
        elif isinstance(msg, BeginQuorumEpochResponse):
            self._on_begin_epoch_response(msg, now, out)
        elif isinstance(msg, EndQuorumEpochRequest):
            out.append(self._on_end_epoch_request(msg, now))
        elif isinstance(msg, EndQuorumEpochResponse):
            self._on_end_epoch_response(msg, now, out)
        elif isinstance(msg, FetchSnapshotRequest):
            out.append(self._on_fetch_snapshot_request(msg, now))
        elif isinstance(msg, FetchSnapshotResponse):
            self._on_fetch_snapshot_response(msg, now)
        else:
            raise TypeError(f"not a raft message: {type(msg).__name__}")
        self._poll(now, out)
        return out

    def tick(self, now: int) -> list[Message]:
        out: list[Message] = []
        self._poll(now, out)
        return out

    def propose(self, values: Sequence[object], now: int, control: bool = False) -> int:
        """Append ``values`` as records of the current epoch (``control``: as control records, the
        values being ``ControlRecord``s); returns the offset of the last one."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.node_id, self.epoch, self.leader_id)
        if not values:
            raise ValueError("nothing to propose")
        last = len(values) - 1
        # one proposal is one atomic batch: only its last entry ends it
        self._append([Entry(self.epoch, v, control=control, batch_end=i == last) for i, v in enumerate(values)], now)
        if self._parked:
            self._parked_dirty = True
        if self._flush_at is None:
            self._flush_at = now + self.config.append_linger_ms
        return self.log.end_offset - 1

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

    # ------------------------------------------------------------------ the voter set (KIP-853)

    def voters_control_at(self, end_offset: int) -> list[ControlRecord]:
        """The KRaftVersionRecord and VotersRecord control records a snapshot ending at
        ``end_offset`` holds (none in a static quorum), as Kafka writes them in a snapshot's header
        batch."""
        if self.controls.kraft_version_at(end_offset) < 1 and self.controls.voters_offset < 0 \
                and self._bootstrap_base:
            return []
        return [encode_kraft_version(self.controls.kraft_version_at(end_offset)),
                encode_voters(self.controls.voters_at(end_offset))]

    @property
    def voter_set(self) -> dict[int, Voter]:
        """The voter set in effect (the latest in the log, committed or not)."""
        return self.controls.voters

    @property
    def kraft_version(self) -> int:
        return self.controls.kraft_version

    def _load_controls(self) -> None:
        """The voter history from the snapshot (or the initial voters) and the log's control records."""
        log = self.log
        voters: dict[int, Voter] = self._initial_voters
        level = self._initial_kraft
        self._bootstrap_base = True
        snap = log.snapshot
        if snap is not None:
            snap_voters, snap_level = self._read_snapshot_controls(snap)
            if snap_voters:
                voters, self._bootstrap_base = snap_voters, False
            if snap_level is not None:
                level = snap_level
        self.controls.reset(voters, level)
        offset = log.start_offset
        while offset < log.end_offset:
            entries = log.read(offset, 4096)
            for i, e in enumerate(entries):
                if e.control and self.controls.observe(offset + i, e):
                    self._bootstrap_base = False
            offset += len(entries)

    def _voters_changed(self, now: int) -> None:
        """Derive the quorum's shape from the voter set in effect; a leader starts or stops tracking
        the voters that came or went."""
        vs = self.controls.voters
        self.voters = frozenset(vs)
        self._other_voters = tuple(sorted(self.voters - {self.node_id}))
        self._majority = len(self.voters) // 2 + 1
        me = vs.get(self.node_id)
        self.is_voter = me is not None and (self.directory_id is None or me.matches(self.directory_id))
        if self.role is Role.LEADER:
            for v in self._other_voters:
                if v not in self._voter_end:
                    obs = self._observers.pop(v, None)
                    self._voter_end[v] = obs.end_offset if obs is not None else -1
                    self._voter_last_fetch[v] = obs.last_fetch if obs is not None and obs.last_fetch >= 0 else now
            for v in [v for v in self._voter_end if v not in self._other_voters]:
                del self._voter_end[v]
                self._voter_last_fetch.pop(v, None)
                self._acknowledged.discard(v)
                self._pending.pop(v, None)

    def _append(self, entries: Sequence[Entry], now: int) -> None:
        start = self.log.end_offset
        self.log.append(entries)
        changed = False
        for i, e in enumerate(entries):
            if e.control and self.controls.observe(start + i, e):
                changed = True
        if changed:
            self._bootstrap_base = False
            self._voters_changed(now)
            logger.info("raft node %d: voters now %s (offset %d)", self.node_id, sorted(self.voters),
                        self.controls.voters_offset)

    def _truncate(self, offset: int, now: int) -> None:
        self.log.truncate_to(offset)
        if self.controls.truncate(offset):
            self._voters_changed(now)
            logger.info("raft node %d: voters back to %s after truncation to %d", self.node_id,
                        sorted(self.voters), offset)

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

    def resign(self, now: int) -> list[Message]:
        """Graceful shutdown: a leader flushes, resigns and tells the other voters (EndQuorumEpoch)."""
        out: list[Message] = []
        if self.role is Role.LEADER:
            self.log.flush()
            successors = tuple(
                sorted(self._other_voters, key=lambda v: (-self._voter_end.get(v, -1), v))
            )
            self._become_resigned(now, successors)
            self._send_end_epoch(now, out)
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

    # ------------------------------------------------------------------ transitions

    def _persist(self) -> None:
        self.store.write(ElectionState(self.epoch, self.leader_id, self.voted_id))

    def _random_election_timeout(self) -> int:
        t = self.config.election_timeout_ms
        return t + self.rng.randrange(t)

    def _reset_role_state(self) -> None:
        self._granted = set()
        self._rejected = set()
        self._pending = {}
        self._fetch_inflight = None
        self._fetching_snapshot = None
        self._flush_at = None if self.role is not Role.LEADER else self._flush_at
        self._voter_end = {}
        self._voter_last_fetch = {}
        self._acknowledged = set()
        self._successors = ()
        self._observers = {}
        self._voter_change = None

    def _set_epoch(self, epoch: int) -> None:
        if epoch < self.epoch:
            raise RaftSafetyError(f"node {self.node_id}: epoch would go back from {self.epoch} to {epoch}")
        if epoch > self.epoch:
            self.voted_id = NO_LEADER
        self.epoch = epoch

    def _become_unattached(self, epoch: int, now: int, voted: int = NO_LEADER, persist: bool = True) -> None:
        self._set_epoch(epoch)
        self.role = Role.UNATTACHED
        self.leader_id = NO_LEADER
        if voted != NO_LEADER:
            self.voted_id = voted
        self._reset_role_state()
        if persist:
            self._persist()
        self._election_deadline = now + self._random_election_timeout()
        self._next_fetch_at = now
        logger.info(
            "raft node %d: Unattached in epoch %d (voted for %d)", self.node_id, self.epoch, self.voted_id
        )

    def _become_follower(self, epoch: int, leader: int, now: int) -> None:
        self._set_epoch(epoch)
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._reset_role_state()
        self._persist()
        self._fetch_deadline = now + self.config.fetch_timeout_ms
        self._next_fetch_at = now
        self._has_fetched_from_leader = False
        logger.info("raft node %d: Follower of %d in epoch %d", self.node_id, leader, epoch)

    def _start_election(self, now: int, out: list[Message]) -> None:
        """Pre-vote (Prospective); a node that is a majority by itself goes on at once."""
        self._become_prospective(now)
        if len(self._granted) >= self._majority:
            self._become_candidate(now)
            self._become_leader(now)
            self._poll_leader(now, out)
        else:
            self._send_votes(now, out)

    def _become_prospective(self, now: int) -> None:
        # Pre-vote (KIP-996): same epoch, nothing persisted; the vote (if any) is kept, and so is
        # the leader it timed out on, unless that was this node (resigned).
        self.role = Role.PROSPECTIVE
        if self.leader_id == self.node_id:
            self.leader_id = NO_LEADER
        self._reset_role_state()
        self._granted.add(self.node_id)
        self._election_deadline = now + self._random_election_timeout()
        logger.info("raft node %d: Prospective in epoch %d", self.node_id, self.epoch)

    def _become_candidate(self, now: int) -> None:
        self._set_epoch(self.epoch + 1)
        self.role = Role.CANDIDATE
        self.leader_id = NO_LEADER
        self.voted_id = self.node_id
        self._reset_role_state()
        self._persist()
        self._granted.add(self.node_id)
        self._election_deadline = now + self._random_election_timeout()
        logger.info("raft node %d: Candidate in epoch %d", self.node_id, self.epoch)

    def _become_leader(self, now: int) -> None:
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self._reset_role_state()
        self._persist()
        self._epoch_start_offset = self.log.end_offset
        # Kafka's leader writes a LeaderChangeMessage control record first: the high watermark can
        # only pass the epoch start once a record of this epoch is on a majority. While the voter set
        # is still the bootstrap checkpoint's (a dynamic quorum's first epochs), the kraft.version
        # and the voter set follow it into the log (Kafka's appendStartOfEpochControlRecords).
        first = [Entry(self.epoch, self.node_id, control=True)]
        if self._bootstrap_base and self.controls.voters_offset < 0 and self.kraft_version >= 1:
            first += [Entry(self.epoch, encode_kraft_version(self.kraft_version), control=True),
                      Entry(self.epoch, encode_voters(self.voter_set), control=True)]
        self._append(first, now)
        self._flush_at = now + self.config.append_linger_ms
        self._voter_end = {v: -1 for v in self._other_voters}
        self._voter_last_fetch = {v: now for v in self._other_voters}
        self._acknowledged = set()
        logger.info(
            "raft node %d: Leader in epoch %d from offset %d", self.node_id, self.epoch, self._epoch_start_offset
        )

    def _become_resigned(self, now: int, successors: tuple[int, ...]) -> None:
        self.role = Role.RESIGNED
        self._reset_role_state()
        self._successors = successors
        self._election_deadline = now + self._random_election_timeout()
        logger.info("raft node %d: Resigned in epoch %d", self.node_id, self.epoch)

    def _transition_on_leader_info(self, epoch: int, leader: int, now: int) -> bool:
        """Kafka's ``maybeTransition``/``maybeHandleCommonResponse``: react to a peer's view of the
        quorum. Returns True when the node moved to another state."""
        if epoch > self.epoch:
            if leader != NO_LEADER and leader != self.node_id:
                self._become_follower(epoch, leader, now)
            else:
                self._become_unattached(epoch, now)
            return True
        if epoch == self.epoch and leader != NO_LEADER:
            if self.role is Role.LEADER:
                if leader != self.node_id:
                    raise RaftSafetyError(
                        f"node {self.node_id} leads epoch {epoch} but node {leader} claims it too"
                    )
                return False
            if self.role is Role.FOLLOWER:
                if leader != self.leader_id:
                    raise RaftSafetyError(
                        f"node {self.node_id} follows {self.leader_id} in epoch {epoch}, node {leader} claims it"
                    )
                return False
            if self.role is Role.RESIGNED or leader == self.node_id:
                return False
            if self.leader_id != NO_LEADER:
                # a Prospective keeps the leader it timed out on (Kafka's ProspectiveState.leaderId)
                return False
            self._become_follower(epoch, leader, now)
            return True
        return False

    # ------------------------------------------------------------------ periodic work

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

    def _poll_leader(self, now: int, out: list[Message]) -> None:
        if self._flush_at is not None and now >= self._flush_at:
            self.log.flush()
            self._flush_at = None
            self._update_high_watermark()
        if not self.is_voter and self.controls.voters_offset < self.high_watermark:
            # Kafka's RemoveVoterHandler: the leader is not in the committed voter set: it resigns
            logger.info("raft node %d: leader of epoch %d is not in the committed voter set %s; resigning",
                        self.node_id, self.epoch, sorted(self.voters))
            self.resign_to(now, out)
            return
        if now >= self._check_quorum_deadline():
            logger.info(
                "raft node %d: leader of epoch %d lost contact with a majority; resigning",
                self.node_id,
                self.epoch,
            )
            self.resign_to(now, out)
            return
        for v in self._unacknowledged():
            if self._can_send(v, now):
                rid = self._request_id()
                self._pending[v] = (rid, now)
                out.append(BeginQuorumEpochRequest(self.node_id, v, rid, self.node_id, self.epoch))
        if len(self.voters) == 1:
            self._update_high_watermark()

    def resign_to(self, now: int, out: list[Message]) -> None:
        out.extend(self.resign(now))

    def _check_quorum_deadline(self) -> int:
        # others needed besides the leader (all of a majority when the leader left the voter set)
        # (a single voter never expires, Kafka's LeaderState.timeUntilCheckQuorumExpires: not even when
        # it is not the leader, whose removal it must then commit)
        need = self._majority - (1 if self.is_voter else 0)
        if need <= 0 or len(self.voters) == 1:
            return 1 << 62
        # the time at which fewer than a majority (counting the leader) will have fetched recently
        times = sorted(self._voter_last_fetch.values(), reverse=True)
        return times[need - 1] + int(self.config.fetch_timeout_ms * CHECK_QUORUM_TIMEOUT_FACTOR)

    def _unacknowledged(self) -> list[int]:
        return [v for v in self._other_voters if v not in self._acknowledged]

    def _vote_targets(self) -> list[int]:
        return [v for v in self._other_voters if v not in self._granted and v not in self._rejected]

    def _end_targets(self) -> list[int]:
        return [v for v in self._successors if v not in self._acknowledged]

    def _resend_times(self, targets: Iterable[int]) -> list[int]:
        times = []
        for v in targets:
            p = self._pending.get(v)
            times.append(0 if p is None else p[1] + self.config.request_timeout_ms)
        return times

    def _can_send(self, dst: int, now: int) -> bool:
        p = self._pending.get(dst)
        return p is None or now >= p[1] + self.config.request_timeout_ms

    def _request_id(self) -> int:
        self._next_request_id += 1
        return self._next_request_id

    def _send_votes(self, now: int, out: list[Message]) -> None:
        pre_vote = self.role is Role.PROSPECTIVE
        end = self.log.end_offset
        last_epoch = self.log.last_epoch
        for v in self._vote_targets():
            if self._can_send(v, now):
                rid = self._request_id()
                self._pending[v] = (rid, now)
                out.append(VoteRequest(self.node_id, v, rid, self.epoch, last_epoch, end, pre_vote))

    def _send_end_epoch(self, now: int, out: list[Message]) -> None:
        for v in self._end_targets():
            if self._can_send(v, now):
                rid = self._request_id()
                self._pending[v] = (rid, now)
                out.append(
                    EndQuorumEpochRequest(self.node_id, v, rid, self.node_id, self.epoch, self._successors)
                )

    def _fetch_send_time(self) -> int:
        inflight = self._fetch_inflight
        if inflight is not None:
            return inflight[2] + self.config.request_timeout_ms
        return self._next_fetch_at

    def _maybe_send_fetch(self, now: int, out: list[Message]) -> None:
        inflight = self._fetch_inflight
        if inflight is not None:
            if now < inflight[2] + self.config.request_timeout_ms:
                return
            self._fetch_inflight = None
        if now < self._next_fetch_at:
            return
        if self.role is Role.FOLLOWER:
            dst = self.leader_id
        else:  # an observer looking for the leader asks the bootstrap servers (or the voters) in turn
            targets = self.bootstrap_targets or tuple(sorted(self.voters))
            self._observer_target = (self._observer_target + 1) % len(targets)
            dst = targets[self._observer_target]
        snap_id = self._fetching_snapshot
        if snap_id is not None and self.role is Role.FOLLOWER:
            rid = self._request_id()
            self._fetch_inflight = (rid, dst, now)
            out.append(FetchSnapshotRequest(self.node_id, dst, rid, self.epoch, snap_id[0], snap_id[1]))
            return
        # Only flushed entries are reported to the leader: the fetch offset counts towards the
        # high watermark.
        if self.log.flushed_end < self.log.end_offset:
            self.log.flush()
        end = self.log.end_offset
        rid = self._request_id()
        self._fetch_inflight = (rid, dst, now)
        out.append(
            FetchRequest(
                self.node_id,
                dst,
                rid,
                self.epoch,
                end,
                self.log.epoch_at(end),
                self.config.fetch_max_wait_ms if self.role is Role.FOLLOWER else 0,
                self.high_watermark,
                self.directory_id,
            )
        )

    # ------------------------------------------------------------------ high watermark

    def _update_high_watermark(self) -> None:
        # the majority of the voter set in effect; the leader counts only while it is a voter
        ends = list(self._voter_end.values())
        if self.is_voter:
            ends.append(self.log.flushed_end)
        if len(ends) < self._majority:
            return
        ends.sort(reverse=True)
        candidate = ends[self._majority - 1]
        if candidate > self._epoch_start_offset and candidate > self.high_watermark:
            self.high_watermark = candidate
            if self._parked:
                self._parked_dirty = True

    # ------------------------------------------------------------------ Vote

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
        if req.dst != self.node_id:
            # the request was meant for another replica (Kafka's voter key check)
            return answer(INVALID_VOTER_KEY)
        up_to_date = (req.last_offset_epoch, req.last_offset) >= (self.log.last_epoch, self.log.end_offset)
        granted = self._can_grant(req.src, up_to_date, req.pre_vote)
        if granted and not req.pre_vote and self.voted_id == NO_LEADER:
            # the vote is durable before the answer goes out
            self._become_unattached(self.epoch, now, voted=req.src)
        return answer(NONE, granted)

    def _can_grant(self, candidate: int, up_to_date: bool, pre_vote: bool) -> bool:
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
            return self.voted_id == candidate
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

    def _expected(self, src: int, request_id: int) -> bool:
        p = self._pending.get(src)
        if p is None or p[0] != request_id:
            return False
        del self._pending[src]
        return True

    # ------------------------------------------------------------------ BeginQuorumEpoch / EndQuorumEpoch

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
            if req.dst != self.node_id:
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

    # ------------------------------------------------------------------ Fetch

    def _complete_parked(self, now: int, out: list[Message]) -> None:
        everything = self._parked_dirty or self.role is not Role.LEADER
        self._parked_dirty = False
        for src, (req, deadline) in list(self._parked.items()):
            if everything or now >= deadline:
                del self._parked[src]
                resp = self._on_fetch_request(req, now, may_park=False)
                assert resp is not None
                out.append(resp)

    def _on_fetch_request(self, req: FetchRequest, now: int, may_park: bool = True) -> FetchResponse | None:
        def answer(
            error: int,
            records: tuple[Entry, ...] = (),
            div: tuple[int, int] = (-1, -1),
            snapshot_id: tuple[int, int] = (-1, -1),
        ) -> FetchResponse:
            return FetchResponse(
                self.node_id,
                req.src,
                req.request_id,
                error,
                self.leader_id,
                self.epoch,
                self.high_watermark,
                req.fetch_offset,
                records,
                div[0],
                div[1],
                snapshot_id[0],
                snapshot_id[1],
            )

        if req.fetch_offset < 0 or req.last_fetched_epoch < 0:
            return answer(INVALID_REQUEST)
        if req.current_leader_epoch < self.epoch:
            return answer(FENCED_LEADER_EPOCH)
        if req.current_leader_epoch > self.epoch:
            return answer(UNKNOWN_LEADER_EPOCH)
        if self.role is not Role.LEADER:
            return answer(NOT_LEADER_OR_FOLLOWER)
        log = self.log
        src = req.src
        # a voter fetches with its directory id (KIP-853): another directory under its id is an observer
        is_voter = src in self._voter_end and self.voter_set[src].matches(req.replica_directory_id)
        if is_voter:
            # any valid fetch from a voter acknowledges the epoch and counts for check-quorum
            self._voter_last_fetch[src] = now
            self._acknowledged.add(src)
        snap = log.snapshot
        offset, last_epoch = req.fetch_offset, req.last_fetched_epoch
        if snap is not None and (
            offset < log.start_offset
            or (offset == log.start_offset and last_epoch != snap.epoch)
            or last_epoch < snap.epoch
        ):
            # Kafka's validateOffsetAndEpoch: the fetcher must load the snapshot first
            return answer(NONE, snapshot_id=snap.snapshot_id)
        if offset > 0:
            epoch, end = log.end_offset_for_epoch(last_epoch)
            if epoch < 0:
                return answer(NONE, div=(0, 0))
            if epoch != last_epoch or end < offset:
                return answer(NONE, div=(epoch, end))
        if is_voter:
            # the fetcher's log matches ours up to fetch_offset, which it has flushed
            self._voter_end[src] = req.fetch_offset
            self._update_high_watermark()
        else:
            obs = self._observers.get(src)
            if obs is None or obs.directory_id != req.replica_directory_id:
                obs = self._observers[src] = ReplicaState(req.replica_directory_id)
            obs.update(req.fetch_offset, log.end_offset, now)
        records = self._read_batches(req.fetch_offset)
        if (
            may_park
            and not records
            and req.max_wait_ms > 0
            and (req.high_watermark < 0 or req.high_watermark == self.high_watermark)
        ):
            # nothing new for this replica: hold the request (long poll)
            self._parked[src] = (req, now + req.max_wait_ms)
            return None
        return answer(NONE, records)

    def _read_batches(self, offset: int) -> tuple[Entry, ...]:
        """Whole proposals from ``offset``, up to ``fetch_max_entries`` entries unless the first
        proposal is larger (then that one whole): as Kafka's leader serves whole batches, a
        follower never holds part of a proposal."""
        log = self.log
        records = log.read(offset, self.config.fetch_max_entries)
        if not records or records[-1].batch_end:
            return records
        for i in range(len(records) - 1, -1, -1):
            if records[i].batch_end:
                return records[: i + 1]
        end = offset + len(records)
        while end < log.end_offset:
            end += 1
            if log.entry(end - 1).batch_end:
                break
        return log.read(offset, end - offset)

    @staticmethod
    def _whole_proposals(records: tuple[Entry, ...]) -> tuple[Entry, ...]:
        """A fetched answer without an incomplete last proposal (Kafka's fetcher drops a partial
        last batch): a follower's log holds whole proposals only; the rest is fetched again."""
        keep = len(records)
        while keep and not records[keep - 1].batch_end:
            keep -= 1
        return records[:keep]

    def _on_fetch_response(self, resp: FetchResponse, now: int, out: list[Message]) -> None:
        inflight = self._fetch_inflight
        if inflight is None or inflight[0] != resp.request_id or inflight[1] != resp.src:
            return
        self._fetch_inflight = None
        if self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now):
            return
        if (
            resp.error != NONE
            or self.role is not Role.FOLLOWER
            or resp.src != self.leader_id
            or resp.leader_epoch != self.epoch
        ):
            self._next_fetch_at = now + self.config.retry_backoff_ms
            return
        self._fetch_deadline = now + self.config.fetch_timeout_ms
        self._has_fetched_from_leader = True
        log = self.log
        if resp.snapshot_end_offset >= 0:
            self._fetching_snapshot = (resp.snapshot_end_offset, resp.snapshot_epoch)
            self._next_fetch_at = now
            return
        if resp.diverging_epoch >= 0:
            local_epoch, local_end = log.end_offset_for_epoch(resp.diverging_epoch)
            target = min(local_end, resp.diverging_end_offset) if local_epoch == resp.diverging_epoch else local_end
            if target < self.high_watermark or target < log.start_offset:
                raise RaftSafetyError(
                    f"node {self.node_id}: truncation to {target} below the high watermark {self.high_watermark}"
                )
            logger.info(
                "raft node %d: truncating from %d to %d (diverging epoch %d end %d)",
                self.node_id,
                log.end_offset,
                target,
                resp.diverging_epoch,
                resp.diverging_end_offset,
            )
            self._truncate(target, now)
            self._next_fetch_at = now
            return
        if resp.base_offset != log.end_offset:
            self._next_fetch_at = now
            return
        records = self._whole_proposals(resp.records)
        if records:
            self._append(records, now)
            self._next_fetch_at = now + self.config.append_linger_ms
        else:
            # the leader held the request as long as it could: ask again at once
            self._next_fetch_at = now
        hw = min(resp.high_watermark, log.end_offset)
        if hw > self.high_watermark:
            self.high_watermark = hw

    # ------------------------------------------------------------------ FetchSnapshot

    def _on_fetch_snapshot_request(self, req: FetchSnapshotRequest, now: int) -> FetchSnapshotResponse:
        def answer(error: int, snap: Snapshot | None = None) -> FetchSnapshotResponse:
            if snap is None:
                return FetchSnapshotResponse(
                    self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch
                )
            return FetchSnapshotResponse(
                self.node_id,
                req.src,
                req.request_id,
                error,
                self.leader_id,
                self.epoch,
                snap.end_offset,
                snap.epoch,
                snap.data,
            )

        if req.current_leader_epoch < self.epoch:
            return answer(FENCED_LEADER_EPOCH)
        if req.current_leader_epoch > self.epoch:
            return answer(UNKNOWN_LEADER_EPOCH)
        if self.role is not Role.LEADER:
            return answer(NOT_LEADER_OR_FOLLOWER)
        snap = self.log.snapshot
        if snap is None or snap.snapshot_id != (req.snapshot_end_offset, req.snapshot_epoch):
            return answer(SNAPSHOT_NOT_FOUND)
        if req.src in self._voter_last_fetch:
            self._voter_last_fetch[req.src] = now
            self._acknowledged.add(req.src)
        return answer(NONE, snap)

    def _on_fetch_snapshot_response(self, resp: FetchSnapshotResponse, now: int) -> None:
        inflight = self._fetch_inflight
        if inflight is None or inflight[0] != resp.request_id or inflight[1] != resp.src:
            return
        self._fetch_inflight = None
        if self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now):
            return
        if (
            self.role is not Role.FOLLOWER
            or resp.src != self.leader_id
            or resp.leader_epoch != self.epoch
            or self._fetching_snapshot is None
        ):
            return
        if resp.error != NONE:
            # SNAPSHOT_NOT_FOUND: the leader has a newer one; a new Fetch will name it
            self._fetching_snapshot = None
            self._next_fetch_at = now + (self.config.retry_backoff_ms if resp.error != SNAPSHOT_NOT_FOUND else 0)
            return
        if (resp.snapshot_end_offset, resp.snapshot_epoch) != self._fetching_snapshot:
            self._fetching_snapshot = None
            self._next_fetch_at = now
            return
        self._fetch_deadline = now + self.config.fetch_timeout_ms
        self._has_fetched_from_leader = True
        snap = Snapshot(resp.snapshot_end_offset, resp.snapshot_epoch, resp.data)
        if snap.end_offset < self.high_watermark:
            raise RaftSafetyError(
                f"node {self.node_id}: snapshot at {snap.end_offset} below the high watermark {self.high_watermark}"
            )
        logger.info(
            "raft node %d: installing snapshot (end offset %d, epoch %d) from %d",
            self.node_id,
            snap.end_offset,
            snap.epoch,
            resp.src,
        )
        self.log.install_snapshot(snap)
        self._load_controls()
        self._voters_changed(now)
        self.high_watermark = snap.end_offset
        self._fetching_snapshot = None
        self._next_fetch_at = now


def _dir(directory_id: uuid.UUID | None) -> str:
    """A directory id as Kafka's ``Uuid.toString`` prints it (base64, url-safe, no padding)."""
    import base64

    raw = (directory_id or uuid.UUID(int=0)).bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
