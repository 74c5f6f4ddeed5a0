"""The leader epoch cache (kbroker/log/leader_epoch.py) against Kafka's semantics (cases read from Kafka's
LeaderEpochFileCacheTest), its leader-epoch-checkpoint file, and a model of assign and truncation."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from kbroker.log.leader_epoch import (
    CHECKPOINT_FILE,
    UNDEFINED_EPOCH,
    UNDEFINED_OFFSET,
    EpochCheckpointError,
    LeaderEpochCache,
    format_checkpoint,
    parse_checkpoint,
    read_checkpoint_file,
)

U = (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def cache_of(*entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(None)
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


# -- the cache against Kafka's semantics (cases read from Kafka's LeaderEpochFileCacheTest) --------

STANDARD = ((2, 6), (3, 8), (4, 11))


# (assigned in order, expected entries)
ASSIGN_CASES = [
    pytest.param([(2, 10)], [(2, 10)], id="first-entry"),
    pytest.param([(2, 9), (2, 10)], [(2, 9)], id="same-epoch-later-offset-is-ignored"),
    pytest.param([(2, 6), (2, 7)], [(2, 6)], id="same-epoch-next-offset-is-ignored"),
    pytest.param([(2, 9), (3, 9)], [(3, 9)], id="new-epoch-same-offset-replaces"),
    pytest.param([(2, 6), (3, 5)], [(3, 5)], id="new-epoch-lower-offset-replaces"),
    pytest.param([(1, 5), (2, 6), (1, 7)], [(1, 7)], id="older-epoch-later-offset-cuts-newer"),
    pytest.param([(5, 11), (6, 12), (7, 13), (7, 12)], [(5, 11), (7, 12)], id="latest-epoch-earlier-offset"),
    pytest.param([(0, 0), (1, 0)], [(1, 0)], id="leader-changes-before-any-data"),
    pytest.param([(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (2, 6)], [(0, 0), (1, 3), (2, 6)],
                 id="follower-receives-many-batches"),
]


@pytest.mark.parametrize(("assigned", "expected"), ASSIGN_CASES)
def test_assign(assigned, expected):
    assert cache_of(*assigned).entries() == expected


def test_assign_reports_whether_it_changed_and_rejects_negative_values():
    cache = cache_of()
    assert cache.assign(2, 6) is True
    assert cache.assign(2, 9) is False
    assert cache.latest_epoch == 2
    with pytest.raises(ValueError):
        cache.assign(-1, 10)
    with pytest.raises(ValueError):
        cache.assign(3, -1)
    assert cache.entries() == [(2, 6)]


# (entries, requested epoch, log end offset, expected (epoch, end offset))
END_OFFSET_CASES = [
    pytest.param([], 0, 0, U, id="empty-cache"),
    pytest.param([], 7, 0, U, id="empty-cache-any-epoch"),
    pytest.param([], -1, 73, U, id="empty-cache-undefined-epoch"),
    pytest.param([(2, 11), (3, 12)], -1, 0, U, id="undefined-epoch"),
    pytest.param([(2, 10)], 2, 11, (2, 11), id="latest-epoch-gives-log-end"),
    pytest.param([(2, 6)], 2, 7, (2, 7), id="epochs-need-not-start-at-zero"),
    pytest.param([(2, 100)], 3, 100, U, id="above-every-epoch"),
    pytest.param([(5, 11), (6, 12), (7, 13)], 4, 0, (4, 11), id="below-every-epoch"),
    pytest.param([(1, 11), (2, 13), (3, 15)], 2, 17, (2, 15), id="older-epoch-ends-at-next-start"),
    pytest.param([(0, 10), (2, 13), (4, 17)], 1, 0, (0, 13), id="gap-answers-the-epoch-below"),
    pytest.param([(0, 10), (2, 13), (4, 17)], 3, 0, (2, 17), id="gap-answers-the-epoch-below-2"),
    pytest.param([(0, 0), (1, 0)], 0, 0, (0, 0), id="replaced-epoch-is-below-every-epoch"),
    pytest.param([(0, 0), (1, 5), (2, 10)], 1, 10, (1, 10), id="middle-epoch"),
    pytest.param([(0, 0), (1, 5), (2, 10)], 0, 10, (0, 5), id="first-epoch"),
]


@pytest.mark.parametrize(("entries", "requested", "log_end", "expected"), END_OFFSET_CASES)
def test_end_offset_for(entries, requested, log_end, expected):
    assert cache_of(*entries).end_offset_for(requested, log_end) == expected


def test_end_offset_for_as_leaders_change():
    cache = cache_of((0, 0), (1, 0))
    assert cache.end_offset_for(1, 0) == (1, 0)
    assert cache.end_offset_for(1, 5) == (1, 5)
    cache.assign(2, 5)
    assert cache.end_offset_for(2, 10) == (2, 10)
    assert cache.end_offset_for(1, 10) == (1, 5)
    assert cache.end_offset_for(0, 10) == (0, 0)  # epoch 0 is gone: below every epoch


@pytest.mark.parametrize(("offset", "expected"), [
    pytest.param(8, [(2, 6)], id="on-a-boundary-removes-it"),
    pytest.param(9, [(2, 6), (3, 8)], id="between-boundaries"),
    pytest.param(11, [(2, 6), (3, 8)], id="latest-start"),
    pytest.param(12, list(STANDARD), id="past-latest-start"),
    pytest.param(6, [], id="first-start"),
    pytest.param(-1, list(STANDARD), id="undefined-offset-changes-nothing"),
])
def test_truncate_from_end(offset, expected):
    cache = cache_of(*STANDARD)
    assert cache.truncate_from_end(offset) is (expected != list(STANDARD))
    assert cache.entries() == expected
    assert cache.latest_epoch == (expected[-1][0] if expected else -1)


@pytest.mark.parametrize(("offset", "expected"), [
    pytest.param(8, [(3, 8), (4, 11)], id="on-a-boundary"),
    pytest.param(9, [(3, 9), (4, 11)], id="between-boundaries-moves-the-epoch-up"),
    pytest.param(1, list(STANDARD), id="before-first-changes-nothing"),
    pytest.param(6, list(STANDARD), id="at-first-changes-nothing"),
    pytest.param(11, [(4, 11)], id="at-latest"),
    pytest.param(15, [(4, 15)], id="past-latest"),
    pytest.param(-1, list(STANDARD), id="undefined-offset-changes-nothing"),
])
def test_truncate_from_start(offset, expected):
    cache = cache_of(*STANDARD)
    cache.truncate_from_start(offset)
    assert cache.entries() == expected


def test_truncate_from_start_inside_the_first_epoch():
    cache = cache_of((0, 0), (1, 7), (2, 10))
    cache.truncate_from_start(5)
    assert cache.entries() == [(0, 5), (1, 7), (2, 10)]


def test_truncation_of_an_empty_cache():
    cache = cache_of()
    assert not cache.truncate_from_start(7)
    assert not cache.truncate_from_end(7)
    assert cache.entries() == []


@pytest.mark.parametrize(("offset", "expected"), [(25, 1), (20, 1), (30, 5), (50, 5), (10, 0), (5, None)])
def test_epoch_for_offset(offset, expected):
    assert cache_of((0, 10), (1, 20), (5, 30)).epoch_for_offset(offset) == expected


# -- the checkpoint file ------------------------------------------------------------------------


def test_file_format_is_kafkas(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    cache = LeaderEpochCache(path)
    for epoch, offset in STANDARD:
        cache.assign(epoch, offset)
    assert path.read_bytes() == b"0\n3\n2 6\n3 8\n4 11\n"
    cache.truncate_from_end(11)
    cache.truncate_from_start(8)
    assert path.read_bytes() == b"0\n1\n3 8\n"
    assert read_checkpoint_file(path) == [(3, 8)]
    assert not (tmp_path / (CHECKPOINT_FILE + ".tmp")).exists()
    cache.clear()
    assert path.read_bytes() == b"0\n0\n"


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1)), max_size=8))
def test_format_round_trip(raw):
    cache = cache_of(*raw)
    assert parse_checkpoint(format_checkpoint(cache.entries())) == cache.entries()


@pytest.mark.parametrize("data", [b"", b"0\n", b"0"])
def test_kafka_reads_a_short_file_as_empty(data):
    assert parse_checkpoint(data) == []


def test_kafka_whitespace_is_accepted():
    assert parse_checkpoint(b"0\n2\n1  5\n2\t9\n") == [(1, 5), (2, 9)]
    assert parse_checkpoint(b"0\r\n1\r\n1 5\r\n") == [(1, 5)]


@pytest.mark.parametrize("data", [
    pytest.param(b"1\n0\n", id="unknown-version"),
    pytest.param(b"x\n0\n", id="garbage-version"),
    pytest.param(b"0\nx\n", id="garbage-count"),
    pytest.param(b"0\n2\n1 5\n", id="fewer-lines-than-counted"),
    pytest.param(b"0\n1\n1 5\n2 9\n", id="more-lines-than-counted"),
    pytest.param(b"0\n1\n1 5 7\n", id="three-fields"),
    pytest.param(b"0\n1\n15\n", id="one-field"),
    pytest.param(b"0\n1\n1 x\n", id="bad-number"),
    pytest.param(b"0\n1\n1 1_0\n", id="python-only-number"),
    pytest.param(b"0\n1\n-1 5\n", id="negative-epoch"),
    pytest.param(b"0\n1\n2147483648 5\n", id="epoch-above-int32"),
    pytest.param(b"0\n2\n2 5\n1 9\n", id="epochs-going-back"),
    pytest.param(b"0\n2\n1 9\n2 9\n", id="offsets-not-increasing"),
    pytest.param(b"0\n1\n1 5\x00\n", id="nul-byte"),
    pytest.param(b"\xff\xfe\n", id="not-utf8"),
])
def test_damaged_file_fails_the_format_check(data):
    with pytest.raises(EpochCheckpointError):
        parse_checkpoint(data)


# -- a model of assign and truncation ------------------------------------------------------------


class Reference:
    """Kafka's rules restated plainly over a dict."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}

    def entries(self) -> list[tuple[int, int]]:
        return sorted(self.epochs.items())

    def assign(self, epoch: int, offset: int) -> None:
        entries = self.entries()
        if entries and entries[-1][0] == epoch and offset >= entries[-1][1]:
            return
        self.epochs = {e: s for e, s in entries if e < epoch and s < offset}
        self.epochs[epoch] = offset

    def truncate_from_end(self, offset: int) -> None:
        if offset >= 0:
            self.epochs = {e: s for e, s in self.epochs.items() if s < offset}

    def truncate_from_start(self, offset: int) -> None:
        below = [(e, s) for e, s in self.entries() if s <= offset]
        if below:
            self.epochs = {e: s for e, s in self.epochs.items() if s > offset}
            self.epochs[below[-1][0]] = offset

    def end_offset_for(self, requested: int, log_end: int) -> tuple[int, int]:
        entries = self.entries()
        if requested == -1 or not entries:
            return U
        if entries[-1][0] == requested:
            return requested, log_end
        higher = [(e, s) for e, s in entries if e > requested]
        lower = [(e, s) for e, s in entries if e <= requested]
        if not higher:
            return U
        return (lower[-1][0] if lower else requested), higher[0][1]

    def epoch_for_offset(self, offset: int) -> int | None:
        found = [e for e, s in self.entries() if s <= offset]
        return found[-1] if found else None


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.integers(0, 8), st.integers(0, 40)),
        st.tuples(st.just("end"), st.integers(-1, 40)),
        st.tuples(st.just("start"), st.integers(-1, 40)),
        st.tuples(st.just("clear")),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(-1, 9), st.integers(0, 45))
def test_model(ops, requested, probe):
    cache, ref = LeaderEpochCache(None), Reference()
    for op in ops:
        if op[0] == "assign":
            cache.assign(op[1], op[2])
            ref.assign(op[1], op[2])
        elif op[0] == "end":
            cache.truncate_from_end(op[1])
            ref.truncate_from_end(op[1])
        elif op[0] == "start":
            cache.truncate_from_start(op[1])
            ref.truncate_from_start(op[1])
        else:
            cache.clear()
            ref.epochs.clear()
        entries = cache.entries()
        assert entries == ref.entries()
        assert cache.latest_epoch == (entries[-1][0] if entries else -1)
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(entries, entries[1:], strict=False))
        log_end = max([probe] + [s for _, s in entries])
        assert cache.end_offset_for(requested, log_end) == ref.end_offset_for(requested, log_end)
        assert cache.epoch_for_offset(probe) == ref.epoch_for_offset(probe)
    assert parse_checkpoint(format_checkpoint(cache.entries())) == ref.entries()
