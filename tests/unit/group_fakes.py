"""Stand-ins of the group coordinator and the broker for the group kinds' unit tests
(test_group_consumer.py, test_group_members.py, the classic group tests): a metadata image of named topics, keyed one-shot
timers on a manual clock, and a coordinator that keeps the records appended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from kbroker.coordinator.group_classic import ClassicConfig, ClassicGroup, ClassicGroupManager
from kbroker.coordinator.group_views import CommittedViews
from kbroker_protocol.errors import ErrorCode


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
        self.authorizer = None  # no authorizer: a regex matches every topic
        self.config = {"group.consumer.assignors": ["uniform", "range"], "group.max.size": 100,
                       "group.consumer.heartbeat.interval.ms": 500, "group.consumer.session.timeout.ms": 10000,
                       "group.consumer.regex.refresh.interval.ms": 600000}


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


class Harness:
    """A classic group manager on a manual clock whose group writes complete as ``write_result`` says."""

    def __init__(self, **config) -> None:
        self.timer = FakeTimer(1_000_000)
        self.groups: dict = {}
        self.persisted: list[tuple[str, int, list[str]]] = []
        self.assignments: list[dict[str, bytes]] = []
        # The write outcome: NONE completes at once, an error fails at once (a failed local
        # append), None leaves the write pending in ``pending`` (being replicated).
        self.write_result: ErrorCode | None = ErrorCode.NONE
        self.pending: list = []
        cfg = ClassicConfig(min_session_timeout_ms=1000, max_session_timeout_ms=60000,
                            initial_rebalance_delay_ms=config.pop("delay", 0), **config)
        self.manager = ClassicGroupManager(self.groups, self.timer, cfg, self._persist)

    def _persist(self, group: ClassicGroup, assignment: dict[str, bytes], done) -> None:
        self.persisted.append((group.state.value, group.generation, list(group.members)))
        self.assignments.append(dict(assignment))
        if self.write_result is None:
            self.pending.append(done)
        else:
            done(self.write_result)

    def complete_writes(self, code: ErrorCode) -> None:
        pending, self.pending = self.pending, []
        for done in pending:
            done(code)

    def join(self, member_id="", group="g", instance=None, protocols=(("range", b"r"),), session=10000,
             rebalance=5000, require_known=False, client_id="c"):
        out: list = []
        self.manager.join(group_id=group, member_id=member_id, group_instance_id=instance, protocol_type="consumer",
                          protocols=list(protocols), session_timeout_ms=session, rebalance_timeout_ms=rebalance,
                          client_id=client_id, client_host="/h", require_known_member_id=require_known,
                          respond=out.append)
        self.timer.advance(0)  # timers due now run, as on the next event-loop turn
        return out

    def sync(self, member_id, generation, assignments=(), group="g", instance=None):
        out: list = []
        self.manager.sync(group_id=group, member_id=member_id, generation=generation, group_instance_id=instance,
                          protocol_type=None, protocol_name=None, assignments=list(assignments), respond=out.append)
        return out

    def heartbeat(self, member_id, generation, group="g", instance=None):
        return self.manager.heartbeat(group_id=group, member_id=member_id, generation=generation,
                                      group_instance_id=instance).error_code

    def group(self, group_id="g") -> ClassicGroup:
        return self.groups[group_id]

    def stable_single(self):
        [joined] = self.join()
        [synced] = self.sync(joined.member_id, joined.generation_id, [(joined.member_id, b"A")])
        assert synced.error_code == 0
        return joined.member_id
