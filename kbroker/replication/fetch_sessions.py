"""Fetch sessions (KIP-227): the broker remembers a fetcher's partitions between requests.

Request (SessionId, SessionEpoch):
- (0, -1) full fetch, no session; (0, 0) full fetch that opens a session (id 0 if the cache is full);
- (id, -1) close the session, then a full sessionless fetch; (id, 0) close it and open a new one;
- (id, n>0) incremental: the session must exist (FETCH_SESSION_ID_NOT_FOUND, also for id 0), n
  must be the expected epoch (INVALID_FETCH_SESSION_EPOCH), and the request must address topics as
  the session does, by name below v13 and by id from v13 (FETCH_SESSION_TOPIC_ID_ERROR). The request lists only changed or new partitions
  and ForgottenTopicsData removes some. The response lists only partitions with records, an error,
  or a changed high watermark, last stable offset or log start offset.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1


@dataclass(slots=True)
class CachedPartition:
    topic: str | None
    topic_id: uuid.UUID
    partition: int
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int
    log_start_offset: int
    last_fetched_epoch: int
    # What the fetcher last heard from us.
    sent_high_watermark: int = -1
    sent_last_stable_offset: int = -1
    sent_log_start_offset: int = -1


class FetchSession:
    __slots__ = ("id", "epoch", "partitions", "last_used", "uses_topic_ids")

    def __init__(self, session_id: int, uses_topic_ids: bool) -> None:
        self.id = session_id
        self.epoch = 1  # the epoch the next incremental request must carry
        # keyed by (topic id, partition) from Fetch v13, (topic name, partition) before
        self.partitions: OrderedDict[tuple[uuid.UUID | str | None, int], CachedPartition] = OrderedDict()
        self.last_used = time.monotonic()
        self.uses_topic_ids = uses_topic_ids

    def next_epoch(self) -> None:
        self.epoch = 1 if self.epoch >= 2**31 - 1 else self.epoch + 1


class FetchSessionCache:
    def __init__(self, max_slots: int, idle_seconds: float = 120.0) -> None:
        self.max_slots = max_slots
        self.idle_seconds = idle_seconds
        self.sessions: OrderedDict[int, FetchSession] = OrderedDict()
        self._ids = itertools.count(random.randint(1, 1 << 20))

    def get(self, session_id: int) -> FetchSession | None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.last_used = time.monotonic()
            self.sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)

    def create(self, uses_topic_ids: bool) -> FetchSession | None:
        self._evict_idle()
        if self.max_slots <= 0:
            return None
        if len(self.sessions) >= self.max_slots:
            oldest_id, oldest = next(iter(self.sessions.items()))
            if time.monotonic() - oldest.last_used < self.idle_seconds:
                return None
            self.sessions.pop(oldest_id)
        while True:
            session_id = next(self._ids) & 0x7FFFFFFF
            if session_id != INVALID_SESSION_ID and session_id not in self.sessions:
                break
        session = FetchSession(session_id, uses_topic_ids)
        self.sessions[session_id] = session
        return session

    def _evict_idle(self) -> None:
        cutoff = time.monotonic() - self.idle_seconds
        while self.sessions:
            session_id, session = next(iter(self.sessions.items()))
            if session.last_used >= cutoff:
                break
            self.sessions.pop(session_id)
