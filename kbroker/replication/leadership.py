"""Leader and follower state of a partition, as Kafka's ``Partition`` keeps it (sans-IO).

* :func:`make_leader` / :func:`make_follower`: a partition record (or change) naming this broker
  leader or follower (Kafka's ``Partition.makeLeader``/``makeFollower``). A new leader epoch starts
  at the leader's log end, which the leader epoch cache (``leader-epoch-checkpoint``) learns at once.
* :func:`update_follower_fetch_state`: a follower's fetch tells the leader its log end offset; it
  was caught up at the fetch time if it reached the leader's log end, or at its previous fetch
  time if it reached the log end the leader had then (Kafka's ``Replica.updateFetchStateOrThrow``).
* :func:`maybe_increment_hw`: the high watermark is the smallest log end offset of the "maximal"
  ISR (the committed ISR plus a replica being added); it does not move while the ISR is below
  ``min.insync.replicas`` (KIP-966).
* :func:`expand_candidate` / :func:`out_of_sync_replicas`: when to ask the controller to add a
  replica to the ISR (it reached the high watermark and the current epoch's start) or to remove
  one (not caught up for ``replica.lag.time.max.ms``); the change is pending (:class:`PendingIsr`)
  until the controller answers or the metadata shows it.
* :func:`replication_check`: whether an acks=all append up to an offset is done.
* :func:`alter_partition_request`: the AlterPartition request proposing a pending ISR change.
* :func:`rack_aware_read_replica`: the follower a consumer in a rack fetches from (KIP-392).

The functions take the time and an ``eligible(replica_id, fetch_broker_epoch)`` predicate (the
broker's registration is live, unfenced and of the epoch the follower fetched with).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kbroker.config import TOPIC_DEFAULTS
from kbroker.metadata.image import MetadataImage, PartitionState
from kbroker.replication.partition import UNKNOWN_OFFSET, FollowerState, Partition, PendingIsr
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest

log = logging.getLogger("kbroker.replication")

Eligible = Callable[[int, "int | None"], bool]


def effective_min_isr(p: Partition) -> int:
    """``min.insync.replicas``, at most the replication factor (Kafka's ``effectiveMinIsr``)."""
    configured: int = p.config.get("min.insync.replicas", TOPIC_DEFAULTS["min.insync.replicas"])
    return max(1, min(configured, len(p.replicas) or 1))


def is_under_min_isr(p: Partition) -> bool:
    return p.is_leader and len(p.isr) < effective_min_isr(p)


def make_leader(p: Partition, state: PartitionState, now_ms: int, lag_ms: int, eligible: Eligible) -> bool:
    """Become (or stay) leader with ``state`` (an image ``PartitionState``); True if the state
    was applied (a stale partition epoch is skipped, as Kafka does)."""
    if state.partition_epoch < p.partition_epoch:
        log.info("%s-%d: skipped become-leader at partition epoch %d: already at %d", p.topic, p.index,
                 state.partition_epoch, p.partition_epoch)
        return False
    new_leader = not p.is_leader or p.epoch_start_offset is None
    new_epoch = state.leader_epoch > p.leader_epoch or p.epoch_start_offset is None
    start = p.log.log_end_offset
    if new_epoch and state.leader_epoch >= 0 and getattr(p.log, "offline", None) is None:
        # An offline log (corrupt, or in a failed log dir) takes no epoch; it answers
        # KAFKA_STORAGE_ERROR to every request. Written first: a storage error here (it fails the
        # log dir) leaves the partition as it was, not half made leader.
        p.log.assign_epoch_start(state.leader_epoch, start)
    p.replicas = list(state.replicas)
    p.isr = list(state.isr)
    p.pending_isr = None
    others = [r for r in p.replicas if r != p.node_id]
    for r in others:
        p.followers.setdefault(r, FollowerState())
    for r in [r for r in p.followers if r not in others]:
        del p.followers[r]
    if new_epoch:
        for r, f in p.followers.items():
            _reset_follower(f, now_ms, start, new_leader, r in p.isr)
        log.info("%s-%d: leader at epoch %d from offset %d, partition epoch %d, ISR %s (previous leader %s, "
                 "epoch %d)", p.topic, p.index, state.leader_epoch, start, state.partition_epoch, p.isr,
                 p.leader_id, p.leader_epoch)
        p.leader_epoch = state.leader_epoch
        p.epoch_start_offset = start
    p.partition_epoch = state.partition_epoch
    p.leader_id = p.node_id
    maybe_increment_hw(p, now_ms, lag_ms, eligible)
    p.notify_hw()
    return True


def _reset_follower(f: FollowerState, now_ms: int, leader_end: int, new_leader: bool, in_isr: bool) -> None:
    f.last_caught_up_time_ms = now_ms if in_isr else 0
    if new_leader:
        f.log_end_offset = UNKNOWN_OFFSET
        f.log_start_offset = UNKNOWN_OFFSET
        f.last_fetch_leader_log_end_offset = UNKNOWN_OFFSET
        f.last_fetch_time_ms = 0
        f.broker_epoch = None
    else:
        f.last_fetch_leader_log_end_offset = leader_end
        f.last_fetch_time_ms = now_ms if in_isr else 0


def make_follower(p: Partition, state: PartitionState) -> bool:
    """Follow ``state.leader``; True when fetching must (re)start: a new leader epoch (or leader)."""
    if state.partition_epoch < p.partition_epoch:
        log.info("%s-%d: skipped become-follower at partition epoch %d: already at %d", p.topic, p.index,
                 state.partition_epoch, p.partition_epoch)
        return False
    new_epoch = state.leader_epoch > p.leader_epoch or state.leader != p.leader_id
    was = p.leader_id
    p.leader_id = state.leader
    p.leader_epoch = state.leader_epoch
    p.epoch_start_offset = None
    p.partition_epoch = state.partition_epoch
    p.replicas = list(state.replicas)
    p.isr = list(state.isr)
    p.pending_isr = None
    p.followers.clear()
    if new_epoch:
        log.info("%s-%d: follower of %d at epoch %d from offset %d, high watermark %d (previous leader %s)",
                 p.topic, p.index, state.leader, state.leader_epoch, p.log.log_end_offset, p.log.high_watermark, was)
    p.notify_hw()  # acks=all produces waiting here answer NOT_LEADER_OR_FOLLOWER
    return new_epoch


def update_follower_fetch_state(p: Partition, replica_id: int, fetch_offset: int, log_start_offset: int,
                                now_ms: int, leader_end: int, broker_epoch: int) -> bool:
    """Record a follower's fetch position; True if its log end offset moved."""
    f = p.followers.get(replica_id)
    if f is None:
        return False
    previous = f.log_end_offset
    if fetch_offset >= leader_end:
        f.last_caught_up_time_ms = max(f.last_caught_up_time_ms, now_ms)
    elif fetch_offset >= f.last_fetch_leader_log_end_offset:
        f.last_caught_up_time_ms = max(f.last_caught_up_time_ms, f.last_fetch_time_ms)
    f.log_start_offset = log_start_offset
    f.log_end_offset = fetch_offset
    f.last_fetch_leader_log_end_offset = max(leader_end, f.last_fetch_leader_log_end_offset)
    f.last_fetch_time_ms = now_ms
    f.broker_epoch = broker_epoch
    return previous != fetch_offset


def maybe_increment_hw(p: Partition, now_ms: int, lag_ms: int, eligible: Eligible) -> bool:
    """Move the leader's high watermark to the smallest log end offset of the maximal ISR (and
    of the caught-up replicas about to join it). True if it moved."""
    if not p.is_leader or is_under_min_isr(p):
        return False
    leo = p.log.log_end_offset
    new_hw = leo
    maximal = p.maximal_isr
    for r, f in p.followers.items():
        if f.log_end_offset < new_hw and (
            r in maximal or (f.is_caught_up(leo, now_ms, lag_ms) and eligible(r, f.broker_epoch))
        ):
            new_hw = f.log_end_offset
    plog = p.log
    if new_hw > plog.high_watermark:
        plog.high_watermark = new_hw
        return True
    return False


def expand_candidate(p: Partition, replica_id: int, eligible: Eligible) -> PendingIsr | None:
    """The pending expansion to send when ``replica_id`` has caught up (None: nothing to do)."""
    f = p.followers.get(replica_id)
    if not p.is_leader or p.pending_isr is not None or f is None or replica_id in p.isr:
        return None
    if not eligible(replica_id, f.broker_epoch):
        return None
    start = p.epoch_start_offset
    if f.log_end_offset < p.log.high_watermark or start is None or f.log_end_offset < start:
        return None
    pending = PendingIsr(True, [*p.isr, replica_id], list(p.isr), p.partition_epoch, p.leader_epoch)
    p.pending_isr = pending
    log.info("%s-%d: expanding ISR from %s to %s", p.topic, p.index, p.isr, pending.new_isr)
    return pending


def out_of_sync_replicas(p: Partition, now_ms: int, lag_ms: int) -> list[int]:
    if not p.is_leader or p.pending_isr is not None:
        return []
    leo = p.log.log_end_offset
    out = []
    for r in p.isr:
        if r == p.node_id:
            continue
        f = p.followers.get(r)
        if f is None or not f.is_caught_up(leo, now_ms, lag_ms):
            out.append(r)
    return out


def shrink_candidate(p: Partition, now_ms: int, lag_ms: int) -> PendingIsr | None:
    out = out_of_sync_replicas(p, now_ms, lag_ms)
    if not out:
        return None
    new_isr = [r for r in p.isr if r not in out]
    pending = PendingIsr(False, new_isr, list(p.isr), p.partition_epoch, p.leader_epoch)
    p.pending_isr = pending
    details = ", ".join(
        f"(broker {r}: end offset {p.followers[r].log_end_offset if r in p.followers else 'unknown'}, "
        f"last caught up {p.followers[r].last_caught_up_time_ms if r in p.followers else 'unknown'})" for r in out)
    log.info("%s-%d: shrinking ISR from %s to %s; leader high watermark %d, end offset %d; out of sync: %s",
             p.topic, p.index, p.isr, new_isr, p.log.high_watermark, p.log.log_end_offset, details)
    return pending


# AlterPartition partition errors after which the leader resets to the committed state
# (the controller says the request was not applied), as Kafka's handleAlterPartitionError.
RESET_ERRORS = frozenset({ErrorCode.OPERATION_NOT_ATTEMPTED, ErrorCode.INELIGIBLE_REPLICA})
# Errors after which the leader waits for new metadata (stays pending).
WAIT_ERRORS = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.INVALID_UPDATE_VERSION, ErrorCode.INVALID_REQUEST, ErrorCode.NEW_LEADER_ELECTED,
})


def apply_alter_partition_result(p: Partition, pending: PendingIsr, error: int, leader_epoch: int, isr: list[int],
                                 partition_epoch: int) -> str:
    """The controller's answer to ``pending``: "applied", "ignored", "reset", "wait" or "retry"."""
    if p.pending_isr is not pending:
        return "ignored"  # the metadata moved on meanwhile
    if error != ErrorCode.NONE:
        if error in RESET_ERRORS:
            p.pending_isr = None
            log.info("%s-%d: the controller rejected the ISR change to %s with %s; back to ISR %s", p.topic,
                     p.index, pending.new_isr, ErrorCode(error).name, p.isr)
            return "reset"
        if error in WAIT_ERRORS:
            log.info("%s-%d: ISR change to %s failed with %s; waiting for new metadata", p.topic, p.index,
                     pending.new_isr, _name(error))
            return "wait"
        log.warning("%s-%d: ISR change to %s failed with %s; retrying", p.topic, p.index, pending.new_isr,
                    _name(error))
        return "retry"
    if leader_epoch != p.leader_epoch or partition_epoch < p.partition_epoch:
        log.info("%s-%d: ignoring the ISR answer %s (leader epoch %d, partition epoch %d): now at %d/%d", p.topic,
                 p.index, isr, leader_epoch, partition_epoch, p.leader_epoch, p.partition_epoch)
        return "ignored"
    p.isr = list(isr)
    p.partition_epoch = partition_epoch
    p.pending_isr = None
    log.info("%s-%d: ISR updated to %s%s, partition epoch %d", p.topic, p.index, p.isr,
             " (under min ISR)" if is_under_min_isr(p) else "", partition_epoch)
    return "applied"


def _name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def replication_check(p: Partition, required_offset: int) -> tuple[bool, ErrorCode]:
    """Kafka's ``checkEnoughReplicasReachOffset``: (done, error) for an acks=all append whose
    next offset is ``required_offset``."""
    if not p.is_leader:
        return True, ErrorCode.NOT_LEADER_OR_FOLLOWER
    if p.log.high_watermark >= required_offset:
        if effective_min_isr(p) <= len(p.maximal_isr):
            return True, ErrorCode.NONE
        return True, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    return False, ErrorCode.NONE


def alter_partition_request(partition: Partition, pending: PendingIsr, node_id: int,
                            broker_epoch: Callable[[int], int]) -> AlterPartitionRequest:
    """The AlterPartition request that proposes ``pending`` (the leader ``node_id``'s ISR change)
    to the controller, with each new ISR member's broker epoch (KIP-903)."""
    Req = AlterPartitionRequest
    epochs = []
    for r in pending.new_isr:
        if r == node_id:
            epoch = broker_epoch(r)
        else:
            f = partition.followers.get(r)
            epoch = f.broker_epoch if f is not None and f.broker_epoch is not None else -1
        epochs.append(Req.TopicData.PartitionData.BrokerState(broker_id=r, broker_epoch=epoch))
    return Req(broker_id=node_id, broker_epoch=broker_epoch(node_id), topics=[
        Req.TopicData(topic_id=partition.topic_id, partitions=[
            Req.TopicData.PartitionData(
                partition_index=partition.index, leader_epoch=pending.leader_epoch, new_isr=list(pending.new_isr),
                new_isr_with_epochs=epochs, leader_recovery_state=0, partition_epoch=pending.partition_epoch,
            )])])


def rack_aware_read_replica(image: MetadataImage, partition: Partition, node_id: int, rack: str,
                            fetch_offset: int, listener: str, now: int) -> int | None:
    """Kafka's ``RackAwareReplicaSelector`` on the leader ``node_id``: an ISR follower in the
    client's rack holding ``fetch_offset``, the most caught up, unless the leader is in that rack
    or this node does not lead; None: fetch from the leader."""
    if not partition.is_leader:
        return None
    own = image.brokers.get(node_id)
    if own is not None and own.rack == rack:
        return None
    best: tuple[int, int, int] | None = None
    for r, f in partition.followers.items():
        if r not in partition.isr or not (f.log_start_offset <= fetch_offset <= f.log_end_offset):
            continue
        reg = image.brokers.get(r)
        if reg is None or reg.fenced or listener not in reg.endpoints or reg.rack != rack:
            continue
        candidate = (f.log_end_offset, -(now - f.last_caught_up_time_ms), r)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best is not None else None

