"""kbroker/replication/delayed_fetch.py: Kafka's DelayedFetch on fake partitions and the manual
clock. A held fetch answers when a re-read finds MinBytes, when a re-read must be answered (a
leader change: the partition's read is an error), when MaxWaitMs passes on the clock, at once when
the broker stops; a follower's held fetch also when the leader appends to a partition it lacks.
Kafka's tryComplete cases F and G (``fetch_progress``) on a real log's segments: a fetch past its
end offset or on an older segment completes at once, the bytes counted are those between the two
offsets on one segment, at most the partition's max bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from kbroker.control.clock import ManualClock
from kbroker.log import LogConfig, PartitionLog
from kbroker.replication.delayed_fetch import DelayedFetch, FetchRead, answers_at_once, fetch_progress
from kbroker.replication.parked_fetches import ParkedFollowerFetches

MIN_BYTES = 100
MAX_WAIT_MS = 500


class FakePartition:
    """A partition's log as the handler's read sees it, and its fetch waiters."""

    def __init__(self) -> None:
        self.available = 0  # bytes past the fetch offset
        self.max_bytes = 1 << 20  # the fetch's PartitionMaxBytes (case G counts at most that)
        self.older_segment = False  # the fetch offset on an older segment than the end offset (case F)
        self.leader = True
        self.waiters: dict[asyncio.Future[None], None] = {}

    def add_waiter(self, fut: asyncio.Future[None]) -> None:
        self.waiters[fut] = None

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        self.waiters.pop(fut, None)

    def has_waiter(self, fut: asyncio.Future[object]) -> bool:
        return fut in self.waiters

    def notify(self) -> None:  # as Partition.notify: new data, or a leadership change (notify_hw)
        waiters, self.waiters = self.waiters, {}
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


class Fetch:
    """The handler's side: reads the partitions (an error completes the fetch) and answers."""

    def __init__(self, partitions: dict[tuple[str, int], FakePartition]) -> None:
        self.partitions = partitions
        self.reads = 0

    def read(self) -> FetchRead[list[str]]:
        self.reads += 1
        answers = []
        size = counted = 0
        complete = False
        for (topic, index), p in self.partitions.items():
            if not p.leader:
                answers.append(f"{topic}-{index}: NOT_LEADER_OR_FOLLOWER")
                complete = True
            else:
                answers.append(f"{topic}-{index}: {p.available} bytes")
                size += p.available  # (the read returns a first batch larger than max_bytes whole)
                counted += min(p.available, p.max_bytes)
                complete = complete or p.older_segment
        return FetchRead(answers, size, complete, counted)

    def respond(self, done: FetchRead[list[str]]) -> tuple[list[str], int]:
        return done.reads, done.size

    def delayed(self, clock: ManualClock | None, *, stopping: bool = False, replica_id: int = -1,
                parked: ParkedFollowerFetches | None = None,
                max_wait_ms: int = MAX_WAIT_MS) -> DelayedFetch[list[str], tuple[list[str], int]]:
        return DelayedFetch(self.read, self.respond, list(self.partitions), lambda t, i: self.partitions.get((t, i)),
                            MIN_BYTES, max_wait_ms, clock=clock, stopping=lambda: stopping, replica_id=replica_id,
                            parked=parked)


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run the held fetch until ``condition`` holds (loop iterations, no time)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the held fetch never reached the expected state")


def _run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def test_a_read_with_min_bytes_or_a_completing_read_answers_at_once() -> None:
    assert answers_at_once(MIN_BYTES, False, MIN_BYTES, MAX_WAIT_MS, 1)
    assert answers_at_once(0, True, MIN_BYTES, MAX_WAIT_MS, 1)  # e.g. NOT_LEADER_OR_FOLLOWER
    assert answers_at_once(0, False, MIN_BYTES, 0, 1)  # MaxWaitMs 0
    assert answers_at_once(0, False, MIN_BYTES, MAX_WAIT_MS, 0)  # no partition
    assert not answers_at_once(MIN_BYTES - 1, False, MIN_BYTES, MAX_WAIT_MS, 1)


def test_completes_when_appends_bring_min_bytes_and_not_before() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        a, b = FakePartition(), FakePartition()
        fetch = Fetch({("t", 0): a, ("t", 1): b})
        task = asyncio.ensure_future(fetch.delayed(clock).complete(fetch.read()))
        await _until(lambda: bool(a.waiters) and bool(b.waiters))
        a.available = 60
        a.notify()
        await _until(lambda: fetch.reads == 2 and bool(a.waiters))  # read again, not enough: waits again
        assert not task.done()
        b.available = 40  # 100 bytes over the two partitions: MinBytes
        b.notify()
        assert await task == (["t-0: 60 bytes", "t-1: 40 bytes"], 100)
        assert fetch.reads == 3
        assert clock.now_ms() == 0 and not a.waiters and not b.waiters and clock.pending == 0

    _run(body)


def test_completes_when_max_wait_passes_on_the_clock_with_what_is_there() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p = FakePartition()
        fetch = Fetch({("t", 0): p})
        task = asyncio.ensure_future(fetch.delayed(clock).complete(fetch.read()))
        await _until(lambda: bool(p.waiters))
        p.available = 10  # not MinBytes: no wake, the expiry answers with it
        clock.advance(MAX_WAIT_MS - 1)
        await _until(lambda: fetch.reads == 1 and bool(p.waiters))
        assert not task.done()
        clock.advance(1)
        assert await task == (["t-0: 10 bytes"], 10)
        assert not p.waiters

    _run(body)


def test_completes_when_a_partitions_leader_changes() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p, q = FakePartition(), FakePartition()
        fetch = Fetch({("t", 0): p, ("u", 0): q})
        task = asyncio.ensure_future(fetch.delayed(clock).complete(fetch.read()))
        await _until(lambda: bool(p.waiters))
        q.leader = False  # the broker is no longer its leader (Kafka's case A)
        q.notify()
        assert await task == (["t-0: 0 bytes", "u-0: NOT_LEADER_OR_FOLLOWER"], 0)
        assert clock.now_ms() == 0 and not p.waiters and not q.waiters

    _run(body)


def test_a_stopping_broker_answers_without_waiting() -> None:
    async def body() -> None:
        p = FakePartition()
        fetch = Fetch({("t", 0): p})
        answer = await fetch.delayed(ManualClock(start_ms=0), stopping=True).complete(fetch.read())
        assert answer == (["t-0: 0 bytes"], 0)
        assert fetch.reads == 1 and not p.waiters  # the first read is the answer

    _run(body)


def test_a_followers_held_fetch_answers_when_the_leader_appends_to_a_partition_it_lacks() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        parked = ParkedFollowerFetches()
        p, new = FakePartition(), FakePartition()
        fetch = Fetch({("t", 0): p})
        # (a follower's fetch is on real time: a minute, which this test does not reach)
        delayed = fetch.delayed(clock, replica_id=2, parked=parked, max_wait_ms=60_000)
        task = asyncio.ensure_future(delayed.complete(fetch.read()))
        await _until(lambda: parked.held(2) == 1)
        assert parked.wake_uncovering(p, [2]) == 0  # the fetch covers p: its waiter answers appends
        clock.advance(60_000)  # not on the manual clock
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done() and fetch.reads == 1
        assert parked.wake_uncovering(new, [2]) == 1
        assert await task == (["t-0: 0 bytes"], 0)  # no bytes, answered so the next fetch adds the partition
        assert parked.held(2) == 0 and not p.waiters

    _run(body)


def test_a_partition_the_broker_gains_while_the_fetch_waits_is_watched_from_the_next_wait() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p = FakePartition()
        partitions: dict[tuple[str, int], FakePartition] = {("t", 0): p}
        fetch = Fetch(partitions)
        delayed = DelayedFetch(fetch.read, fetch.respond, [("t", 0), ("t", 1)], lambda t, i: partitions.get((t, i)),
                               MIN_BYTES, MAX_WAIT_MS, clock=clock, stopping=lambda: False)
        task = asyncio.ensure_future(delayed.complete(fetch.read()))
        await _until(lambda: bool(p.waiters))
        gained = partitions[("t", 1)] = FakePartition()
        p.notify()  # (e.g. its high watermark moved): read again, not enough, waits on both now
        await _until(lambda: bool(gained.waiters))
        gained.available = MIN_BYTES
        gained.notify()
        assert await task == (["t-0: 0 bytes", f"t-1: {MIN_BYTES} bytes"], MIN_BYTES)

    _run(body)


def test_a_first_read_that_tryComplete_completes_answers_without_waiting() -> None:
    """Kafka's tryCompleteElseWatch: the fetch not answered by its first read (fetchMessages) is
    checked at once; a partition on an older segment (case F), or MinBytes counted by case G
    where the read found less (the response's MaxBytes cut it), answers it without a wait."""
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p = FakePartition()
        p.older_segment = True
        fetch = Fetch({("t", 0): p})
        task = asyncio.ensure_future(fetch.delayed(clock).start(fetch.read()))
        await _until(task.done)
        assert task.result() == (["t-0: 0 bytes"], 0)
        assert fetch.reads == 1 and not p.waiters and clock.now_ms() == 0

        q = FakePartition()
        fetch = Fetch({("t", 1): q})
        first = FetchRead(["t-1: 40 bytes"], 40, False, MIN_BYTES)
        assert not answers_at_once(first.size, first.complete, MIN_BYTES, MAX_WAIT_MS, 1)
        task = asyncio.ensure_future(fetch.delayed(clock).start(first))
        await _until(task.done)
        assert task.result() == (["t-1: 40 bytes"], 40)
        assert fetch.reads == 0 and not q.waiters and clock.now_ms() == 0

    _run(body)


def test_a_held_fetch_completes_when_its_partition_falls_on_an_older_segment() -> None:
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p = FakePartition()
        fetch = Fetch({("t", 0): p})
        task = asyncio.ensure_future(fetch.delayed(clock).start(fetch.read()))
        await _until(lambda: bool(p.waiters))
        p.available, p.older_segment = 10, True  # the log rolled: the high watermark is on a new segment
        p.notify()
        assert await task == (["t-0: 10 bytes"], 10)  # under MinBytes, answered at once
        assert clock.now_ms() == 0 and not p.waiters

    _run(body)


def test_case_g_counts_at_most_the_partitions_max_bytes() -> None:
    """A batch larger than the partition's max bytes: the read would return it whole, Kafka's
    case G counts max bytes of it, so the fetch waits for more."""
    async def body() -> None:
        clock = ManualClock(start_ms=0)
        p, q = FakePartition(), FakePartition()
        p.max_bytes = q.max_bytes = 60
        fetch = Fetch({("t", 0): p, ("t", 1): q})
        task = asyncio.ensure_future(fetch.delayed(clock).start(fetch.read()))
        await _until(lambda: bool(p.waiters))
        p.available = 500  # counted 60
        p.notify()
        await _until(lambda: fetch.reads == 2 and bool(p.waiters))
        assert not task.done()
        q.available = 40  # 60 + 40: MinBytes
        q.notify()
        assert await task == (["t-0: 500 bytes", "t-1: 40 bytes"], 540)
        assert clock.now_ms() == 0

    _run(body)


def _segmented_log(tmp_path: Any) -> tuple[PartitionLog, list[tuple[int, int]]]:
    """A log of two segments, [0, 3) and [3, 5), each batch one record; returns it and each
    segment's (base offset, size)."""
    from kbroker_protocol.records import Record, build_batch

    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for i in range(5):
        if i == 3:
            plog.roll()
        plog.append(build_batch([Record(value=b"v" * 100, timestamp=1)]))
    segments = [(seg.base_offset, seg.size) for seg in plog._segments]
    assert [base for base, _ in segments] == [0, 3]
    return plog, segments


def test_fetch_progress_is_kafkas_cases_f_and_g_on_a_logs_segments(tmp_path: Any) -> None:
    plog, [(_, first_size), (_, second_size)] = _segmented_log(tmp_path)
    batch = first_size // 3
    try:
        assert plog.offset_position(1) == (0, batch)
        assert plog.offset_position(3) == (3, 0)
        assert plog.offset_position(5) == (3, second_size)  # the log end: the active segment's end
        # case F: past the end offset (a consumer past the high watermark, a truncated leader)
        assert fetch_progress(plog, 4, 3, 1 << 20) is None
        assert fetch_progress(plog, 5, 4, 1 << 20, throttled=True) is None
        # case F: on an older segment than the end offset, unless a throttled follower's
        assert fetch_progress(plog, 2, 4, 1 << 20) is None
        assert fetch_progress(plog, 0, 5, 1 << 20) is None
        assert fetch_progress(plog, 1, 3, 1 << 20) is None  # (the end at the new segment's start)
        assert fetch_progress(plog, 2, 4, 1 << 20, throttled=True) == 0
        # case G: the bytes between the two offsets on one segment, at most max bytes
        assert fetch_progress(plog, 0, 2, 1 << 20) == 2 * batch
        assert fetch_progress(plog, 3, 5, 1 << 20) == second_size
        assert fetch_progress(plog, 3, 5, 50) == 50
        assert fetch_progress(plog, 3, 5, 1 << 20, throttled=True) == 0
        # caught up: nothing counted, however the segments lie
        assert fetch_progress(plog, 3, 3, 1 << 20) == 0
        assert fetch_progress(plog, 5, 5, 1 << 20) == 0
    finally:
        plog.close()
