"""The console's view of pending delayed records (docs/delayed-delivery.md).

Read as the brokers' schedulers read their state when they take over a partition: each partition of
the internal topic ``__kbroker_delayed`` from its start with Fetch requests to its leader, each
record decoded by :mod:`kbroker.delayed`'s own decoder; a stored record is pending while it is above
the partition's last progress watermark ``(due, offset)``. So the page needs READ on that topic
(a super user, or an ACL), and shows what a failover would deliver, on a single node or a cluster.
"""

from __future__ import annotations

from typing import Any

from kbroker.console.client import KafkaClient, KafkaError
from kbroker.console.ops import EARLIEST, LATEST, MAX_LIMIT, _offsets
from kbroker.console.records import _fetch, show_bytes
from kbroker.delayed_records import DELAYED_TOPIC, Pending, decode_stored

MAX_READ = 200_000  # records read per internal partition at most


async def pending(client: KafkaClient) -> dict[str, object]:
    try:
        leaders = await client.leaders(DELAYED_TOPIC)
    except KafkaError as exc:
        if exc.code == "UNKNOWN_TOPIC_OR_PARTITION":  # nothing was ever delayed
            return {"topic": DELAYED_TOPIC, "pending": [], "truncated": False}
        raise
    live = {i: leader for i, leader in leaders.items() if leader >= 0}
    starts = await _offsets(client, DELAYED_TOPIC, live, EARLIEST)
    ends = await _offsets(client, DELAYED_TOPIC, live, LATEST)
    rows: list[dict[str, Any]] = []
    truncated = False
    for index, leader in sorted(live.items()):
        found, cut = await _partition_pending(client, index, leader, starts[index], ends[index])
        truncated |= cut
        rows += found
    rows.sort(key=lambda r: (r["due"], r["internal_partition"], r["internal_offset"]))
    return {"topic": DELAYED_TOPIC, "pending": rows[:MAX_LIMIT], "count": len(rows),
            "truncated": truncated or len(rows) > MAX_LIMIT}


async def _partition_pending(client: KafkaClient, index: int, leader: int, start: int,
                             end: int) -> tuple[list[dict[str, Any]], bool]:
    """The pending records of one internal partition, and whether the read stopped at MAX_READ."""
    watermark = (-1, -1)
    candidates: dict[int, dict[str, Any]] = {}
    offset, read = start, 0
    while offset < end:
        if read >= MAX_READ:
            return [], True  # the later progress records were not read: nothing reliable to show
        records, _hw, after = await _fetch(client, DELAYED_TOPIC, index, leader, offset)
        for record in records:
            assert record.offset is not None
            if record.offset >= end:
                break
            read += 1
            stored = decode_stored(record)
            if isinstance(stored, tuple):  # a progress record: everything at or below it was delivered
                watermark = max(watermark, stored)
                candidates = {o: r for o, r in candidates.items() if (r["due"], o) > watermark}
            elif isinstance(stored, Pending) and (stored.due, stored.offset) > watermark:
                candidates[stored.offset] = {
                    "due": stored.due, "topic": stored.topic, "partition": stored.partition,
                    "internal_partition": index, "internal_offset": stored.offset,
                    "timestamp": record.timestamp, "key": show_bytes(record.key), "value": show_bytes(record.value)}
        if after <= offset:
            break
        offset = after
    return list(candidates.values()), False
