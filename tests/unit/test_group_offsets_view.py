"""Offsets read at the high watermark (issue 17): a commit applied when appended is not read until
its record is below the high watermark of the group's partition, as Kafka's OffsetFetch reads its
timeline at the last committed offset."""

from __future__ import annotations

from kbroker.coordinator.group_offsets import OffsetAndMetadata, OffsetStore

TP = ("t", 0)


def _om(offset: int, record_offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, -1, "", 0, -1, record_offset)


def test_unreplicated_commit_is_not_read_until_the_high_watermark_passes_it():
    store = OffsetStore()
    store.apply_written("g", TP, _om(5, 10), 10, high_watermark=10)
    assert store.replicated_offsets("g", 10) == {}  # not yet below the high watermark
    assert store.group_offsets("g")[TP].offset == 5  # later writes build on it
    assert store.replicated_offsets("g", 11)[TP].offset == 5
    assert store.unreplicated == {}  # settled


def test_reads_keep_the_replicated_value_across_several_unreplicated_writes():
    store = OffsetStore()
    store.apply_written("g", TP, _om(5, 10), 10, high_watermark=10)
    store.apply_written("g", TP, _om(7, 11), 11, high_watermark=11)  # 5 is replicated now
    store.apply_written("g", TP, _om(9, 12), 12, high_watermark=11)
    assert store.replicated_offsets("g", 11)[TP].offset == 5
    assert store.replicated_offsets("g", 12)[TP].offset == 5  # 7 replicated, 9 not: still the value before 7
    assert store.replicated_offsets("g", 13)[TP].offset == 9


def test_unreplicated_tombstone_keeps_the_offset_readable():
    store = OffsetStore()
    store.apply_written("g", TP, _om(5, 10), 10, high_watermark=10)
    store.apply_written("g", TP, None, 11, high_watermark=11)
    assert store.replicated_offsets("g", 11)[TP].offset == 5
    assert store.replicated_offsets("g", 12) == {}


def test_transactional_offsets_read_once_the_commit_marker_is_replicated():
    store = OffsetStore()
    store.apply_pending(7, 0, "g", TP, _om(3, 20))
    store.note_unreplicated("g", TP, 21, high_watermark=21)  # the COMMIT marker at 21
    store.end_txn(7, True, {"g"})
    assert store.group_offsets("g")[TP].offset == 3
    assert store.replicated_offsets("g", 21) == {}
    assert store.replicated_offsets("g", 22)[TP].offset == 3


def test_dropping_a_group_forgets_its_unreplicated_writes():
    store = OffsetStore()
    store.apply_written("g", TP, _om(5, 10), 10, high_watermark=10)
    store.drop_group("g")
    assert store.unreplicated == {} and store.replicated_offsets("g", 0) == {}
