"""The records a new leader writes first, as Kafka 4.4's ``LeaderState.appendStartOfEpochControlRecords``:
a LeaderChangeMessage naming the epoch's voters and the voters that granted the election, followed
in the same batch by the bootstrap KRaftVersionRecord and VotersRecord while the voter set is still
the bootstrap checkpoint's."""

from __future__ import annotations

import random

from kbroker.metadata.metadata_log_format import decode_batch_entries, encode_batches
from kbroker.raft import node_base
from kbroker.raft.log import ControlRecord, Entry, LeaderChange, MemoryLog
from kbroker.raft.node import RaftConfig, RaftNode, Role
from kbroker.raft.simulation import run_seed
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker.raft.wire import decode_entries, encode_entries
from kbroker_protocol.messages.data.leader_change_message import LeaderChangeMessage
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import ControlType, decode_batch
from tests.raft.voter_change_helpers import DIRS, Net


def _lcm_of(data: bytes) -> list[tuple[int, int, list[int], list[int]]]:
    """(base offset, record count, voters, granting voters) of each batch whose first record is a
    LeaderChangeMessage."""
    out = []
    for pos, header in iter_batch_headers(data):
        batch = decode_batch(data, pos)
        first = batch.records[0]
        if header.is_control and first.key is not None and first.key[2:4] == b"\x00\x02":
            lcm = LeaderChangeMessage.decode(memoryview(first.value or b""), 0)
            out.append((header.base_offset, len(batch.records), [v.voter_id for v in lcm.voters],
                        [v.voter_id for v in lcm.granting_voters]))
    return out


def test_the_first_leader_writes_one_batch_naming_its_granting_voters():
    net = Net([1, 2, 3])
    lead = net.settled_leader()
    first = list(lead.log.read(0, 3))
    change = first[0].value
    assert isinstance(change, LeaderChange) and int(change) == lead.node_id
    assert change.voters == (1, 2, 3)
    assert lead.node_id in change.granting and len(change.granting) >= 2 and set(change.granting) <= {1, 2, 3}
    # one proposal: the bootstrap kraft.version and voter set end the LeaderChangeMessage's batch
    assert [e.batch_end for e in first] == [False, False, True]
    assert [isinstance(e.value, ControlRecord) and e.value.type for e in first[1:]] == [
        ControlType.KRAFT_VERSION, ControlType.KRAFT_VOTERS]
    # on the wire (Fetch) and on disk (the metadata log's segments): one control batch of three records
    for data in (encode_entries(0, first), encode_batches(0, first)):
        assert _lcm_of(data) == [(0, 3, [1, 2, 3], list(change.granting))]
    for decoded in (list(decode_entries(encode_entries(0, first), 0)),
                    [e for _o, e in decode_batch_entries(encode_batches(0, first), 0)]):
        assert decoded == first and [e.batch_end for e in decoded] == [False, False, True]
        assert isinstance(decoded[0].value, LeaderChange)
        assert (decoded[0].value.voters, decoded[0].value.granting) == (change.voters, change.granting)
    # every follower holds the same records
    net.commit(2)
    for node in net.nodes.values():
        assert list(node.log.read(0, 3)) == first
        assert node.log.entry(0).value.granting == change.granting


def test_a_later_leader_writes_the_leader_change_alone():
    net = Net([1, 2, 3])
    lead = net.settled_leader()
    net.down.add(lead.node_id)
    net.run(lambda: (n := net.leader()) is not None and n.node_id != lead.node_id)
    new = net.leader()
    assert new is not None
    entry = new.log.entry(new.epoch_start_offset)
    assert entry.batch_end and isinstance(entry.value, LeaderChange)
    # the other live voter granted it (the old leader is down)
    assert entry.value.granting == tuple(sorted({1, 2, 3} - {lead.node_id}))
    data = encode_entries(new.epoch_start_offset, [entry])
    assert _lcm_of(data) == [(new.epoch_start_offset, 1, [1, 2, 3], list(entry.value.granting))]


def test_a_sole_voter_grants_itself():
    cfg = RaftConfig(election_timeout_ms=100, fetch_timeout_ms=200)
    node = RaftNode(1, (1,), MemoryLog(), MemoryQuorumStateStore(), random.Random(1), cfg, now=0)
    node.tick(0)
    assert node.role is Role.LEADER
    entry = node.log.entry(0)
    assert entry == Entry(node.epoch, 1, control=True)
    assert (entry.value.voters, entry.value.granting) == ((1,), (1,))


def test_the_simulation_catches_a_leader_change_without_its_majority(monkeypatch):
    monkeypatch.setattr(node_base, "LeaderChange", lambda leader, voters, granting: LeaderChange(leader, voters, ()))
    failures = [p for p in (run_seed(s, "3-voters") for s in range(5)) if p is not None]
    assert failures and all("names no majority of its voters" in f for f in failures)


def test_a_leader_whose_entry_differs_writes_the_updated_voter_set_with_its_leader_change():
    """Kafka's ``voterNodeNeedsUpdate``: a new leader whose voter set entry is not how it runs (its
    endpoint moved) writes the kraft.version and the updated voter set in its first batch."""
    from kbroker.raft.voters import Voter, control_of

    net = Net([1, 2, 3])
    moved = {n: ("CONTROLLER", "localhost", 9500 + n) for n in (1, 2, 3)}
    for n, node in net.nodes.items():
        node.local_voter = Voter(n, DIRS[n], (moved[n],))
    lead = net.settled_leader()
    first = list(lead.log.read(0, 3))
    assert [e.batch_end for e in first] == [False, False, True]
    voters, _ = control_of(first[2])
    assert voters is not None and voters[lead.node_id].endpoints == (moved[lead.node_id],)
    assert all(voters[n] == net.initial[n] for n in (1, 2, 3) if n != lead.node_id)
    # the next leader's entry is stale too: its first batch updates it
    net.down.add(lead.node_id)
    net.run(lambda: (n := net.leader()) is not None and n.node_id != lead.node_id)
    second = net.leader()
    assert second is not None
    start = second.epoch_start_offset
    batch = list(second.log.read(start, 3))
    assert isinstance(batch[0].value, LeaderChange) and [e.batch_end for e in batch] == [False, False, True]
    voters, _ = control_of(batch[2])
    assert voters is not None
    assert voters[second.node_id].endpoints == (moved[second.node_id],)
    assert voters[lead.node_id].endpoints == (moved[lead.node_id],)  # kept from the first epoch
    # the restarted first leader and the third: the third's entry is updated if it was stale;
    # then every entry is as it runs, and a fourth leader writes its LeaderChangeMessage alone
    net.commit(start + 2)
    net.down.discard(lead.node_id)
    net.start(lead.node_id).local_voter = Voter(lead.node_id, DIRS[lead.node_id], (moved[lead.node_id],))
    previous = second

    def next_leader(previous):
        net.down.add(previous.node_id)
        net.run(lambda: (n := net.leader()) is not None and n.node_id != previous.node_id)
        leader = net.leader()
        assert leader is not None
        net.commit(leader.epoch_start_offset)
        assert leader.voter_set[leader.node_id].endpoints == (moved[leader.node_id],)
        net.down.discard(previous.node_id)
        net.start(previous.node_id).local_voter = Voter(previous.node_id, DIRS[previous.node_id],
                                                        (moved[previous.node_id],))
        return leader

    for _ in range(4):
        if all(previous.voter_set[n].endpoints == (moved[n],) for n in (1, 2, 3)):
            break
        previous = next_leader(previous)
    assert all(previous.voter_set[n].endpoints == (moved[n],) for n in (1, 2, 3))
    last = next_leader(previous)
    entry = last.log.entry(last.epoch_start_offset)
    assert isinstance(entry.value, LeaderChange) and entry.batch_end
