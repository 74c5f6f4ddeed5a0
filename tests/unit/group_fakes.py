"""Stand-ins of the group coordinator and the broker for the group kinds' unit tests
(test_group_consumer.py, test_group_members.py): a metadata image of named topics, keyed one-shot
timers on a manual clock, and a coordinator that keeps the records appended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from kbroker.coordinator.group_views import CommittedViews


@dataclass
class FakeTopic:
    name: str
    topic_id: uuid.UUID
    partitions: dict = field(default_factory=dict)


class TopicRecord:
    """(The record type the consumer groups' regex resolutions listen for.)"""


class FakeImage:
    def __init__(self) -> None:
        self.topics: dict[str, FakeTopic] = {}
        self.offset = 0  # the offset of the last metadata record applied
        self.listeners: list = []

    def add(self, name: str, count: int) -> None:
        self.offset += 1
        self.topics[name] = FakeTopic(name, uuid.uuid4(), dict.fromkeys(range(count)))
        for listener in self.listeners:
            listener(TopicRecord())

    def topic(self, name):
        return self.topics.get(name)

    def topic_by_id(self, topic_id):
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)


class FakeTimer:
    """Keyed one-shot timers on a manual clock starting at ``now``."""

    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.timers: dict = {}

    def now_ms(self) -> int:
        return self.now

    def schedule(self, key, delay_ms, fn):
        self.timers[key] = (self.now + delay_ms, fn)

    def cancel(self, key):
        self.timers.pop(key, None)

    def advance(self, ms: int) -> None:
        target = self.now + ms
        while True:
            due = sorted((d, k) for k, (d, _f) in self.timers.items() if d <= target)
            if not due:
                break
            self.now, key = due[0]
            self.timers.pop(key)[1]()
        self.now = target


class FakeBroker:
    def __init__(self) -> None:
        self.image = FakeImage()
        self.config = {"group.consumer.assignors": ["uniform", "range"], "group.max.size": 100,
                       "group.consumer.heartbeat.interval.ms": 500, "group.consumer.session.timeout.ms": 10000}


class FakeCoordinator:
    def __init__(self, now: int = 0) -> None:
        self.broker = FakeBroker()
        self.timer = FakeTimer(now)
        self.groups: dict = {}
        self.loaded = True
        self.records: list = []
        # The partition's high watermark, in records appended: None keeps up with every append
        # (replicated at once); a number holds reads of the groups there (group_views).
        self.high_watermark: int | None = None
        self.views = CommittedViews(self.groups, lambda _group_id: self._hw())

    def _hw(self) -> int:
        return len(self.records) if self.high_watermark is None else self.high_watermark

    def append(self, group_id, records):
        self.records.extend(records)
        return 0

    def note_written(self, snapshot):
        if self._hw() < len(self.records):
            self.views.note(snapshot, len(self.records))
