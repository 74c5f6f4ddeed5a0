"""What ``__kbroker_delayed`` holds (docs/delayed-delivery.md), and a scheduler's state in memory.

Three kinds of records share each internal partition:

- **stored** records: a delayed record with its target and due time as internal headers;
- **plan** records (``H_PLAN``), written by the scheduler *before* it delivers: the producer id,
  epoch and delivery time it uses, the watermark ``(due, offset)`` of the last record delivered,
  and each target's first sequence number. The records a plan delivers are exactly the stored
  records between the previous watermark and the plan's, grouped by target in (due, offset)
  order, so a new leader can rebuild the very same batches and send them again: the targets'
  producer state answers an already appended batch as a duplicate (exactly-once);
- **progress** records (``H_PROGRESS``), written once every batch of a plan has been taken: the
  watermark alone ("due,offset"). A plan after the last progress record is unfinished.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Protocol

from kbroker_protocol.records import Record

log = logging.getLogger(__name__)

DELAYED_TOPIC = "__kbroker_delayed"
DELIVER_AFTER = "kbroker-deliver-after-ms"
DELIVER_AT = "kbroker-deliver-at"
CREATE_TIME_HEADER = "kbroker-delayed-create-time"  # the original timestamp, on delivered records
# Headers of the stored records (stripped on delivery).
H_TOPIC = "__kbroker.delayed.topic"
H_PARTITION = "__kbroker.delayed.partition"
H_DUE = "__kbroker.delayed.due"
H_PROGRESS = "__kbroker.delayed.progress"
H_PLAN = "__kbroker.delayed.plan"
INTERNAL_PREFIX = "__kbroker.delayed."
MAX_DECOMPRESSED = 64 << 20

Target = tuple[str, int]
Watermark = tuple[int, int]
NO_WATERMARK: Watermark = (-1, -1)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclass(order=True, slots=True)
class Pending:
    """A pending record: its place only (the scheduler reads the record back from the internal
    partition when it delivers it, so memory does not grow with the records' size)."""

    due: int
    offset: int
    topic: str = field(compare=False)
    partition: int = field(compare=False)
    record: Record | None = field(default=None, compare=False)  # only while being delivered


@dataclass(slots=True)
class Plan:
    """One delivery step: its records per target (in order) and how they are produced."""

    producer_id: int
    epoch: int
    time: int  # the delivery time: the delivered records' timestamp
    watermark: Watermark
    sequences: dict[Target, int]  # each target's first sequence number (-1: no producer id)
    groups: dict[Target, list[Pending]] = field(default_factory=dict)
    done: set[Target] = field(default_factory=set)  # targets that took their batch (or are gone)

    def encode(self, now_ms: int) -> Record:
        value = {"pid": self.producer_id, "epoch": self.epoch, "time": self.time, "due": self.watermark[0],
                 "offset": self.watermark[1], "targets": [[t, p, s] for (t, p), s in self.sequences.items()]}
        return Record(value=json.dumps(value, separators=(",", ":")).encode(), timestamp=now_ms,
                      headers=((H_PLAN, b""),))


@dataclass(slots=True)
class State:
    """One internal partition this broker leads."""

    index: int
    heap: list[Pending] = field(default_factory=list)
    watermark: Watermark = NO_WATERMARK  # planned (the floor of new due times)
    delivered_watermark: Watermark = NO_WATERMARK  # covered by the last progress record
    timer: Cancellable | None = None
    timer_due: int = 0
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    producer_id: int = -1  # the scheduler's own idempotent producer id (InitProducerId's allocator)
    epoch: int = 0
    sequences: dict[Target, int] = field(default_factory=dict)  # next sequence per target
    plan: Plan | None = None  # written, not finished
    progress_offset: int = -1  # offset of the last progress record
    last_clean: int = 0
    clean_to: int = -1  # the next log start offset, once the progress record at clean_after is replicated
    clean_after: int = -1


def stored_record(record: Record, topic: str, partition: int, due: int) -> Record:
    headers = tuple(h for h in record.headers if h[0] not in (DELIVER_AFTER, DELIVER_AT)
                    and not h[0].startswith(INTERNAL_PREFIX))
    return Record(key=record.key, value=record.value, timestamp=record.timestamp,
                  headers=headers + ((H_TOPIC, topic.encode()), (H_PARTITION, str(partition).encode()),
                                     (H_DUE, str(due).encode())))


def progress_record(watermark: Watermark, now_ms: int) -> Record:
    return Record(value=f"{watermark[0]},{watermark[1]}".encode(), timestamp=now_ms, headers=((H_PROGRESS, b""),))


def delivered_record(entry: Pending, now: int) -> Record:
    r = entry.record
    assert r is not None
    return Record(key=r.key, value=r.value, timestamp=now,
                  headers=tuple(h for h in r.headers if not h[0].startswith(INTERNAL_PREFIX))
                  + ((CREATE_TIME_HEADER, str(r.timestamp).encode()),))


def decode_stored(record: Record) -> Pending | Watermark | Plan | None:
    """A stored record, a progress watermark, a plan (without its groups), or None (unreadable)."""
    headers = dict(record.headers)
    if H_PROGRESS in headers:
        try:
            due_text, offset_text = (record.value or b"").split(b",")
            return int(due_text), int(offset_text)
        except ValueError:
            log.warning("delayed delivery: unreadable progress record at %s", record.offset)
            return None
    if H_PLAN in headers:
        try:
            v = json.loads(record.value or b"")
            return Plan(int(v["pid"]), int(v["epoch"]), int(v["time"]), (int(v["due"]), int(v["offset"])),
                        {(str(t), int(p)): int(s) for t, p, s in v["targets"]})
        except (ValueError, KeyError, TypeError):
            log.warning("delayed delivery: unreadable plan record at %s", record.offset)
            return None
    try:
        topic = (headers[H_TOPIC] or b"").decode()
        partition = int(headers[H_PARTITION] or b"")
        due = int(headers[H_DUE] or b"")
    except (KeyError, ValueError, UnicodeDecodeError):
        log.warning("delayed delivery: unreadable stored record at %s", record.offset)
        return None
    assert record.offset is not None
    return Pending(due, record.offset, topic, partition, record)


def due_time(record: Record, now_ms: int, max_delay: int) -> tuple[int, str | None, bool]:
    """``(due time, error or None, carries a delay header)`` of a produced record."""
    found = [(key, value) for key, value in record.headers if key in (DELIVER_AFTER, DELIVER_AT)]
    if not found:
        return now_ms, None, False
    if len(found) > 1:
        return now_ms, f"A record may carry only one of {DELIVER_AFTER} and {DELIVER_AT}", True
    name, raw = found[0]
    if not raw or not raw.isdigit() or len(raw) > 19:
        shown = raw.decode("ascii", "replace")[:40] if raw is not None else "null"
        return now_ms, f"Header {name} must be a non-negative decimal integer of milliseconds, got '{shown}'", True
    value = int(raw)
    due = now_ms + value if name == DELIVER_AFTER else value
    if due - now_ms > max_delay:
        return now_ms, (f"Header {name} asks for a delay of {due - now_ms} ms, above "
                        f"kbroker.delayed.max.delay.ms={max_delay}"), True
    return due, None, True
