"""The state every part of a ``RaftNode`` shares (Kafka's ``QuorumState`` and the plumbing of
``KafkaRaftClient``): the node's identity, log, epoch and role, the role transitions, the voter set
in effect as the log says it, and the bookkeeping of requests in flight. The message handling is in
``election``, ``leader``, ``follower`` and ``voter_changes``; ``node.RaftNode`` puts them together.
"""

from __future__ import annotations

import enum
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kbroker.config import BROKER_DEFAULTS
from kbroker.raft.log import Entry, LeaderChange, RaftLog, Snapshot
from kbroker.raft.messages import (
    NO_LEADER,
    EndQuorumEpochRequest,
    FetchRequest,
    Message,
    VoteRequest,
)
from kbroker.raft.state_store import ElectionState, QuorumStateStore
from kbroker.raft.voters import (
    ControlHistory,
    Voter,
    encode_kraft_version,
    encode_voters,
    snapshot_controls,
)
from kbroker_protocol.errors import ErrorCode

logger = logging.getLogger("kbroker.raft.node")  # one logger for the whole node, as before the split

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

    election_timeout_ms: int = BROKER_DEFAULTS["controller.quorum.election.timeout.ms"]
    fetch_timeout_ms: int = BROKER_DEFAULTS["controller.quorum.fetch.timeout.ms"]
    election_backoff_max_ms: int = BROKER_DEFAULTS["controller.quorum.election.backoff.max.ms"]
    request_timeout_ms: int = BROKER_DEFAULTS["controller.quorum.request.timeout.ms"]
    retry_backoff_ms: int = BROKER_DEFAULTS["controller.quorum.retry.backoff.ms"]
    # How long a follower lets the leader hold its Fetch when there is nothing new (long poll).
    fetch_max_wait_ms: int = 500
    # The leader flushes appended records this long after the first unflushed one (Kafka's
    # quorum.append.linger.ms); a follower flushes what it fetched before its next Fetch, this long
    # after the append.
    append_linger_ms: int = 25
    fetch_max_entries: int = 64


class NodeBase:
    """The shared state of a ``RaftNode`` and the transitions between its roles."""

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
        self.voted_directory_id: uuid.UUID | None = None  # the voted candidate's (Kafka's votedKey)
        # this node as a voter as it runs (its endpoints and kraft.version range; Kafka's
        # localVoterNode), set by the IO layer: a new leader whose entry in the voter set differs
        # writes the updated set with its LeaderChangeMessage. None: unknown (nothing written)
        self.local_voter: Voter | None = None
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
            self.voted_directory_id = stored.voted_directory_id
            if stored.leader_id == node_id and self.is_voter:
                self.leader_id = node_id
                self._become_resigned(now, ())
            elif stored.leader_id == node_id:
                # it led this epoch, then left the voter set: an observer now
                self._become_unattached(stored.epoch, now, voted=stored.voted_id,
                                        voted_directory=stored.voted_directory_id, persist=False)
            elif stored.leader_id != NO_LEADER:
                self._become_follower(stored.epoch, stored.leader_id, now)
            elif stored.voted_id == node_id and self.is_voter:
                self._become_prospective(now)
            else:
                self._become_unattached(stored.epoch, now, voted=stored.voted_id,
                                        voted_directory=stored.voted_directory_id, persist=False)
        if self.voters == {node_id} and self.role is not Role.LEADER:
            # the only voter elects itself at once (Kafka's KafkaRaftClient.initialize: "onlyVoter")
            self._election_deadline = now
        logger.info("raft node %d started as %s in epoch %d", node_id, self.role.value, self.epoch)

    @property
    def voter_set(self) -> dict[int, Voter]:
        """The voter set in effect (the latest in the log, committed or not)."""
        return self.controls.voters

    @property
    def kraft_version(self) -> int:
        return self.controls.kraft_version

    @property
    def epoch_start_offset(self) -> int:
        """The log end offset when this node last became leader (0 before it ever led): as leader,
        its high watermark is known to be the quorum's once it passes this offset (an entry of its
        own epoch committed, Raft's rule)."""
        return self._epoch_start_offset

    @property
    def voter_end_offsets(self) -> Mapping[int, int]:
        """As leader: each other voter's log end offset as its last fetch told (-1: not fetched
        this epoch)."""
        return self._voter_end

    @property
    def voter_last_fetch_times(self) -> Mapping[int, int]:
        """As leader: when each other voter last fetched (on this node's clock)."""
        return self._voter_last_fetch

    @property
    def tracked_observers(self) -> Mapping[int, ReplicaState]:
        """As leader: the replicas outside the voter set that fetched from it this epoch."""
        return self._observers

    @property
    def applied_offset(self) -> int:
        """The offset of the next committed entry to hand to the state machine: every entry
        below it has been applied (or replaced by the snapshot loaded)."""
        return self._applied

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

    def _persist(self) -> None:
        self.store.write(ElectionState(self.epoch, self.leader_id, self.voted_id, self.voted_directory_id,
                                       self.kraft_version, tuple(sorted(self.voters))))

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
            self.voted_directory_id = None
        self.epoch = epoch

    def _become_unattached(self, epoch: int, now: int, voted: int = NO_LEADER,
                           voted_directory: uuid.UUID | None = None, persist: bool = True) -> None:
        self._set_epoch(epoch)
        self.role = Role.UNATTACHED
        self.leader_id = NO_LEADER
        if voted != NO_LEADER:
            self.voted_id = voted
            self.voted_directory_id = voted_directory
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
        self.voted_directory_id = self.directory_id
        self._reset_role_state()
        self._persist()
        self._granted.add(self.node_id)
        self._election_deadline = now + self._random_election_timeout()
        logger.info("raft node %d: Candidate in epoch %d", self.node_id, self.epoch)

    def _become_leader(self, now: int) -> None:
        granting = tuple(self._granted)  # the election's, before the role state is reset
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self._reset_role_state()
        self._persist()
        self._epoch_start_offset = self.log.end_offset
        # Kafka's leader writes a LeaderChangeMessage control record first: the high watermark can
        # only pass the epoch start once a record of this epoch is on a majority. At kraft.version
        # 1, while the voter set is still the bootstrap checkpoint's (a dynamic quorum's first
        # epochs) or when it describes this leader otherwise than it runs, the kraft.version and the
        # voter set follow it into the log in the same batch (one proposal: applied together), as
        # Kafka's appendStartOfEpochControlRecords. The LeaderChangeMessage names the epoch's voters
        # and those that granted the election.
        change = LeaderChange(self.node_id, self.voters, granting)
        first = [Entry(self.epoch, change, control=True)]
        voters = self._start_of_epoch_voters() if self.kraft_version >= 1 else None
        if voters is not None:
            first = [Entry(self.epoch, change, control=True, batch_end=False),
                     Entry(self.epoch, encode_kraft_version(self.kraft_version), control=True, batch_end=False),
                     Entry(self.epoch, encode_voters(voters), control=True)]
        self._append(first, now)
        self._flush_at = now + self.config.append_linger_ms
        self._voter_end = {v: -1 for v in self._other_voters}
        self._voter_last_fetch = {v: now for v in self._other_voters}
        self._acknowledged = set()
        logger.info(
            "raft node %d: Leader in epoch %d from offset %d", self.node_id, self.epoch, self._epoch_start_offset
        )

    def _start_of_epoch_voters(self) -> dict[int, Voter] | None:
        """The voter set a new leader writes with its LeaderChangeMessage: the set in effect with
        this node's entry as it runs (Kafka's ``voterNodeNeedsUpdate`` / ``updateVoter``), when the
        log holds no voter set yet (the bootstrap one) or that entry differs; None: nothing."""
        voters = self.voter_set
        me, local = voters.get(self.node_id), self.local_voter
        stale = local is not None and me is not None and me.matches(local.directory_id) and (
            set(me.endpoints) != set(local.endpoints)
            or (me.kraft_min, me.kraft_max) != (local.kraft_min, local.kraft_max))
        if stale:
            assert me is not None and local is not None
            voters = {**voters, self.node_id: Voter(self.node_id, me.directory_id, local.endpoints, local.kraft_min,
                                                    local.kraft_max)}
        elif not (self._bootstrap_base and self.controls.voters_offset < 0):
            return None
        return voters

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

    def _expected(self, src: int, request_id: int) -> bool:
        p = self._pending.get(src)
        if p is None or p[0] != request_id:
            return False
        del self._pending[src]
        return True

    def _send_each(self, targets: Iterable[int], now: int, out: list[Message],
                   make: Callable[[int, int], Message]) -> None:
        """``make(dst, request_id)`` to each of ``targets`` with no request in flight (or whose last
        one timed out); one Vote / BeginQuorumEpoch / EndQuorumEpoch in flight per destination."""
        for v in targets:
            if self._can_send(v, now):
                rid = self._request_id()
                self._pending[v] = (rid, now)
                out.append(make(v, rid))

    def _send_votes(self, now: int, out: list[Message]) -> None:
        pre_vote = self.role is Role.PROSPECTIVE
        end = self.log.end_offset
        last_epoch = self.log.last_epoch
        self._send_each(self._vote_targets(), now, out, lambda v, rid: VoteRequest(
            self.node_id, v, rid, self.epoch, last_epoch, end, pre_vote, self.directory_id, self._directory_of(v)))

    def _directory_of(self, voter: int) -> uuid.UUID | None:
        """A voter's directory id in the voter set in effect (None: a static quorum's voter)."""
        entry = self.voter_set.get(voter)
        return entry.directory_id if entry is not None else None

    def _send_end_epoch(self, now: int, out: list[Message]) -> None:
        directories = tuple(self._directory_of(s) for s in self._successors)
        self._send_each(self._end_targets(), now, out, lambda v, rid: EndQuorumEpochRequest(
            self.node_id, v, rid, self.node_id, self.epoch, self._successors, directories))
