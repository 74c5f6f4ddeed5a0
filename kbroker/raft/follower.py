"""What a ``RaftNode`` does as a follower or observer (Kafka's ``FollowerState`` and the fetch
side of ``KafkaRaftClient``): sending Fetch and FetchSnapshot, appending or truncating what the
leader answers, and installing a fetched snapshot.
"""

from __future__ import annotations

import logging

from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.messages import (
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
)
from kbroker.raft.node_base import (
    NONE,
    SNAPSHOT_NOT_FOUND,
    NodeBase,
    RaftSafetyError,
    Role,
)

logger = logging.getLogger("kbroker.raft.node")  # one logger for the whole node, as before the split


class FollowerRole(NodeBase):
    """The fetching side of a ``RaftNode``."""

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

    @staticmethod
    def _whole_proposals(records: tuple[Entry, ...]) -> tuple[Entry, ...]:
        """A fetched answer without an incomplete last proposal (Kafka's fetcher drops a partial
        last batch): a follower's log holds whole proposals only; the rest is fetched again."""
        keep = len(records)
        while keep and not records[keep - 1].batch_end:
            keep -= 1
        return records[:keep]

    def _take_fetch_answer(self, resp: FetchResponse | FetchSnapshotResponse, now: int) -> bool:
        """Whether ``resp`` answers the Fetch or FetchSnapshot in flight and leaves this node in its
        state (a stale answer is ignored; a newer epoch or leader moves the node first)."""
        inflight = self._fetch_inflight
        if inflight is None or inflight[0] != resp.request_id or inflight[1] != resp.src:
            return False
        self._fetch_inflight = None
        return not self._transition_on_leader_info(resp.leader_epoch, resp.leader_id, now)

    def _on_fetch_response(self, resp: FetchResponse, now: int, out: list[Message]) -> None:
        if not self._take_fetch_answer(resp, now):
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

    def _on_fetch_snapshot_response(self, resp: FetchSnapshotResponse, now: int, out: list[Message]) -> None:
        if not self._take_fetch_answer(resp, now):
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
