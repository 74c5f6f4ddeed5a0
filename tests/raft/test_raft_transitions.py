"""Single transitions of the Raft core: (state, message or time) -> (messages out, next state, persisted state)."""

from __future__ import annotations

import random

import pytest

from kbroker.raft import (
    BeginQuorumEpochRequest,
    ElectionState,
    EndQuorumEpochRequest,
    Entry,
    FetchRequest,
    FetchResponse,
    MemoryLog,
    NotLeaderError,
    RaftConfig,
    RaftNode,
    Role,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.node import RaftSafetyError
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker_protocol.errors import ErrorCode

CFG = RaftConfig()
VOTERS = (1, 2, 3)
ET = CFG.election_timeout_ms
FT = CFG.fetch_timeout_ms


def make(node_id=1, voters=VOTERS, entries=(), state=None, flushed=True, now=0):
    log = MemoryLog()
    log.append(list(entries))
    if flushed:
        log.flush()
    store = MemoryQuorumStateStore()
    if state is not None:
        store.write(state)
    return RaftNode(node_id, voters, log, store, random.Random(7), CFG, now=now)


def follower(node_id=1, leader=2, epoch=5, entries=(), now=0):
    return make(node_id, entries=entries, state=ElectionState(epoch, leader_id=leader), now=now)


def leader(node_id=1, epoch=5, entries=(), voters=VOTERS, out=None):
    """A node elected leader of ``epoch`` (persisted candidacy at epoch-1 -> pre-vote -> vote)."""
    n = make(node_id, voters=voters, entries=entries, state=ElectionState(epoch - 1, voted_id=node_id))
    assert n.role is Role.PROSPECTIVE
    pre_votes = n.tick(0)
    votes = []
    for m in pre_votes:
        assert m.pre_vote
        votes += n.handle(VoteResponse(m.dst, node_id, m.request_id, 0, -1, epoch - 1, True), 0)
    assert n.role is Role.CANDIDATE and n.epoch == epoch
    assert {m.dst for m in votes} == set(voters) - {node_id} and not any(m.pre_vote for m in votes)
    for m in votes:
        sent = n.handle(VoteResponse(m.dst, node_id, m.request_id, 0, -1, epoch, True), 0)
        if out is not None:
            out.extend(sent)
    assert n.role is Role.LEADER
    return n


def one(out, cls):
    msgs = [m for m in out if isinstance(m, cls)]
    assert len(msgs) == 1, out
    return msgs[0]


# ---------------------------------------------------------------- Vote (table)

E1 = Entry(1, "a")
E3 = Entry(3, "b")

VOTE_CASES = [
    # (name, node factory, request, expected error, granted, role after, epoch after, voted after)
    ("fresh voter grants an up-to-date candidate", lambda: make(),
     VoteRequest(2, 1, 9, 1, 0, 0, False), 0, True, Role.UNATTACHED, 1, 2),
    ("a vote for a candidate with a shorter log of the same epoch is refused",
     lambda: make(entries=[E1, E1], state=ElectionState(1)),
     VoteRequest(2, 1, 9, 2, 1, 1, False), 0, False, Role.UNATTACHED, 2, -1),
    ("a vote for a candidate whose last epoch is older is refused",
     lambda: make(entries=[E1, E3], state=ElectionState(3)),
     VoteRequest(2, 1, 9, 4, 1, 5, False), 0, False, Role.UNATTACHED, 4, -1),
    ("one vote per epoch: already voted for 3", lambda: make(state=ElectionState(4, voted_id=3)),
     VoteRequest(2, 1, 9, 4, 0, 0, False), 0, False, Role.UNATTACHED, 4, 3),
    ("the same candidate asking again gets the vote again", lambda: make(state=ElectionState(4, voted_id=2)),
     VoteRequest(2, 1, 9, 4, 0, 0, False), 0, True, Role.UNATTACHED, 4, 2),
    ("a request from an older epoch is fenced", lambda: make(state=ElectionState(4)),
     VoteRequest(2, 1, 9, 3, 0, 0, False), ErrorCode.FENCED_LEADER_EPOCH, False, Role.UNATTACHED, 4, -1),
    ("a candidate's last epoch must be below its epoch",
     lambda: make(), VoteRequest(2, 1, 9, 2, 2, 5, False), ErrorCode.INVALID_REQUEST, False, Role.UNATTACHED, 0, -1),
    ("a pre-vote's last epoch may equal its epoch",
     lambda: make(state=ElectionState(2)), VoteRequest(2, 1, 9, 2, 2, 5, True), 0, True, Role.UNATTACHED, 2, -1),
    ("a request meant for another replica moves the epoch but is refused", lambda: make(),
     VoteRequest(2, 5, 9, 1, 0, 0, False), ErrorCode.INVALID_VOTER_KEY, False, Role.UNATTACHED, 1, -1),
    ("a request with a negative replica id", lambda: make(),
     VoteRequest(-1, 1, 9, 1, 0, 0, False), ErrorCode.INVALID_REQUEST, False, Role.UNATTACHED, 0, -1),
    # Kafka 4.4 (KIP-853) does not check the sender against the voter set: a candidate only counts
    # the answers of its voters.
    ("a request from a replica outside the voter set", lambda: make(),
     VoteRequest(7, 1, 9, 1, 0, 0, False), 0, True, Role.UNATTACHED, 1, 7),
    ("a follower refuses a vote in its epoch", lambda: follower(leader=3, epoch=4),
     VoteRequest(2, 1, 9, 4, 0, 0, False), 0, False, Role.FOLLOWER, 4, -1),
    ("a follower that has not fetched yet grants a pre-vote", lambda: follower(leader=3, epoch=4),
     VoteRequest(2, 1, 9, 4, 0, 0, True), 0, True, Role.FOLLOWER, 4, -1),
    ("a vote of a higher epoch makes a follower unattached and voted", lambda: follower(leader=3, epoch=4),
     VoteRequest(2, 1, 9, 5, 0, 0, False), 0, True, Role.UNATTACHED, 5, 2),
    ("a pre-vote of a higher epoch moves the epoch but records no vote", lambda: follower(leader=3, epoch=4),
     VoteRequest(2, 1, 9, 5, 0, 0, True), 0, True, Role.UNATTACHED, 5, -1),
    ("a leader refuses everything in its epoch", lambda: leader(epoch=5),
     VoteRequest(2, 1, 9, 5, 0, 0, True), 0, False, Role.LEADER, 5, 1),
    ("a restarted candidate keeps its own vote",
     lambda: make(state=ElectionState(4, voted_id=1)), VoteRequest(2, 1, 9, 4, 0, 0, False), 0, False,
     Role.PROSPECTIVE, 4, 1),
]


@pytest.mark.parametrize("case", VOTE_CASES, ids=[c[0] for c in VOTE_CASES])
def test_vote_request(case):
    _, factory, req, error, granted, role, epoch, voted = case
    node = factory()
    writes_before = node.store.writes
    out = node.handle(req, 10)
    resp = one(out, VoteResponse)
    assert (resp.error, resp.vote_granted) == (error, granted)
    assert (resp.dst, resp.request_id) == (req.src, req.request_id)
    assert (node.role, node.epoch, node.voted_id) == (role, epoch, voted)
    assert resp.leader_epoch == node.epoch
    stored = node.store.read()
    # whatever the answer depends on is durable before it is sent
    assert stored.epoch == node.epoch and stored.voted_id == node.voted_id
    if req.pre_vote:
        assert stored.voted_id != req.src
    if error != 0 and node.epoch == req.replica_epoch - 1:
        assert node.store.writes == writes_before


def test_follower_that_hears_from_its_leader_refuses_pre_votes():
    node = follower(leader=2, epoch=4)
    fetch = one(node.tick(0), FetchRequest)
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 4, 0, 0, ()), 5)
    resp = one(node.handle(VoteRequest(3, 1, 1, 4, 0, 0, True), 6), VoteResponse)
    assert not resp.vote_granted and resp.leader_id == 2


# ---------------------------------------------------------------- elections and timers

def test_election_timeout_starts_a_pre_vote_without_touching_the_epoch():
    node = make(state=ElectionState(3))
    assert node.tick(ET - 1) == [] and node.role is Role.UNATTACHED
    out = node.tick(2 * ET)
    assert node.role is Role.PROSPECTIVE and node.epoch == 3
    reqs = sorted(out, key=lambda m: m.dst)
    assert [(m.dst, m.replica_epoch, m.pre_vote) for m in reqs] == [(2, 3, True), (3, 3, True)]
    assert node.store.read() == ElectionState(3)


def test_pre_vote_majority_makes_a_candidate_that_persists_its_vote_before_asking():
    node = make(state=ElectionState(3))
    out = node.tick(2 * ET)
    pre = next(m for m in out if m.dst == 2)
    reqs = node.handle(VoteResponse(2, 1, pre.request_id, 0, -1, 3, True), 2 * ET)
    assert node.role is Role.CANDIDATE and node.epoch == 4
    assert node.store.read() == ElectionState(4, voted_id=1)
    assert {(m.dst, m.replica_epoch, m.pre_vote) for m in reqs} == {(2, 4, False), (3, 4, False)}


def test_rejected_pre_votes_from_a_majority_back_off_and_retry():
    node = make(state=ElectionState(3), voters=(1, 2, 3))
    out = node.tick(2 * ET)
    for m in out:
        node.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 3, False), 2 * ET)
    assert node.role is Role.PROSPECTIVE
    retry_at = node.next_deadline()
    assert retry_at <= 2 * ET + CFG.election_backoff_max_ms
    out = node.tick(retry_at)
    assert node.role is Role.PROSPECTIVE and node.epoch == 3 and len(out) == 2


def test_a_new_leader_appends_a_leader_change_record_and_begins_its_epoch():
    out = []
    node = leader(epoch=5, entries=[E1, E1], out=out)
    assert node.log.entry(2) == Entry(5, 1, control=True)
    assert node.store.read() == ElectionState(5, leader_id=1, voted_id=1)
    begins = [m for m in out if isinstance(m, BeginQuorumEpochRequest)]
    assert {(m.dst, m.leader_epoch, m.leader_id) for m in begins} == {(2, 5, 1), (3, 5, 1)}


def test_single_voter_elects_itself_and_commits_after_flushing():
    node = make(voters=(1,))
    node.tick(2 * ET)
    assert node.role is Role.LEADER and node.epoch == 1
    off = node.propose(["x"], 2 * ET)
    assert node.high_watermark == 0  # nothing is flushed yet
    node.tick(2 * ET + CFG.append_linger_ms)
    assert node.high_watermark == off + 1
    assert [(o, e.value) for o, e in node.poll_committed()] == [(0, 1), (1, "x")]
    assert node.poll_committed() == []


def test_fetch_timeout_makes_a_follower_prospective():
    node = follower(leader=2, epoch=4)
    node.tick(0)
    node.tick(FT - 1)
    assert node.role is Role.FOLLOWER
    out = node.tick(FT)
    assert node.role is Role.PROSPECTIVE and node.leader_id == 2
    assert all(isinstance(m, VoteRequest) and m.pre_vote for m in out) and len(out) == 2


def test_a_prospective_that_loses_goes_back_to_the_leader_it_knew():
    node = follower(leader=2, epoch=4)
    node.tick(FT)
    assert node.role is Role.PROSPECTIVE
    node.tick(FT + 2 * ET)
    assert node.role is Role.FOLLOWER and node.leader_id == 2 and node.epoch == 4


def test_candidate_that_times_out_returns_to_pre_vote_in_its_epoch():
    node = make(state=ElectionState(3))
    out = node.tick(2 * ET)
    for m in out:
        node.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 3, True), 2 * ET)
    assert node.role is Role.CANDIDATE
    node.tick(10 * ET)
    assert node.role is Role.PROSPECTIVE and node.epoch == 4 and node.voted_id == 1


# ---------------------------------------------------------------- BeginQuorumEpoch / EndQuorumEpoch

def test_begin_quorum_epoch_of_a_higher_epoch_makes_a_follower():
    node = make(state=ElectionState(3))
    resp = node.handle(BeginQuorumEpochRequest(2, 1, 4, 2, 6), 0)[0]
    assert resp.error == 0 and node.role is Role.FOLLOWER and node.leader_id == 2 and node.epoch == 6
    assert node.store.read() == ElectionState(6, leader_id=2)
    stale = node.handle(BeginQuorumEpochRequest(3, 1, 5, 3, 5), 0)[0]
    assert stale.error == ErrorCode.FENCED_LEADER_EPOCH and stale.leader_id == 2 and stale.leader_epoch == 6


def test_two_leaders_in_one_epoch_are_detected():
    node = follower(leader=2, epoch=6)
    with pytest.raises(RaftSafetyError):
        node.handle(BeginQuorumEpochRequest(3, 1, 5, 3, 6), 0)


def test_resign_sends_end_quorum_epoch_with_successors_by_fetch_offset():
    node = leader(epoch=5, entries=[E1, E1])
    node.tick(CFG.append_linger_ms)
    node.handle(FetchRequest(3, 1, 1, 5, 2, 1), 10)
    node.handle(FetchRequest(2, 1, 2, 5, 1, 1), 10)
    out = node.resign(20)
    assert node.role is Role.RESIGNED
    ends = [m for m in out if isinstance(m, EndQuorumEpochRequest)]
    assert {m.dst for m in ends} == {2, 3}
    assert all(m.preferred_successors == (3, 2) and m.leader_epoch == 5 for m in ends)
    with pytest.raises(NotLeaderError):
        node.propose(["late"], 21)


def test_end_quorum_epoch_lets_the_first_successor_stand_at_once():
    node = follower(leader=2, epoch=5)
    fetch = one(node.tick(0), FetchRequest)
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 0, 0, ()), 1)
    out = node.handle(EndQuorumEpochRequest(2, 1, 3, 2, 5, (1, 3)), 2)
    assert node.role is Role.PROSPECTIVE
    assert sorted((m.dst, m.pre_vote) for m in out if isinstance(m, VoteRequest)) == [(2, True), (3, True)]
    # the other successor waits, but now grants pre-votes since the leader is gone
    other = follower(node_id=3, leader=2, epoch=5)
    f = one(other.tick(0), FetchRequest)
    other.handle(FetchResponse(2, 3, f.request_id, 0, 2, 5, 0, 0, ()), 1)
    other.handle(EndQuorumEpochRequest(2, 3, 3, 2, 5, (1, 3)), 2)
    assert other.role is Role.FOLLOWER
    assert one(other.handle(VoteRequest(1, 3, 4, 5, 0, 0, True), 3), VoteResponse).vote_granted
    other.tick(2 + CFG.election_backoff_max_ms // 2 - 1)
    assert other.role is Role.FOLLOWER
    other.tick(2 + CFG.election_backoff_max_ms // 2)
    assert other.role is Role.PROSPECTIVE


def test_leader_that_loses_contact_with_a_majority_resigns():
    node = leader(epoch=5)
    limit = int(FT * 1.5)
    node.handle(FetchRequest(2, 1, 1, 5, 0, 0), limit - 10)
    node.tick(limit + 1)
    assert node.role is Role.LEADER
    node.tick(2 * limit)
    assert node.role is Role.RESIGNED


# ---------------------------------------------------------------- Fetch on the leader

FETCH_ERROR_CASES = [
    ("older epoch", lambda: follower(leader=2, epoch=5), FetchRequest(3, 1, 1, 4, 0, 0),
     ErrorCode.FENCED_LEADER_EPOCH),
    ("newer epoch", lambda: follower(leader=2, epoch=5), FetchRequest(3, 1, 1, 6, 0, 0),
     ErrorCode.UNKNOWN_LEADER_EPOCH),
    ("not the leader", lambda: follower(leader=2, epoch=5), FetchRequest(3, 1, 1, 5, 0, 0),
     ErrorCode.NOT_LEADER_OR_FOLLOWER),
    ("negative offset", lambda: leader(epoch=5), FetchRequest(3, 1, 1, 5, -1, 0), ErrorCode.INVALID_REQUEST),
]


@pytest.mark.parametrize("case", FETCH_ERROR_CASES, ids=[c[0] for c in FETCH_ERROR_CASES])
def test_fetch_errors(case):
    _, factory, req, error = case
    node = factory()
    resp = one(node.handle(req, 0), FetchResponse)
    assert resp.error == error and resp.records == ()
    assert (resp.leader_id, resp.leader_epoch) == (node.leader_id, node.epoch)


def test_leader_answers_a_diverging_fetch_with_its_end_of_that_epoch():
    # leader log: epochs 1,1,3,3 + LeaderChange(5); the follower has 1,1,2,2,2 (epoch 2 never committed)
    node = leader(epoch=5, entries=[E1, E1, E3, E3])
    resp = one(node.handle(FetchRequest(2, 1, 1, 5, 5, 2), 0), FetchResponse)
    assert (resp.error, resp.diverging_epoch, resp.diverging_end_offset, resp.records) == (0, 1, 2, ())
    # a follower ahead in an epoch the leader has: truncate to the leader's end of that epoch
    resp = one(node.handle(FetchRequest(2, 1, 2, 5, 6, 3), 0), FetchResponse)
    assert (resp.diverging_epoch, resp.diverging_end_offset) == (3, 4)
    # matching: records from the fetch offset
    resp = one(node.handle(FetchRequest(2, 1, 3, 5, 2, 1), 0), FetchResponse)
    assert resp.diverging_epoch == -1 and resp.base_offset == 2
    assert resp.records == (E3, E3, Entry(5, 1, control=True))


def test_follower_truncates_on_diverging_epoch_and_refetches():
    e2 = Entry(2, "z")
    node = follower(leader=2, epoch=5, entries=[E1, E1, e2, e2, e2])
    fetch = one(node.tick(0), FetchRequest)
    assert (fetch.fetch_offset, fetch.last_fetched_epoch) == (5, 2)
    out = node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 0, 5, (), 1, 2), 1)
    assert node.log.end_offset == 2
    fetch = one(out, FetchRequest)
    assert (fetch.fetch_offset, fetch.last_fetched_epoch) == (2, 1)


def test_follower_refuses_to_truncate_committed_entries():
    node = follower(leader=2, epoch=5, entries=[E1, E1, E3])
    fetch = one(node.tick(0), FetchRequest)
    out = node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 3, 3, ()), 1)
    assert node.high_watermark == 3
    fetch = one(out, FetchRequest)  # an empty answer: fetch again at once (the leader long-polls)
    assert (fetch.fetch_offset, fetch.high_watermark, fetch.max_wait_ms) == (3, 3, CFG.fetch_max_wait_ms)
    with pytest.raises(RaftSafetyError):
        node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 3, 3, (), 1, 2), 600)


def test_follower_appends_and_reports_only_flushed_offsets():
    node = follower(leader=2, epoch=5)
    fetch = one(node.tick(0), FetchRequest)
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 1, 0, (E1, E3)), 1)
    assert node.log.end_offset == 2 and node.log.flushed_end == 0
    assert node.high_watermark == 1
    fetch = one(node.tick(1 + CFG.append_linger_ms), FetchRequest)
    assert node.log.flushed_end == 2 and fetch.fetch_offset == 2 and fetch.last_fetched_epoch == 3


def test_responses_that_are_not_expected_are_ignored():
    node = follower(leader=2, epoch=5)
    fetch = one(node.tick(0), FetchRequest)
    node.handle(FetchResponse(2, 1, fetch.request_id + 1, 0, 2, 5, 0, 0, (E1,)), 1)
    assert node.log.end_offset == 0
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 0, 0, (E1,)), 1)
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 0, 0, (E1,)), 1)  # a duplicate
    assert node.log.end_offset == 1


# ---------------------------------------------------------------- high watermark

def test_high_watermark_needs_a_majority_of_flushed_offsets():
    node = leader(epoch=2, voters=(1, 2, 3, 4, 5))
    off = node.propose(["a", "b"], 0)
    assert off == 2
    node.handle(FetchRequest(2, 1, 1, 2, 3, 2), 1)
    node.handle(FetchRequest(3, 1, 2, 2, 3, 2), 1)
    assert node.high_watermark == 0  # the leader itself has not flushed
    node.tick(CFG.append_linger_ms)
    assert node.high_watermark == 3
    node.handle(FetchRequest(4, 1, 3, 2, 1, 2), 5)
    assert node.high_watermark == 3  # never goes back


def test_entries_of_older_epochs_commit_only_with_one_of_the_current_epoch():
    # Raft's "figure 8": the leader's old entries are on a majority, but the leader change record
    # of its epoch is not: the high watermark stays put.
    node = leader(epoch=5, entries=[E1, E3])
    node.tick(CFG.append_linger_ms)
    node.handle(FetchRequest(2, 1, 1, 5, 2, 3), 5)
    assert node.high_watermark == 0
    node.handle(FetchRequest(2, 1, 2, 5, 3, 5), 6)
    assert node.high_watermark == 3


def test_observers_do_not_count_for_the_high_watermark():
    node = leader(epoch=2)
    node.tick(CFG.append_linger_ms)
    node.handle(FetchRequest(100, 1, 1, 2, 1, 2), 5)
    assert node.high_watermark == 0
    node.handle(FetchRequest(2, 1, 2, 2, 1, 2), 5)
    assert node.high_watermark == 1


def test_propose_on_a_follower_is_refused_with_the_leader():
    node = follower(leader=2, epoch=5)
    with pytest.raises(NotLeaderError) as e:
        node.propose(["x"], 0)
    assert (e.value.leader_id, e.value.epoch) == (2, 5)


# ---------------------------------------------------------------- restarts

def test_restart_keeps_the_vote_of_the_epoch():
    node = make(state=ElectionState(4, voted_id=3))
    assert node.role is Role.UNATTACHED and node.voted_id == 3
    resp = one(node.handle(VoteRequest(2, 1, 1, 4, 3, 100, False), 0), VoteResponse)
    assert not resp.vote_granted


def test_restarted_leader_resigns_and_never_leads_that_epoch_again():
    node = make(state=ElectionState(6, leader_id=1, voted_id=1))
    assert node.role is Role.RESIGNED and node.epoch == 6
    assert not one(node.handle(VoteRequest(2, 1, 1, 6, 0, 0, True), 0), VoteResponse).vote_granted
    node.tick(10 * ET)
    assert node.role is Role.PROSPECTIVE and node.epoch == 6 and node.leader_id == -1
    node.tick(20 * ET)  # the pre-vote round timed out: another one, not a follower of itself
    assert node.role is Role.PROSPECTIVE and node.leader_id == -1
    assert node.store.read() == ElectionState(6, leader_id=1, voted_id=1)


# ---------------------------------------------------------------- observers

def test_observer_finds_the_leader_through_the_voters_and_never_votes():
    node = make(node_id=100)
    fetch = one(node.tick(0), FetchRequest)
    assert fetch.dst in VOTERS and fetch.current_leader_epoch == 0
    out = node.handle(
        FetchResponse(fetch.dst, 100, fetch.request_id, ErrorCode.FENCED_LEADER_EPOCH, 3, 7, 0, 0), 1
    )
    assert node.role is Role.FOLLOWER and node.leader_id == 3 and node.epoch == 7
    assert one(out, FetchRequest).dst == 3
    node.tick(10 * FT)
    assert node.role is Role.UNATTACHED  # an observer never stands for election
    assert one(node.tick(10 * FT + CFG.request_timeout_ms), FetchRequest).dst in VOTERS  # retried
    node.tick(100 * FT)
    assert node.role is Role.UNATTACHED


# ---------------------------------------------------------------- transport failures

def test_failed_fetch_is_retried_after_the_retry_backoff():
    node = follower(leader=2, epoch=5)
    fetch = one(node.tick(0), FetchRequest)
    assert node.request_failed(2, fetch.request_id + 1, 10) == []  # not ours: nothing changes
    assert node.tick(10 + CFG.retry_backoff_ms) == []
    assert node.request_failed(2, fetch.request_id, 10) == []
    assert node.tick(10 + CFG.retry_backoff_ms - 1) == []
    again = one(node.tick(10 + CFG.retry_backoff_ms), FetchRequest)
    assert again.request_id != fetch.request_id and again.dst == 2


def test_failed_vote_request_is_resent_after_the_retry_backoff():
    node = make(state=ElectionState(3))
    out = node.tick(2 * ET)
    to2 = next(m for m in out if m.dst == 2)
    node.request_failed(2, to2.request_id, 2 * ET + 5)
    assert node.tick(2 * ET + 5 + CFG.retry_backoff_ms - 1) == []
    again = one(node.tick(2 * ET + 5 + CFG.retry_backoff_ms), VoteRequest)
    assert again.dst == 2 and again.pre_vote and again.request_id != to2.request_id


# ---------------------------------------------------------------- long poll

def caught_up_leader():
    """Leader of epoch 5 (voters 1, 2, 3) whose LeaderChange record is committed and known to 2."""
    node = leader(epoch=5)
    node.tick(CFG.append_linger_ms)
    node.handle(FetchRequest(2, 1, 1, 5, 1, 5), 30)
    assert node.high_watermark == 1
    return node


def test_leader_holds_a_fetch_with_nothing_new_until_records_arrive():
    node = caught_up_leader()
    assert node.handle(FetchRequest(2, 1, 2, 5, 1, 5, 500, 1), 40) == []
    assert node.tick(100) == [] and node.next_deadline() <= 540
    node.propose(["x"], 120)
    resp = one(node.tick(121), FetchResponse)
    assert (resp.request_id, resp.base_offset, resp.records) == (2, 1, (Entry(5, "x"),))


def test_held_fetch_is_answered_empty_when_the_wait_ends():
    node = caught_up_leader()
    assert node.handle(FetchRequest(3, 1, 2, 5, 1, 5, 500, 1), 40) == []
    assert node.tick(539) == []
    resp = one(node.tick(540), FetchResponse)
    assert (resp.request_id, resp.error, resp.records, resp.high_watermark) == (2, 0, (), 1)


def test_fetch_is_answered_at_once_when_the_fetcher_is_behind_on_the_high_watermark():
    node = caught_up_leader()
    resp = one(node.handle(FetchRequest(3, 1, 2, 5, 1, 5, 500, 0), 40), FetchResponse)
    assert resp.high_watermark == 1 and resp.records == ()


def test_held_fetch_is_answered_when_the_high_watermark_moves():
    node = caught_up_leader()
    node.propose(["x"], 40)
    node.tick(40 + CFG.append_linger_ms)
    # an observer (not counted) that has x and the leader's high watermark 1 is held
    assert node.handle(FetchRequest(100, 1, 2, 5, 2, 5, 500, 1), 50) == []
    out = node.handle(FetchRequest(2, 1, 3, 5, 2, 5, 500, 1), 60)  # voter 2 has x: hw -> 2
    assert node.high_watermark == 2
    held = [m for m in out if isinstance(m, FetchResponse) and m.dst == 100]
    assert len(held) == 1 and held[0].high_watermark == 2


def test_held_fetch_is_answered_when_the_leader_steps_down():
    node = caught_up_leader()
    assert node.handle(FetchRequest(3, 1, 2, 5, 1, 5, 500, 1), 40) == []
    out = node.handle(BeginQuorumEpochRequest(2, 1, 9, 2, 6), 50)
    resp = one(out, FetchResponse)
    assert (resp.dst, resp.error, resp.leader_id, resp.leader_epoch) == (3, ErrorCode.FENCED_LEADER_EPOCH, 2, 6)


def test_a_newer_fetch_from_the_same_replica_releases_the_held_one():
    node = caught_up_leader()
    assert node.handle(FetchRequest(3, 1, 2, 5, 1, 5, 500, 1), 40) == []
    out = node.handle(FetchRequest(3, 1, 3, 5, 1, 5, 500, 1), 45)
    assert [m.request_id for m in out] == [2]
