"""A follower's partition as its fetcher sees it (:class:`FetchState`, Kafka's
``PartitionFetchState``), and what the leader's answers do to the follower's log: truncation to
the high watermark (a log without leader epochs) or to the end of the leader's epoch (a
``DivergingEpoch``), and the append of fetched batches as the leader wrote them, with the producer
state and the aborted-transaction index they update (:mod:`kbroker.replication.replica_fetcher`
fetches and calls these)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.replication.producer_manager import apply_appended, partition_state
from kbroker_protocol.record_batch import BatchHeader, parse_header

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_state import PartitionProducerState

log = logging.getLogger("kbroker.replication.fetcher")


@dataclass(eq=False)
class FetchState:
    """What a follower fetches of one partition (Kafka's ``PartitionFetchState``)."""

    partition: Partition
    leader_id: int
    leader_epoch: int
    fetch_offset: int
    truncating: bool  # the log has no epoch: truncate to the high watermark before fetching
    delayed_until: float = 0.0  # loop time; a partition error backs off until then
    errors_logged: set[int] = field(default_factory=set)
    lag: int | None = None  # the leader's high watermark less the fetch offset, after the last fetch with data


def truncate_to_high_watermark(s: FetchState) -> None:
    p = s.partition
    hw = p.log.high_watermark
    if p.log.log_end_offset > hw:
        log.info("%s-%d: truncating to the high watermark %d (the log has no leader epochs)", p.topic, p.index, hw)
        p.log.truncate_to(hw)
        p.producer_state = None
    s.fetch_offset = p.log.log_end_offset
    s.truncating = False


def truncate_diverging(s: FetchState, epoch: int, end_offset: int) -> None:
    p = s.partition
    before = p.log.log_end_offset
    result = p.log.truncate_to_epoch_end(epoch, end_offset)
    if result is None:
        return
    offset, _complete = result
    if offset < before:
        p.producer_state = None  # rebuilt from the log (and its snapshots) on next use
        log.info("%s-%d: truncated from %d to %d: the leader's epoch %d ends at %d", p.topic, p.index, before,
                 offset, epoch, end_offset)
    s.fetch_offset = p.log.log_end_offset


def append_fetched(s: FetchState, data: memoryview) -> None:
    p = s.partition
    plog = p.log
    batches: list[tuple[int, BatchHeader]] = []
    pos = 0
    while len(data) - pos >= 61:
        header = parse_header(data, pos)
        if header.size > len(data) - pos:
            break  # a partial batch at the end: fetched again next time
        batches.append((pos, header))
        pos += header.size
    if not batches:
        return
    leo = plog.log_end_offset
    first_pos, first = batches[0]
    if first.base_offset < leo:
        # The batch holding the fetch offset starts before it (the log was cut inside a batch):
        # keep the whole batch, as the leader has it.
        drop = [b for b in batches if b[1].last_offset < leo]
        batches = batches[len(drop):]
        if not batches:
            return
        first_pos, first = batches[0]
        if first.base_offset < leo:
            plog.truncate_to(first.base_offset)
            p.producer_state = None
    last_pos, last = batches[-1]
    chunk = data[first_pos : last_pos + last.size]
    # The producer state as of the log end, before these batches (loaded from the log if needed).
    state = partition_state(p) if any(h.producer_id >= 0 for _pos, h in batches) else None
    plog.append(chunk, assign_offsets=False)
    if state is not None:
        _update_producer_state(p, state, chunk, batches, first_pos)
    s.fetch_offset = plog.log_end_offset


def _update_producer_state(p: Partition, state: PartitionProducerState, chunk: memoryview,
                           batches: list[tuple[int, BatchHeader]], first_pos: int) -> None:
    """The producer state learns the appended batches; ABORT markers go to the ``.txnindex``."""
    for pos, header in batches:
        if header.producer_id >= 0:
            start = pos - first_pos
            apply_appended(p, state, header, chunk[start : start + header.size], header.base_offset,
                           header.last_offset)
