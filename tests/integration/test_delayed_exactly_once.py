"""Delayed delivery exactly once (docs/delayed-delivery.md, kbroker/delayed_scheduler.py): the
scheduler delivers with its own idempotent producer id, writes each step's plan before it and its
progress after it, so a scheduler that dies between the two (a fault hook raises there) is
finished by the next leader without a duplicate; and ``__kbroker_delayed`` is cleaned below its
lowest pending record."""

from __future__ import annotations

import uuid

from waiting import wait_until

from kbroker.delayed import DELAYED_TOPIC
from kbroker.testing import BrokerThread


class Crash(Exception):
    """The scheduler's "process" dies here."""


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _setup(b, topic: str, count: int, delay: bytes = b"1000") -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, b"r%d" % i, partition=0, headers=[("kbroker-deliver-after-ms", delay)])
        assert producer.flush(30) == 0


def _end(b, topic: str) -> int:
    return b.call(lambda: b.broker.partition(topic, 0).log.log_end_offset)


def _values(b, topic: str) -> list[bytes | None]:
    from kbroker_protocol.records import iter_records

    def read() -> list[bytes | None]:
        return [r.value for _h, data in b.broker.partition(topic, 0).log.iter_batches() for r in iter_records(data)]
    return b.call(read)


def _crash_once(b, at: str = "delivered") -> list[str]:
    """Make the next step's scheduler die at ``at``: "delivered" (its batches appended, before its
    progress) or "appended" (after its first target's batch)."""
    hits: list[str] = []

    def hook(point: str) -> None:
        if not hits and point == at:
            hits.append(point)
            raise Crash(point)
    b.call(lambda: setattr(b.broker.delayed, "fault_hook", hook))
    return hits


def _unfinished(b) -> list[int]:
    return b.call(lambda: [i for i, s in b.broker.delayed.states.items() if s.plan is not None])


def test_a_leadership_move_between_delivery_and_progress_delivers_once(tmp_path):
    topic = name("eos")
    with BrokerThread(data_dir=str(tmp_path / "data"), clock="manual", control=True) as b:
        _setup(b, topic, 5)
        hits = _crash_once(b)
        b.advance(1000)
        assert hits == ["delivered"]
        assert _end(b, topic) == 5  # appended, progress not written
        [index] = _unfinished(b)
        delayed = b.broker.delayed
        # The internal partition's leadership goes away and comes back: the new "leader" reads
        # the log (the plan without its progress) and finishes the step.
        b.call(lambda: delayed.on_partition_leadership(DELAYED_TOPIC, index, False))
        b.call(lambda: delayed.on_partition_leadership(DELAYED_TOPIC, index, True))
        wait_until(lambda: not _unfinished(b) and b.call(lambda: delayed.duplicates) == 5,
                   message="the unfinished step finished again, as duplicates")
        assert _end(b, topic) == 5
        assert _values(b, topic) == [b"r%d" % i for i in range(5)]
        # The next step uses the new leadership's producer id.
        _setup_more(b, topic)
        b.advance(1000)
        assert _values(b, topic) == [*(b"r%d" % i for i in range(5)), b"later"]


def _setup_more(b, topic: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
    producer.produce(topic, b"later", partition=0, headers=[("kbroker-deliver-after-ms", b"1000")])
    assert producer.flush(30) == 0


def test_a_restart_between_delivery_and_progress_delivers_once(tmp_path):
    """The broker stops after appending a step's batches and before its progress record: the
    restarted one finds the plan, sends the same batches, and the target (its producer state
    rebuilt from its log) takes none twice."""
    data = str(tmp_path / "data")
    topic = name("eos-restart")
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        _setup(b, topic, 3)
        _setup(b, name("other"), 0)
        hits = _crash_once(b)
        b.advance(1000)
        assert hits == ["delivered"] and _end(b, topic) == 3 and _unfinished(b)
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        wait_until(lambda: b.call(lambda: b.broker.delayed.loaded) and not _unfinished(b)
                   and b.call(lambda: b.broker.delayed.duplicates) == 3, message="the step finished after the restart")
        assert _values(b, topic) == [b"r0", b"r1", b"r2"]


def test_delivered_records_are_cleaned_from_the_internal_topic(tmp_path):
    """Once records are delivered, the internal partition's log start moves up to the lowest
    pending record; the one pending still arrives after a restart, and then the start moves to
    the last progress record."""
    data = str(tmp_path / "data")
    topic = name("clean")
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        _setup(b, topic, 20)
        _setup_more_delay(b, topic)
        b.advance(1000)
        assert _end(b, topic) == 20
        delayed = b.broker.delayed

        def internal() -> tuple[int, int, list[int]]:
            [(index, state)] = [(i, s) for i, s in delayed.states.items() if s.heap]
            log = b.broker.partition(DELAYED_TOPIC, index).log
            return index, log.log_start_offset, [e.offset for e in state.heap]
        index, start, pending = b.call(internal)
        assert start == pending[0] == 20  # the 20 delivered records below it are gone
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        delayed = b.broker.delayed
        wait_until(lambda: b.call(lambda: delayed.loaded and index in delayed.states), message="loaded")
        assert b.call(lambda: [e.offset for e in delayed.states[index].heap]) == [20]
        b.advance(3_600_000 + 60_000)  # (the restarted clock starts at the wall time again)
        assert _end(b, topic) == 21
        assert _values(b, topic)[-1] == b"much later"

        def cleaned() -> bool:
            state = delayed.states[index]
            log = b.broker.partition(DELAYED_TOPIC, index).log
            return not state.heap and log.log_start_offset == state.progress_offset
        assert b.call(cleaned)


def _setup_more_delay(b, topic: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
    producer.produce(topic, b"much later", partition=0, headers=[("kbroker-deliver-after-ms", b"3600000")])
    assert producer.flush(30) == 0


def test_pending_records_are_held_as_an_index_and_read_back_when_due(tmp_path):
    """The scheduler keeps (due, offset, target) per pending record, not the record: after the
    produce and after a reload none is in memory, and each is delivered whole when due."""
    from confluent_kafka import Producer

    data = str(tmp_path / "data")
    topic = name("index")
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        _setup(b, topic, 0)
        producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 5})
        for i in range(30):
            producer.produce(topic, b"v%d" % i, key=b"k%d" % i, partition=0,
                             headers=[("kbroker-deliver-after-ms", b"1000"), ("h", b"%d" % i)])
        assert producer.flush(30) == 0
        delayed = b.broker.delayed

        def held() -> list:
            return [e.record for s in delayed.states.values() for e in s.heap]
        assert b.call(held) == [None] * 30
    with BrokerThread(data_dir=data, clock="manual", control=True) as b:
        delayed = b.broker.delayed
        wait_until(lambda: b.call(lambda: delayed.loaded and sum(len(s.heap) for s in delayed.states.values()) == 30),
                   message="30 pending loaded")
        assert b.call(lambda: [e.record for s in delayed.states.values() for e in s.heap]) == [None] * 30
        b.advance(61_000)  # (the restarted clock starts at the wall time again)
        assert _end(b, topic) == 30

        def delivered() -> list[tuple]:
            from kbroker_protocol.records import iter_records

            return [(r.key, r.value, dict(r.headers)["h"]) for _h, d in b.broker.partition(topic, 0).log.iter_batches()
                    for r in iter_records(d)]
        assert b.call(delivered) == [(b"k%d" % i, b"v%d" % i, b"%d" % i) for i in range(30)]


def test_a_step_stopped_after_its_first_target_appends_the_others_once(tmp_path):
    """Two targets in one step; the scheduler dies after the first target's batch: the next
    leader's second try finds that one already there and appends the other, each once."""
    first, second = name("eos-a"), name("eos-b")
    # one internal partition: both targets' records in one step
    with BrokerThread({"kbroker.delayed.topic.num.partitions": "1"}, data_dir=str(tmp_path / "data"),
                      clock="manual", control=True) as b:
        _setup(b, first, 3)
        _setup(b, second, 4)
        delayed = b.broker.delayed
        hits = _crash_once(b, "appended")
        b.advance(1000)
        assert hits == ["appended"]
        assert (_end(b, first), _end(b, second)) in ((3, 0), (0, 4))  # one target appended
        [index] = _unfinished(b)
        b.call(lambda: delayed.on_partition_leadership(DELAYED_TOPIC, index, False))
        b.call(lambda: delayed.on_partition_leadership(DELAYED_TOPIC, index, True))
        wait_until(lambda: not _unfinished(b), message="the step finished")
        assert _values(b, first) == [b"r0", b"r1", b"r2"]
        assert _values(b, second) == [b"r0", b"r1", b"r2", b"r3"]
        assert b.call(lambda: delayed.duplicates) in (3, 4)  # the target appended before the stop
