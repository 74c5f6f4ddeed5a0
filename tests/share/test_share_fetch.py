"""ShareFetch and ShareAcknowledge at the wire: acquisition, acknowledgement, share sessions, lock
expiry and redelivery with the manual clock, the delivery count limit."""

from __future__ import annotations

import uuid

import pytest
from share_wire import (
    ACCEPT,
    GAP,
    REJECT,
    RELEASE,
    RENEW,
    E,
    ShareClient,
    acquired,
    offsets_of,
    part,
    topic_id,
    values,
)
from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker():
    with BrokerThread({"group.share.delivery.count.limit": "3"}, clock="manual") as b:
        yield b


def _setup(wire, partitions: int = 1, members: int = 1):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic, partitions=partitions)
    tid = topic_id(wire, topic)
    clients = []
    for _ in range(members):
        c = ShareClient(wire, group)
        c.join([topic])
        first = c.fetch(tid)  # opens the session; the share partition starts at the end (latest)
        assert first.error_code == E.NONE
        assert first.responses == []  # nothing to deliver: no partition listed (as Kafka)
        clients.append(c)
    return group, topic, tid, clients


def test_fetch_acquires_and_accept_completes(broker, wire):
    _g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 5)
    resp = c.fetch(tid)
    assert resp.error_code == E.NONE and resp.acquisition_lock_timeout_ms == 30000
    assert acquired(resp) == [(0, 4, 1)]
    assert values(part(resp).records) == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert part(resp).current_leader.leader_id == broker.broker.node_id
    ack = c.ack(tid, [(0, 4, [ACCEPT])])
    assert ack.error_code == E.NONE and part(ack).error_code == E.NONE
    # Everything acknowledged: nothing more to deliver, and the SPSO moved past it.
    again = c.fetch(tid)
    assert again.error_code == E.NONE and again.responses == []  # nothing new: no partition to report
    sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(_g, tid, 0)])
    assert (sp.start_offset, sp.in_flight_count()) == (5, 0)


def test_records_acquired_by_one_member_are_not_given_to_another(wire):
    _g, topic, tid, (a, b) = _setup(wire, members=2)
    produce(wire, topic, 0, 4)
    assert acquired(a.fetch(tid)) == [(0, 3, 1)]
    resp = b.fetch(tid)
    assert resp.responses == [] or part(resp).acquired_records == []
    # b may not acknowledge a's records.
    bad = b.ack(tid, [(0, 1, [ACCEPT])])
    assert (part(bad).error_code, part(bad).error_message) == (E.INVALID_RECORD_STATE,
                                                               "Member is not the owner of offset")
    # a releases two: b gets them, delivered a second time.
    assert part(a.ack(tid, [(2, 3, [RELEASE])])).error_code == E.NONE
    assert acquired(b.fetch(tid)) == [(2, 3, 2)]


def test_per_offset_types_and_piggybacked_acks(broker, wire):
    g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 4)
    assert acquired(c.fetch(tid)) == [(0, 3, 1)]
    # Accept 0, release 1, reject 2, accept 3, in a ShareFetch that fetches again.
    resp = c.fetch(tid, acks=[(0, 3, [ACCEPT, RELEASE, REJECT, ACCEPT])])
    assert resp.error_code == E.NONE
    p = part(resp)
    assert p.acknowledge_error_code == E.NONE
    assert acquired(resp) == [(1, 1, 2)]  # only the released record comes back
    assert offsets_of(p.records)[:4] == [0, 1, 2, 3]  # the whole batch carrying it
    sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(g, tid, 0)])
    assert sp.start_offset == 1
    assert {o: (r.state, r.delivery_count) for o, r in sp.states.items()} == {1: (1, 2), 2: (4, 1), 3: (2, 1)}


def test_acknowledge_errors(wire):
    _g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 3)
    c.fetch(tid)
    # Malformed batches are INVALID_REQUEST for the partition.
    assert part(c.ack(tid, [(2, 1, [ACCEPT])])).error_code == E.INVALID_REQUEST  # first > last
    assert part(c.ack(tid, [(0, 2, [ACCEPT, ACCEPT])])).error_code == E.INVALID_REQUEST  # types != offsets
    assert part(c.ack(tid, [(0, 0, [7])])).error_code == E.INVALID_REQUEST  # no such type
    assert part(c.ack(tid, [(1, 2, [ACCEPT]), (0, 0, [ACCEPT])])).error_code == E.INVALID_REQUEST  # not ascending
    assert part(c.ack(tid, [(0, 0, [RENEW])])).error_code == E.INVALID_REQUEST  # v1 has no RENEW
    assert part(c.ack(tid, [(2, 1, [ACCEPT])])).error_message is None  # KafkaApis' checks: the code only
    # Records past what was acquired: nothing changes, INVALID_REQUEST with Kafka's message.
    past = part(c.ack(tid, [(0, 5, [ACCEPT])]))
    assert (past.error_code, past.error_message) == (
        E.INVALID_REQUEST, "Batch record not found. The last offset in request is past acquired records.")
    past = part(c.ack(tid, [(4, 5, [ACCEPT])]))
    assert (past.error_code, past.error_message) == (
        E.INVALID_REQUEST, "Batch record not found. The first offset in request is past acquired records.")
    assert part(c.ack(tid, [(0, 2, [ACCEPT])])).error_code == E.NONE  # all were still acquired
    done = part(c.ack(tid, [(0, 0, [ACCEPT])]))  # already acknowledged, below the SPSO now
    assert (done.error_code, done.error_message) == (
        E.INVALID_RECORD_STATE, "Batch record not found. The request batch offsets are not found in the cache.")
    other = uuid.uuid4()
    resp = c.ack(other, [(0, 0, [ACCEPT])])
    assert (part(resp).error_code, part(resp).error_message) == (E.UNKNOWN_TOPIC_ID, None)


def test_fetch_of_a_partition_the_topic_does_not_have(wire):
    """Read from the partition's leader only, as Kafka's ReplicaManager.getPartitionOrError: a
    partition the metadata does not have is UNKNOWN_TOPIC_OR_PARTITION, with no leader."""
    _g, topic, tid, (c,) = _setup(wire)
    resp = c.fetch(tid, 7)
    assert resp.error_code == E.NONE
    missing = part(resp, 7)
    assert missing.error_code == E.UNKNOWN_TOPIC_OR_PARTITION and missing.acquired_records == []
    assert (missing.current_leader.leader_id, missing.current_leader.leader_epoch) == (-1, -1)
    produce(wire, topic, 0, 2)
    assert acquired(c.fetch(tid)) == [(0, 1, 1)]  # the topic's own partition still delivers


def test_share_session_epochs(wire):
    _g, topic, tid, (c,) = _setup(wire)
    # No session for this member.
    stranger = ShareClient(wire, c.group)
    assert stranger.fetch(tid, epoch=3).error_code == E.SHARE_SESSION_NOT_FOUND
    assert stranger.fetch(tid, epoch=-1).error_code == E.SHARE_SESSION_NOT_FOUND
    assert stranger.ack(tid, [(0, 0, [ACCEPT])], epoch=1).error_code == E.SHARE_SESSION_NOT_FOUND
    # Wrong epochs.
    assert c.fetch(tid, epoch=c.epoch + 1).error_code == E.INVALID_SHARE_SESSION_EPOCH
    assert c.ack(tid, [(0, 0, [ACCEPT])], epoch=0).error_code == E.INVALID_SHARE_SESSION_EPOCH
    assert c.fetch(tid).error_code == E.NONE  # the right epoch still works after the errors
    # Acknowledgements in a request opening a session are refused.
    assert c.fetch(tid, epoch=0, acks=[(0, 0, [ACCEPT])]).error_code == E.INVALID_REQUEST
    # Invalid member and group ids.
    bad = ShareClient(wire, c.group, member="")
    resp = bad.fetch(tid)
    assert (resp.error_code, resp.error_message) == (E.INVALID_REQUEST, None)  # Kafka: the code only
    nogroup = ShareClient(wire, None)  # type: ignore[arg-type]
    resp = nogroup.fetch(tid)
    assert (resp.error_code, resp.error_message) == (E.INVALID_REQUEST, None)


def test_closing_the_session_releases_records(wire):
    _g, topic, tid, (a, b) = _setup(wire, members=2)
    produce(wire, topic, 0, 3)
    assert acquired(a.fetch(tid)) == [(0, 2, 1)]
    # Final epoch: acknowledge one, the rest go back (their delivery count is not used up).
    final = a.fetch(tid, epoch=-1, acks=[(0, 0, [ACCEPT])])
    assert final.error_code == E.NONE and part(final).acknowledge_error_code == E.NONE
    assert acquired(b.fetch(tid)) == [(1, 2, 2)]
    assert a.fetch(tid, epoch=-1).error_code == E.SHARE_SESSION_NOT_FOUND


def test_lock_expiry_redelivers_and_the_limit_archives(broker, wire):
    g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 2)
    assert acquired(c.fetch(tid)) == [(0, 1, 1)]
    broker.advance(29_999)
    resp = c.fetch(tid)
    assert resp.responses == [] or part(resp).acquired_records == []  # still locked
    broker.advance(1)
    assert acquired(c.fetch(tid)) == [(0, 1, 2)]
    # The acknowledgement of an expired lock fails; the record is someone else's to take.
    c.heartbeat()
    broker.advance(30_000)
    assert part(c.ack(tid, [(0, 1, [ACCEPT])])).error_code == E.INVALID_RECORD_STATE
    assert acquired(c.fetch(tid)) == [(0, 1, 3)]
    c.heartbeat()
    broker.advance(30_000)  # the third delivery was the last (group.share.delivery.count.limit=3)
    resp = c.fetch(tid)
    assert resp.responses == [] or part(resp).acquired_records == []
    sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(g, tid, 0)])
    assert (sp.start_offset, sp.in_flight_count()) == (2, 0)
    produce(wire, topic, 0, 1)
    assert acquired(c.fetch(tid)) == [(2, 2, 1)]


def test_release_at_the_limit_archives(broker, wire):
    g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 1)
    for delivery in (1, 2, 3):
        assert acquired(c.fetch(tid)) == [(0, 0, delivery)]
        assert part(c.ack(tid, [(0, 0, [RELEASE])])).error_code == E.NONE
    resp = c.fetch(tid)
    assert resp.responses == [] or part(resp).acquired_records == []
    sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(g, tid, 0)])
    assert sp.start_offset == 1


def test_max_records_and_gap(wire):
    _g, topic, tid, (c,) = _setup(wire)
    for _ in range(3):
        produce(wire, topic, 0, 2)  # three batches of two
    resp = c.fetch(tid, max_records=3)
    # Whole batches: 3 records asked, the batch boundary gives 4.
    assert acquired(resp) == [(0, 3, 1)]
    assert part(c.ack(tid, [(0, 3, [ACCEPT, GAP, ACCEPT, ACCEPT])])).error_code == E.NONE
    assert acquired(c.fetch(tid)) == [(4, 5, 1)]


def test_renew_extends_the_lock(broker, wire):
    _g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 1)
    assert acquired(c.fetch(tid)) == [(0, 0, 1)]
    broker.advance(20_000)
    c.heartbeat()
    renew = c.ack(tid, [(0, 0, [RENEW])], version=2, is_renew_ack=True)
    assert renew.error_code == E.NONE and part(renew).error_code == E.NONE
    broker.advance(20_000)  # 40 s after the fetch, 20 s after the renewal: still held
    assert part(c.ack(tid, [(0, 0, [ACCEPT])])).error_code == E.NONE
    # A renewing ShareFetch must not fetch.
    bad = c.fetch(tid, version=2, is_renew_ack=True, epoch=c.epoch)
    assert (bad.error_code, bad.error_message) == (E.INVALID_REQUEST, None)


def test_long_poll_wakes_on_produce(broker, wire):
    import threading

    _g, topic, tid, (c,) = _setup(wire)
    other = Wire(broker.bootstrap_servers)
    try:
        timer = threading.Timer(0.2, lambda: produce(other, topic, 0, 1))
        timer.start()
        resp = c.fetch(tid, max_wait_ms=20_000)
        timer.join()
        assert acquired(resp) == [(0, 0, 1)]
    finally:
        other.close()


def test_member_leaving_releases_its_records(wire):
    from share_wire import heartbeat

    _g, topic, tid, (a, b) = _setup(wire, members=2)
    produce(wire, topic, 0, 2)
    assert acquired(a.fetch(tid)) == [(0, 1, 1)]
    assert heartbeat(wire, a.group, a.member, -1).error_code == E.NONE
    assert acquired(b.fetch(tid)) == [(0, 1, 2)]


def test_record_limit_acquire_mode(wire):
    _g, topic, tid, (c,) = _setup(wire)
    produce(wire, topic, 0, 5)  # one batch of five
    resp = c.fetch(tid, max_records=2, version=2, share_acquire_mode=1)
    assert acquired(resp) == [(0, 1, 1)]  # exactly two, not the whole batch
    assert acquired(c.fetch(tid, max_records=2, version=2, share_acquire_mode=1)) == [(2, 3, 1)]
    assert acquired(c.fetch(tid, max_records=10, version=2)) == [(4, 4, 1)]


def test_closing_the_connection_releases_records(broker, wire):
    g, topic, tid, (a,) = _setup(wire)
    produce(wire, topic, 0, 2)
    own = Wire(broker.bootstrap_servers)
    c = ShareClient(own, g)
    c.join([topic])
    assert acquired(c.fetch(tid)) == [(0, 1, 1)]
    own.close()  # no final ShareFetch: the broker ends the session when the connection goes

    def released() -> bool:
        sp = broker.call(lambda: broker.broker.share_coordinator.manager.partitions[(g, tid, 0)])
        return (g, c.member) not in broker.call(lambda: dict(broker.broker.share_coordinator.manager.sessions)) \
            and sp.acquired_count() == 0

    from waiting import wait_until

    wait_until(released, message="the closed connection's records released")
    assert acquired(a.fetch(tid)) == [(0, 1, 2)]
