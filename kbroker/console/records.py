"""The console's message browser, live tail and produce: Fetch, ListOffsets and Produce requests
(see :mod:`kbroker.console.ops`). Bytes are shown safely: JSON pretty-printed, text as is, other
bytes as hex, always put into text nodes by the page."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from kbroker.console.client import KafkaClient, KafkaError, check, leaderless
from kbroker.console.ops import (
    EARLIEST,
    LATEST,
    MAX_LIMIT,
    MAX_SCAN,
    Invalid,
    NotFound,
    _offsets,
    topic_name,
    want_int,
    want_str,
)
from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import DecodedBatch, Record, build_batch, decode_batch

SHOWN_BYTES = 64 * 1024


# -- showing bytes ----------------------------------------------------------------------------


def show_bytes(data: bytes | None) -> dict[str, object]:
    """Bytes for the page: JSON pretty-printed, UTF-8 text as is, anything else as hex.

    The page puts these strings in text nodes only; nothing here is markup.
    """
    if data is None:
        return {"kind": "null", "text": None, "size": 0}
    size = len(data)
    cut = data[:SHOWN_BYTES]
    out: dict[str, Any] = {"size": size, "truncated": size > SHOWN_BYTES}
    try:
        text = cut.decode("utf-8")
    except UnicodeDecodeError as exc:
        if out["truncated"] and exc.start >= len(cut) - 3 and exc.reason == "unexpected end of data":
            text = cut[:exc.start].decode("utf-8")  # the cut fell inside a character
        else:
            out.update(kind="binary", text=cut.hex(" "), escaped=repr(cut)[2:-1])
            return out
    if not out["truncated"] and text.strip()[:1] in ("{", "[", '"') or text.strip() in ("true", "false", "null"):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            out.update(kind="json", text=text, pretty=json.dumps(parsed, indent=2, ensure_ascii=False))
            return out
    if any(ord(c) < 32 and c not in "\n\r\t" or c == "\x7f" for c in text):
        out.update(kind="binary", text=cut.hex(" "), escaped=text.encode("unicode_escape").decode("ascii"))
        return out
    out.update(kind="text", text=text)
    return out


def _record(partition: int, r: Record) -> dict[str, object]:
    return {
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": show_bytes(r.key),
        "value": show_bytes(r.value),
        "headers": [{"key": k, "value": show_bytes(v)} for k, v in r.headers],
    }


def _matches(rec: dict[str, Any], needle: str) -> bool:
    parts = [rec["key"].get("text"), rec["value"].get("text"), rec["value"].get("escaped"),
             rec["key"].get("escaped")]
    for h in rec["headers"]:
        parts += [h["key"], h["value"].get("text")]
    return any(p is not None and needle in p.lower() for p in parts)


# -- records ----------------------------------------------------------------------------------


def _batches(records: bytes | memoryview | None) -> list[DecodedBatch]:
    """The whole batches in a Fetch answer's records (a partial last one is dropped, as clients do)."""
    if not records:
        return []
    buf = bytes(records)
    out, pos = [], 0
    while pos + 12 <= len(buf):
        (length,) = struct.unpack_from(">i", buf, pos + 8)
        end = pos + 12 + length
        if end > len(buf):
            break
        out.append(decode_batch(buf, pos))
        pos = end
    return out


async def _fetch_many(client: KafkaClient, topic: str, leader: int, offsets: dict[int, int],
                      max_wait_ms: int = 0) -> dict[int, tuple[list[Record], int, int]]:
    """One Fetch to ``leader`` for these partitions from these offsets (waiting up to
    ``max_wait_ms`` for a first byte): per partition, its records from the offset (control
    records left out), its high watermark and the offset after the last batch read."""
    Req = messages.FetchRequest
    parts = [Req.FetchTopic.FetchPartition(partition=i, current_leader_epoch=-1, fetch_offset=o,
                                           last_fetched_epoch=-1, log_start_offset=-1,
                                           partition_max_bytes=1024 * 1024)
             for i, o in sorted(offsets.items())]
    resp = await client.send(1, 12, node=leader, timeout=30 + max_wait_ms / 1000,
                             lane="poll" if max_wait_ms else "main", replica_id=-1,
                             max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=4 * 1024 * 1024,
                             isolation_level=0, session_id=0, session_epoch=-1,
                             topics=[Req.FetchTopic(topic=topic, partitions=parts)],
                             forgotten_topics_data=[], rack_id="")
    check(resp.error_code, None, "Fetch")
    out = {}
    for p in resp.responses[0].partitions:
        check(p.error_code, None, f"Fetch {topic}-{p.partition_index}")
        offset = offsets[p.partition_index]
        records: list[Record] = []
        next_offset = offset
        for batch in _batches(p.records):
            next_offset = batch.header.base_offset + batch.header.last_offset_delta + 1
            if batch.header.is_control:
                continue
            records.extend(r for r in batch.records if r.offset is not None and r.offset >= offset)
        out[p.partition_index] = (records, p.high_watermark, next_offset)
    return out


async def _fetch(client: KafkaClient, topic: str, partition: int, leader: int, offset: int,
                 max_wait_ms: int = 0) -> tuple[list[Record], int, int]:
    return (await _fetch_many(client, topic, leader, {partition: offset}, max_wait_ms))[partition]


def _take(partition: int, records: Iterable[Record], needle: str, rows: list[dict[str, Any]], room: int) -> int:
    """Append to ``rows`` the records (in the order given) that match ``needle`` (all when it is
    empty), at most ``room`` of them; how many were appended."""
    taken = 0
    for r in records:
        row = _record(partition, r)
        if not needle or _matches(row, needle):
            rows.append(row)
            taken += 1
            if taken >= room:
                break
    return taken


async def _read_range(client: KafkaClient, topic: str, partition: int, leader: int, start: int,
                      end: int) -> list[Record]:
    out: list[Record] = []
    offset = start
    while offset < end:
        records, hw, after = await _fetch(client, topic, partition, leader, offset)
        out.extend(r for r in records if r.offset < end)  # type: ignore[operator]  # (a fetched record has its offset)
        if after <= offset:
            break
        offset = after
        end = min(end, hw)
    return out


def _partitions_arg(query: Mapping[str, str], leaders: dict[int, int]) -> list[int]:
    value = query.get("partition", "all")
    if value in ("", "all", None):
        return sorted(leaders)
    index = want_int(query, "partition", low=0)
    if index not in leaders:
        raise Invalid("partition", f"partition {index} does not exist (the topic has {len(leaders)})")
    return [index]


# A leader named by this node's metadata that has not applied the same metadata yet answers
# UNKNOWN_TOPIC_OR_PARTITION, one that moved NOT_LEADER_OR_FOLLOWER: a Kafka consumer refreshes its
# metadata and fetches again, a producer sends again. Neither error wrote or changed anything, so the
# console's reads (browse, tail) and its produce start over with fresh leaders, for up to
# RETRY_WAIT seconds. A partition without a leader (LEADER_NOT_AVAILABLE, from the metadata) is
# answered at once.
RETRY = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
RETRY_WAIT = 10.0
RETRY_BACKOFF = 0.1  # Kafka's retry.backoff.ms

_T = TypeVar("_T")


async def _retrying(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """``attempt()`` again after a :data:`RETRY` error, for up to RETRY_WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_WAIT
    while True:
        try:
            return await attempt()
        except KafkaError as exc:
            if exc.error_code not in RETRY or loop.time() >= deadline:
                raise
        await asyncio.sleep(RETRY_BACKOFF)


async def browse(client: KafkaClient, topic: str, query: Mapping[str, str]) -> dict[str, object]:
    """Records newest first (see _browse), read again with fresh leaders after a retriable error."""
    return await _retrying(lambda: _browse(client, topic, query))


async def tail(client: KafkaClient, topic: str, query: Mapping[str, str]) -> dict[str, object]:
    """Records after the given positions (see _tail), read again with fresh leaders after a
    retriable error."""
    return await _retrying(lambda: _tail(client, topic, query))


async def _leaders_of_known(client: KafkaClient, topic: str) -> dict[int, int]:
    """partition -> leader of ``topic``; a topic the metadata does not have is NotFound at once
    (not retried: it is the node's own metadata saying so, not a leader that lags)."""
    try:
        return await client.leaders(topic)
    except KafkaError as exc:
        if exc.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFound(f"no topic {topic!r}") from None
        raise


async def _browse(client: KafkaClient, topic: str, query: Mapping[str, str]) -> dict[str, object]:
    """Records newest first: the newest ``limit``, or ``limit`` from ``offset``/``timestamp`` on,
    of one partition or all; ``filter`` keeps the records whose key, value or a header contains
    the text (case-insensitive), scanning back up to MAX_SCAN records per partition."""
    topic_name(topic, "topic")
    leaders = await _leaders_of_known(client, topic)
    partitions = _partitions_arg(query, leaders)
    # Partitions without a leader (offline) cannot be read: named in the answer, or refused when
    # asked for alone.
    unavailable = [i for i in partitions if leaders[i] < 0]
    if unavailable and len(partitions) == 1:
        raise leaderless(topic, partitions[0], f"browse {topic}")
    partitions = [i for i in partitions if leaders[i] >= 0]
    limit = want_int(query, "limit", default=50, low=1, high=MAX_LIMIT)
    needle = (query.get("filter") or "").lower()
    chosen = {i: leaders[i] for i in partitions}
    starts = await _offsets(client, topic, chosen, EARLIEST)
    ends = await _offsets(client, topic, chosen, LATEST)
    if query.get("offset") not in (None, ""):
        first = want_int(query, "offset", low=0)
        froms = {i: max(first, starts[i]) for i in partitions}
    elif query.get("timestamp") not in (None, ""):
        ts = want_int(query, "timestamp", low=0)
        found = await _offsets(client, topic, chosen, ts)
        froms = {i: ends[i] if found[i] < 0 else found[i] for i in partitions}
    else:
        froms = None
    rows: list[dict[str, Any]] = []
    scanned = 0
    for i in partitions:
        if froms is not None:
            # Forward from a position: the first matches after it.
            offset, got = froms[i], 0
            while offset < ends[i] and got < limit and scanned < MAX_SCAN * len(partitions):
                chunk_end = min(ends[i], offset + max(limit, 200))
                records = await _read_range(client, topic, i, leaders[i], offset, chunk_end)
                scanned += chunk_end - offset
                got += _take(i, records, needle, rows, limit - got)
                offset = chunk_end
        else:
            # Newest first: windows back from the end.
            end, got = ends[i], 0
            step = limit if not needle else max(limit, 500)
            while end > starts[i] and got < limit and ends[i] - end < MAX_SCAN:
                start = max(starts[i], end - step)
                records = await _read_range(client, topic, i, leaders[i], start, end)
                scanned += end - start
                got += _take(i, reversed(records), needle, rows, limit - got)
                end = start
    rows.sort(key=lambda r: (r["timestamp"], r["offset"]), reverse=True)
    if froms is not None:
        rows = sorted(rows, key=lambda r: (r["timestamp"], r["offset"]))[:limit]
        rows.reverse()
    return {
        "topic": topic,
        "records": rows[:limit],
        "scanned": scanned,
        "positions": {str(i): ends[i] for i in partitions},
        "unavailable": unavailable,
    }


async def _tail(client: KafkaClient, topic: str, query: Mapping[str, str]) -> dict[str, object]:
    """Records after the given positions (``positions=p:offset,...``), newest first: one Fetch per
    leader with every partition it leads, the first waiting up to ``wait_ms`` for a record (a
    long poll, so a page tailing a quiet topic asks once a second)."""
    topic_name(topic, "topic")
    leaders = await _leaders_of_known(client, topic)
    positions: dict[int, int] = {}
    for item in (query.get("positions") or "").split(","):
        if not item:
            continue
        p_text, _, o_text = item.partition(":")
        if not p_text.isdigit() or not o_text.isdigit() or int(p_text) not in leaders:
            raise Invalid("positions", f"bad position {item!r}: expected partition:offset of an existing partition")
        positions[int(p_text)] = int(o_text)
    if not positions:
        raise Invalid("positions", "positions is required (partition:offset,...)")
    wait = want_int(query, "wait_ms", default=1000, low=0, high=10_000)
    needle = (query.get("filter") or "").lower()
    by_leader: dict[int, dict[int, int]] = {}
    for i, offset in positions.items():
        if leaders[i] >= 0:  # an offline partition: nothing to read, its position kept
            by_leader.setdefault(leaders[i], {})[i] = offset
    rows = []
    # One Fetch per leader; only the first long-polls (a cluster's other leaders are asked at once).
    for n, (leader, offsets) in enumerate(sorted(by_leader.items())):
        got = await _fetch_many(client, topic, leader, offsets, max_wait_ms=wait if n == 0 else 0)
        for i, (records, _hw, after) in got.items():
            positions[i] = max(positions[i], after)
            for r in records:
                row = _record(i, r)
                if not needle or _matches(row, needle):
                    rows.append(row)
    rows.sort(key=lambda r: (r["timestamp"], r["offset"]), reverse=True)
    return {"topic": topic, "records": rows[:MAX_LIMIT], "positions": {str(i): o for i, o in positions.items()}}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2), for the default partitioner of keyed records."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail_start = length - rest
    if rest == 3:
        h ^= data[tail_start + 2] << 16
    if rest >= 2:
        h ^= data[tail_start + 1] << 8
    if rest >= 1:
        h ^= data[tail_start]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


async def produce(client: KafkaClient, topic: str, data: dict[str, Any]) -> dict[str, object]:
    topic_name(topic, "topic")
    leaders = await client.leaders(topic)
    key = want_str(data, "key", optional=True)
    value = want_str(data, "value", optional=True)
    headers_in = data.get("headers") or []
    if not isinstance(headers_in, list):
        raise Invalid("headers", "headers must be a list of {key, value}")
    headers = []
    for n, h in enumerate(headers_in):
        if not isinstance(h, dict) or not isinstance(h.get("key"), str) or not h["key"]:
            raise Invalid("headers", f"header {n + 1}: a non-empty key is required")
        hv = h.get("value")
        if hv is not None and not isinstance(hv, str):
            raise Invalid("headers", f"header {h['key']!r}: the value must be a string")
        headers.append((h["key"], None if hv is None else hv.encode()))
    key_bytes = None if key is None else key.encode()
    if data.get("partition") not in (None, "", "auto"):
        partition = want_int(data, "partition", low=0)
        if partition not in leaders:
            raise Invalid("partition", f"partition {partition} does not exist (the topic has {len(leaders)})")
    elif key_bytes is not None:
        partition = (murmur2(key_bytes) & 0x7FFFFFFF) % len(leaders)  # Kafka's default partitioner
    else:
        online = sorted(i for i, leader in leaders.items() if leader >= 0)
        if not online:
            raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"no partition of {topic} has a leader",
                             f"Produce {topic}")
        partition = random.choice(online)
    batch = build_batch([Record(key=key_bytes, value=None if value is None else value.encode(),
                                headers=tuple(headers), timestamp=int(time.time() * 1000))])
    Req = messages.ProduceRequest
    known: dict[int, int] | None = leaders

    async def attempt() -> dict[str, object]:
        # The leader named by this node's metadata may not have applied the same metadata yet, or
        # may have moved: nothing was written, so the record goes again to the leader fresh
        # metadata names, as a producer retries.
        nonlocal known
        current = known if known is not None else await client.leaders(topic)
        known = None
        if current.get(partition, -1) < 0:
            raise leaderless(topic, partition, f"Produce {topic}")
        resp = await client.send(0, 9, node=current[partition], transactional_id=None, acks=-1, timeout_ms=30_000,
                                 topic_data=[Req.TopicProduceData(name=topic, partition_data=[
                                     Req.TopicProduceData.PartitionProduceData(index=partition, records=batch)])])
        p = resp.responses[0].partition_responses[0]
        check(p.error_code, p.error_message, f"Produce {topic}-{partition}")
        return {"topic": topic, "partition": partition, "offset": p.base_offset}

    return await _retrying(attempt)
