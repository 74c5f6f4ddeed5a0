"""Committed offsets of every group, and the transactional offsets not yet committed or aborted.

State changes only by applying ``__consumer_offsets`` records (:meth:`OffsetStore.apply` and
:meth:`apply_pending`/:meth:`end_txn`), whether they were just written or are being replayed at
start-up, so what a restarted broker knows is exactly what the log says.

Live commits are applied when appended, before they are replicated (later writes build on them,
as on Kafka's uncommitted timeline state); :meth:`OffsetStore.apply_written` remembers what each
partition's offset was before its first write not yet below the high watermark, so that
:meth:`OffsetStore.replicated_offsets` answers reads with the state at the high watermark, as
Kafka's OffsetFetch reads its timeline at the last committed offset.
"""

from __future__ import annotations

from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1  # only from OffsetCommit v2-4 with an explicit retention time
    record_offset: int = -1  # position of the record in __consumer_offsets


class OffsetStore:
    def __init__(self) -> None:
        self.committed: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        # producer id -> group -> partition -> offset, until the transaction ends
        self.pending: dict[int, dict[str, dict[TopicPartition, OffsetAndMetadata]]] = {}
        self.pending_epoch: dict[int, int] = {}
        # group -> partition -> (offset before the first unreplicated write, record offset of the
        # last write): live writes not yet below the high watermark of the group's partition.
        self.unreplicated: dict[str, dict[TopicPartition, tuple[OffsetAndMetadata | None, int]]] = {}

    # -- apply (live and replay) ------------------------------------------------------------------------

    def apply(self, group: str, tp: TopicPartition, value: OffsetAndMetadata | None) -> None:
        if value is None:
            offsets = self.committed.get(group)
            if offsets is not None:
                offsets.pop(tp, None)
                if not offsets:
                    del self.committed[group]
            return
        self.committed.setdefault(group, {})[tp] = value

    def apply_written(self, group: str, tp: TopicPartition, value: OffsetAndMetadata | None,
                      record_offset: int, high_watermark: int) -> None:
        """:meth:`apply` a record just appended at ``record_offset`` (not replicated yet; the
        partition's high watermark is ``high_watermark``)."""
        self.note_unreplicated(group, tp, record_offset, high_watermark)
        self.apply(group, tp, value)

    def note_unreplicated(self, group: str, tp: TopicPartition, record_offset: int, high_watermark: int) -> None:
        """``group``'s offset of ``tp`` is about to change by a record at ``record_offset`` not yet
        below ``high_watermark``: reads keep seeing the current one until it is."""
        by_tp = self.unreplicated.setdefault(group, {})
        earlier = by_tp.get(tp)
        if earlier is not None and earlier[1] < high_watermark:
            earlier = None  # the earlier write is replicated: it is what reads see until this one is
        before = earlier[0] if earlier is not None else self.committed.get(group, {}).get(tp)
        by_tp[tp] = (before, record_offset)

    def replicated_offsets(self, group: str, high_watermark: int) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offsets of ``group`` as of ``high_watermark`` of its partition: writes at or above
        it are not visible (their earlier value is)."""
        by_tp = self.unreplicated.get(group)
        if by_tp:
            for tp in [tp for tp, (_, last) in by_tp.items() if last < high_watermark]:
                del by_tp[tp]
            if not by_tp:
                del self.unreplicated[group]
        current = self.committed.get(group, {})
        if not by_tp:
            return current
        view = dict(current)
        for tp, (before, _) in by_tp.items():
            if before is None:
                view.pop(tp, None)
            else:
                view[tp] = before
        return view

    def apply_pending(self, producer_id: int, producer_epoch: int, group: str, tp: TopicPartition,
                      value: OffsetAndMetadata | None) -> None:
        self.pending_epoch[producer_id] = producer_epoch
        groups = self.pending.setdefault(producer_id, {})
        if value is None:
            groups.setdefault(group, {}).pop(tp, None)
        else:
            groups.setdefault(group, {})[tp] = value

    def end_txn(self, producer_id: int, commit: bool, groups: set[str] | None = None) -> None:
        """Materialize (commit) or drop (abort) a producer's pending offsets of ``groups`` (all if
        None). A committed pending offset only replaces a committed one written before it."""
        by_group = self.pending.get(producer_id)
        if not by_group:
            return
        for group in list(by_group):
            if groups is not None and group not in groups:
                continue
            offsets = by_group.pop(group)
            if not commit:
                continue
            for tp, value in offsets.items():
                current = self.committed.get(group, {}).get(tp)
                if current is None or current.record_offset < value.record_offset:
                    self.apply(group, tp, value)
        if not by_group:
            del self.pending[producer_id]
            self.pending_epoch.pop(producer_id, None)

    # -- queries --------------------------------------------------------------------------------------------

    def group_offsets(self, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
        return self.committed.get(group, {})

    def has_pending(self, group: str, tp: TopicPartition | None = None) -> bool:
        for by_group in self.pending.values():
            offsets = by_group.get(group)
            if offsets and (tp is None or tp in offsets):
                return True
        return False

    def pending_producers(self, group: str) -> list[int]:
        return [pid for pid, by_group in self.pending.items() if by_group.get(group)]

    def drop_group(self, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
        self.unreplicated.pop(group, None)
        return self.committed.pop(group, {})

    def expired(self, group: str, now_ms: int, retention_ms: int, base_ms: int | None) -> list[TopicPartition]:
        """Offsets of ``group`` past retention. ``base_ms`` is when the group became empty (None for
        groups without a protocol, whose offsets age from their own commit); an explicit expire
        timestamp from an old OffsetCommit wins."""
        out = []
        for tp, value in self.committed.get(group, {}).items():
            if value.expire_timestamp_ms >= 0:
                deadline = value.expire_timestamp_ms
            else:
                base = value.commit_timestamp_ms if base_ms is None else max(base_ms, value.commit_timestamp_ms)
                deadline = base + retention_ms
            if now_ms >= deadline:
                out.append(tp)
        return out
