"""What a ``RaftNode`` does as the leader (Kafka's ``LeaderState`` and the leader side of
``KafkaRaftClient``): proposals, flushing, the high watermark, check-quorum, resignation, and
answering Fetch and FetchSnapshot (with the fetch purgatory of held requests).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.messages import (
    BeginQuorumEpochRequest,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
)
from kbroker.raft.node_base import (
    CHECK_QUORUM_TIMEOUT_FACTOR,
    FENCED_LEADER_EPOCH,
    INVALID_REQUEST,
    NONE,
    NOT_LEADER_OR_FOLLOWER,
    SNAPSHOT_NOT_FOUND,
    UNKNOWN_LEADER_EPOCH,
    NodeBase,
    NotLeaderError,
    ReplicaState,
    Role,
)

logger = logging.getLogger("kbroker.raft.node")  # one logger for the whole node, as before the split


class LeaderRole(NodeBase):
    """The leader side of a ``RaftNode``."""

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

    def resign_to(self, now: int, out: list[Message]) -> None:
        out.extend(self.resign(now))

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
        self._send_each(self._unacknowledged(), now, out,
                        lambda v, rid: BeginQuorumEpochRequest(self.node_id, v, rid, self.node_id, self.epoch,
                                                               self._directory_of(v)))
        if len(self.voters) == 1:
            self._update_high_watermark()

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

    def _complete_parked(self, now: int, out: list[Message]) -> None:
        everything = self._parked_dirty or self.role is not Role.LEADER
        self._parked_dirty = False
        for src, (req, deadline) in list(self._parked.items()):
            if everything or now >= deadline:
                del self._parked[src]
                resp = self._on_fetch_request(req, now, may_park=False)
                assert resp is not None
                out.append(resp)

    def _leader_epoch_error(self, current_leader_epoch: int) -> int:
        """Kafka's validateLeaderOnlyRequest: the error for a Fetch or FetchSnapshot that names
        ``current_leader_epoch`` (NONE when this node leads that epoch)."""
        if current_leader_epoch < self.epoch:
            return FENCED_LEADER_EPOCH
        if current_leader_epoch > self.epoch:
            return UNKNOWN_LEADER_EPOCH
        if self.role is not Role.LEADER:
            return NOT_LEADER_OR_FOLLOWER
        return NONE

    def _on_fetch_request(self, req: FetchRequest, now: int, may_park: bool = True) -> FetchResponse | None:
        def answer(error: int, records: tuple[Entry, ...] = (), div: tuple[int, int] = (-1, -1),
                   snapshot_id: tuple[int, int] = (-1, -1)) -> FetchResponse:
            return FetchResponse(self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch,
                                 self.high_watermark, req.fetch_offset, records, *div, *snapshot_id)

        if req.fetch_offset < 0 or req.last_fetched_epoch < 0:
            return answer(INVALID_REQUEST)
        error = self._leader_epoch_error(req.current_leader_epoch)
        if error != NONE:
            return answer(error)
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

    def _on_fetch_snapshot_request(self, req: FetchSnapshotRequest, now: int) -> FetchSnapshotResponse:
        def answer(error: int, snap: Snapshot | None = None) -> FetchSnapshotResponse:
            end, epoch, data = (snap.end_offset, snap.epoch, snap.data) if snap is not None else (-1, -1, None)
            return FetchSnapshotResponse(self.node_id, req.src, req.request_id, error, self.leader_id, self.epoch,
                                         end, epoch, data)

        error = self._leader_epoch_error(req.current_leader_epoch)
        if error != NONE:
            return answer(error)
        snap = self.log.snapshot
        if snap is None or snap.snapshot_id != (req.snapshot_end_offset, req.snapshot_epoch):
            return answer(SNAPSHOT_NOT_FOUND)
        if req.src in self._voter_last_fetch:
            self._voter_last_fetch[req.src] = now
            self._acknowledged.add(req.src)
        return answer(NONE, snap)
