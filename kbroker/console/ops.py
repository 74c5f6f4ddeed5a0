"""What the console's JSON endpoints do, each as Kafka requests through :class:`KafkaClient`.

Every function takes a client and returns plain JSON-able data. Nothing is read from the broker's
objects: a topic's partitions come from Metadata, its sizes from DescribeLogDirs, its offsets from
ListOffsets, its records from Fetch, a group's lag from OffsetFetch and ListOffsets, and so on. Bad
input raises :class:`Invalid` (answered 400 naming the field); a Kafka error in a response raises
:class:`~kbroker.console.client.KafkaError`.
"""

from __future__ import annotations

import json
import random
import struct
import time
from typing import Any

from kbroker.console.client import KafkaClient, KafkaError, check
from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch, decode_batch

EARLIEST = -2
LATEST = -1
TOPIC_RESOURCE = 2
CONFIG_SET = 0
CONFIG_DELETE = 1
MAX_LIMIT = 500
MAX_SCAN = 10_000
SHOWN_BYTES = 64 * 1024
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
                  6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}


class Invalid(Exception):
    """Bad input from the page: answered 400 with the message and the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(Exception):
    pass


# -- input checks -----------------------------------------------------------------------------


def want_int(data: dict, field: str, *, default: int | None = None, low: int | None = None,
             high: int | None = None) -> int:
    value = data.get(field, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if value is None:
        raise Invalid(field, f"{field} is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(field, f"{field} must be an integer, not {value!r}")
    if low is not None and value < low:
        raise Invalid(field, f"{field} must be at least {low}")
    if high is not None and value > high:
        raise Invalid(field, f"{field} must be at most {high}")
    return value


def want_str(data: dict, field: str, *, optional: bool = False) -> str | None:
    value = data.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Invalid(field, f"{field} must be a string")
    return value


def topic_name(name: Any, field: str = "name") -> str:
    """Kafka's topic name rules (Topic.validate): 1-249 chars of [a-zA-Z0-9._-], not . or .."""
    if not isinstance(name, str) or not name:
        raise Invalid(field, "the topic name is required")
    if name in (".", ".."):
        raise Invalid(field, "topic name cannot be \".\" or \"..\"")
    if len(name) > 249:
        raise Invalid(field, "topic name is longer than 249 characters")
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        raise Invalid(field, f"topic name {name!r} has characters other than ASCII alphanumerics, "
                             f"'.', '_' and '-': {''.join(bad)!r}")
    return name


# -- showing bytes ----------------------------------------------------------------------------


def show_bytes(data: bytes | None) -> dict[str, Any]:
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


def _record(partition: int, r: Record) -> dict[str, Any]:
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


# -- cluster ----------------------------------------------------------------------------------


async def overview(client: KafkaClient) -> dict[str, Any]:
    cluster = await client.send(60, 1, include_cluster_authorized_operations=False, endpoint_type=1)
    check(cluster.error_code, cluster.error_message, "DescribeCluster")
    meta = await client.metadata(None)
    versions = await client.send(18, 3, client_software_name="kbroker-console", client_software_version="1")
    topics = [t for t in meta.topics if t.error_code == ErrorCode.NONE]
    partitions = [p for t in topics for p in t.partitions]
    live = {b.broker_id for b in cluster.brokers}
    return {
        "cluster_id": cluster.cluster_id,
        "controller_id": cluster.controller_id,
        "brokers": [{"id": b.broker_id, "host": b.host, "port": b.port, "rack": b.rack}
                    for b in sorted(cluster.brokers, key=lambda b: b.broker_id)],
        "features": {f.name: f.max_version_level for f in versions.finalized_features},
        "topics": sum(1 for t in topics if not t.is_internal),
        "internal_topics": sum(1 for t in topics if t.is_internal),
        "partitions": len(partitions),
        "offline_partitions": sum(1 for p in partitions if p.leader_id not in live),
        "under_replicated_partitions": sum(1 for p in partitions if len(p.isr_nodes) < len(p.replica_nodes)),
    }


# -- topics -----------------------------------------------------------------------------------


async def _offsets_many(client: KafkaClient, leaders: dict[tuple[str, int], int], timestamp: int,
                        strict: bool = True) -> dict[tuple[str, int], int]:
    """(topic, partition) -> offset for ``timestamp`` (EARLIEST, LATEST or ms): one ListOffsets per
    leader for all the partitions it leads. Not ``strict``: a partition answered with an error (a
    leader gone meanwhile) is left out rather than failing the whole answer."""
    Req = messages.ListOffsetsRequest
    by_leader: dict[int, dict[str, list[int]]] = {}
    for (topic, index), leader in leaders.items():
        by_leader.setdefault(leader, {}).setdefault(topic, []).append(index)
    out: dict[tuple[str, int], int] = {}
    for leader, topics in sorted(by_leader.items()):
        resp = await client.send(2, 7, node=leader, replica_id=-1, isolation_level=0, topics=[
            Req.ListOffsetsTopic(name=topic, partitions=[Req.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=i, current_leader_epoch=-1, timestamp=timestamp) for i in sorted(indexes)])
            for topic, indexes in sorted(topics.items())])
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE and not strict:
                    continue
                check(p.error_code, None, f"ListOffsets {t.name}-{p.partition_index}")
                out[(t.name, p.partition_index)] = p.offset
    return out


async def _offsets(client: KafkaClient, topic: str, partitions: dict[int, int],
                   timestamp: int) -> dict[int, int]:
    """partition -> offset for ``timestamp`` of one topic's partitions (partition -> leader)."""
    found = await _offsets_many(client, {(topic, i): leader for i, leader in partitions.items()}, timestamp)
    return {i: off for (_t, i), off in found.items()}


async def _sizes(client: KafkaClient) -> dict[tuple[str, int], int]:
    """(topic, partition) -> bytes of its largest replica, from DescribeLogDirs on every broker."""
    return await _sizes_of(client, None, {})


async def _sizes_of(client: KafkaClient, wanted: list | None, sizes: dict) -> dict[tuple[str, int], int]:
    for _node, resp in await client.each_broker(35, 4, topics=wanted):
        for result in resp.results:
            for t in result.topics:
                for p in t.partitions:
                    key = (t.name, p.partition_index)
                    sizes[key] = max(sizes.get(key, 0), p.partition_size)
    return sizes


async def list_topics(client: KafkaClient) -> dict[str, Any]:
    meta = await client.metadata(None)
    sizes = await _sizes(client)
    topics = sorted((t for t in meta.topics if t.error_code == ErrorCode.NONE), key=lambda t: t.name)
    leaders = {(t.name, p.partition_index): p.leader_id for t in topics for p in t.partitions if p.leader_id >= 0}
    ends = await _offsets_many(client, leaders, LATEST, strict=False)
    starts = await _offsets_many(client, leaders, EARLIEST, strict=False)
    out = []
    for t in topics:
        keys = [(t.name, p.partition_index) for p in t.partitions]
        out.append({
            "name": t.name,
            "internal": t.is_internal,
            "partitions": len(t.partitions),
            "replication_factor": max((len(p.replica_nodes) for p in t.partitions), default=0),
            "under_replicated": sum(1 for p in t.partitions if len(p.isr_nodes) < len(p.replica_nodes)),
            "messages": sum(ends[k] - starts[k] for k in keys if k in ends and k in starts),
            "size": sum(sizes.get(k, 0) for k in keys),
        })
    return {"topics": out}


async def describe_topic(client: KafkaClient, name: str) -> dict[str, Any]:
    meta = await client.metadata([name])
    t = meta.topics[0]
    if t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(t.error_code, None, f"topic {name}")
    leaders = {p.partition_index: p.leader_id for p in t.partitions}
    ends = await _offsets(client, name, leaders, LATEST)
    starts = await _offsets(client, name, leaders, EARLIEST)
    sizes = await _sizes_of(client, [messages.DescribeLogDirsRequest.DescribableLogDirTopic(topic=name, partitions=sorted(leaders))],
                            {})
    Req = messages.DescribeConfigsRequest
    resp = await client.send(32, 4, resources=[Req.DescribeConfigsResource(
        resource_type=TOPIC_RESOURCE, resource_name=name, configuration_keys=None)],
        include_synonyms=False, include_documentation=True)
    result = resp.results[0]
    check(result.error_code, result.error_message, f"DescribeConfigs {name}")
    return {
        "name": name,
        "topic_id": str(t.topic_id),
        "internal": t.is_internal,
        "partitions": [{
            "partition": p.partition_index, "leader": p.leader_id, "leader_epoch": p.leader_epoch,
            "replicas": list(p.replica_nodes), "isr": list(p.isr_nodes), "offline": list(p.offline_replicas),
            "start_offset": starts[p.partition_index], "end_offset": ends[p.partition_index],
            "size": sizes.get((name, p.partition_index), 0),
        } for p in sorted(t.partitions, key=lambda p: p.partition_index)],
        "configs": [{
            "name": c.name, "value": None if c.is_sensitive else c.value, "read_only": c.read_only,
            "sensitive": c.is_sensitive, "source": CONFIG_SOURCES.get(c.config_source, str(c.config_source)),
            "doc": c.documentation,
        } for c in sorted(result.configs, key=lambda c: c.name)],
    }


async def create_topic(client: KafkaClient, data: dict) -> dict[str, Any]:
    name = topic_name(data.get("name"))
    partitions = want_int(data, "partitions", default=1, low=1, high=100_000)
    replication = want_int(data, "replication_factor", default=-1, low=-1, high=32767)
    if replication == 0:
        raise Invalid("replication_factor", "replication_factor must be -1 (the broker default) or at least 1")
    configs = data.get("configs") or {}
    if not isinstance(configs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in configs.items()):
        raise Invalid("configs", "configs must be an object of string names to string values")
    Req = messages.CreateTopicsRequest
    topic = Req.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication,
                               assignments=[], configs=[Req.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                                        for k, v in configs.items()])
    resp = await client.send(19, 7, topics=[topic], timeout_ms=30_000, validate_only=False)
    r = resp.topics[0]
    check(r.error_code, r.error_message, f"create topic {name}")
    return {"name": name, "partitions": r.num_partitions, "replication_factor": r.replication_factor}


async def delete_topic(client: KafkaClient, name: str) -> dict[str, Any]:
    Req = messages.DeleteTopicsRequest
    resp = await client.send(20, 6, topics=[Req.DeleteTopicState(name=name)], timeout_ms=30_000)
    r = resp.responses[0]
    if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(r.error_code, r.error_message, f"delete topic {name}")
    return {"deleted": name}


async def alter_configs(client: KafkaClient, name: str, data: dict) -> dict[str, Any]:
    sets = data.get("set") or {}
    deletes = data.get("delete") or []
    if not isinstance(sets, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                             for k, v in sets.items()):
        raise Invalid("set", "set must be an object of config names to string values")
    if not isinstance(deletes, list) or not all(isinstance(k, str) and k for k in deletes):
        raise Invalid("delete", "delete must be a list of config names")
    if not sets and not deletes:
        raise Invalid("set", "nothing to change: give set or delete")
    Req = messages.IncrementalAlterConfigsRequest
    Res = Req.AlterConfigsResource
    configs = [Res.AlterableConfig(name=k, config_operation=CONFIG_SET, value=v) for k, v in sets.items()]
    configs += [Res.AlterableConfig(name=k, config_operation=CONFIG_DELETE, value=None) for k in deletes]
    resp = await client.send(44, 1, resources=[Res(resource_type=TOPIC_RESOURCE, resource_name=name,
                                                   configs=configs)], validate_only=False)
    r = resp.responses[0]
    if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(r.error_code, r.error_message, f"alter configs of {name}")
    return {"altered": name, "set": sets, "deleted": deletes}


# -- records ----------------------------------------------------------------------------------


def _batches(records: bytes | memoryview | None) -> list:
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


async def _read_range(client: KafkaClient, topic: str, partition: int, leader: int, start: int,
                      end: int) -> list[Record]:
    out: list[Record] = []
    offset = start
    while offset < end:
        records, hw, after = await _fetch(client, topic, partition, leader, offset)
        out.extend(r for r in records if r.offset < end)  # type: ignore[operator]
        if after <= offset:
            break
        offset = after
        end = min(end, hw)
    return out


def _partitions_arg(query: dict, leaders: dict[int, int]) -> list[int]:
    value = query.get("partition", "all")
    if value in ("", "all", None):
        return sorted(leaders)
    index = want_int(query, "partition", low=0)
    if index not in leaders:
        raise Invalid("partition", f"partition {index} does not exist (the topic has {len(leaders)})")
    return [index]


async def browse(client: KafkaClient, topic: str, query: dict) -> dict[str, Any]:
    """Records newest first: the newest ``limit``, or ``limit`` from ``offset``/``timestamp`` on,
    of one partition or all; ``filter`` keeps the records whose key, value or a header contains
    the text (case-insensitive), scanning back up to MAX_SCAN records per partition."""
    topic_name(topic, "topic")
    try:
        leaders = await client.leaders(topic)
    except KafkaError as exc:
        if exc.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFound(f"no topic {topic!r}") from None
        raise
    partitions = _partitions_arg(query, leaders)
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
                for r in records:
                    row = _record(i, r)
                    if not needle or _matches(row, needle):
                        rows.append(row)
                        got += 1
                        if got >= limit:
                            break
                offset = chunk_end
        else:
            # Newest first: windows back from the end.
            end, got = ends[i], 0
            step = limit if not needle else max(limit, 500)
            while end > starts[i] and got < limit and ends[i] - end < MAX_SCAN:
                start = max(starts[i], end - step)
                records = await _read_range(client, topic, i, leaders[i], start, end)
                scanned += end - start
                for r in reversed(records):
                    row = _record(i, r)
                    if not needle or _matches(row, needle):
                        rows.append(row)
                        got += 1
                        if got >= limit:
                            break
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
    }


async def tail(client: KafkaClient, topic: str, query: dict) -> dict[str, Any]:
    """Records after the given positions (``positions=p:offset,...``), newest first: one Fetch per
    leader with every partition it leads, the first waiting up to ``wait_ms`` for a record (a
    long poll, so a page tailing a quiet topic asks once a second)."""
    topic_name(topic, "topic")
    leaders = await client.leaders(topic)
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


async def produce(client: KafkaClient, topic: str, data: dict) -> dict[str, Any]:
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
        partition = random.choice(sorted(leaders))
    batch = build_batch([Record(key=key_bytes, value=None if value is None else value.encode(),
                                headers=tuple(headers), timestamp=int(time.time() * 1000))])
    Req = messages.ProduceRequest
    resp = await client.send(0, 9, node=leaders[partition], transactional_id=None, acks=-1, timeout_ms=30_000,
                             topic_data=[Req.TopicProduceData(name=topic, partition_data=[
                                 Req.TopicProduceData.PartitionProduceData(index=partition, records=batch)])])
    p = resp.responses[0].partition_responses[0]
    check(p.error_code, p.error_message, f"Produce {topic}-{partition}")
    return {"topic": topic, "partition": partition, "offset": p.base_offset}


# -- groups -----------------------------------------------------------------------------------


async def list_groups(client: KafkaClient) -> dict[str, Any]:
    groups = []
    for node, resp in await client.each_broker(16, 5, states_filter=[], types_filter=[]):
        check(resp.error_code, None, f"ListGroups on broker {node}")
        for g in resp.groups:
            groups.append({"group_id": g.group_id, "state": g.group_state, "type": g.group_type,
                           "protocol_type": g.protocol_type, "coordinator": node})
    groups.sort(key=lambda g: g["group_id"])
    return {"groups": groups}


def _consumer_assignment(data: bytes | None) -> list[dict[str, Any]]:
    """A classic consumer group's member assignment (ConsumerProtocolAssignment v0-3): topics
    and partitions; an assignment that does not parse is shown as empty."""
    if not data:
        return []
    buf = bytes(data)
    try:
        pos = 2  # version
        (count,) = struct.unpack_from(">i", buf, pos)
        pos += 4
        out = []
        for _ in range(max(count, 0)):
            (n,) = struct.unpack_from(">h", buf, pos)
            pos += 2
            name = buf[pos:pos + n].decode("utf-8", "replace")
            pos += n
            (pc,) = struct.unpack_from(">i", buf, pos)
            pos += 4
            parts = list(struct.unpack_from(f">{max(pc, 0)}i", buf, pos))
            pos += 4 * max(pc, 0)
            out.append({"topic": name, "partitions": parts})
        return out
    except (struct.error, ValueError):
        return []


async def _group_type(client: KafkaClient, group: str) -> str | None:
    for g in (await list_groups(client))["groups"]:
        if g["group_id"] == group:
            return g["type"]
    return None


async def _describe(client: KafkaClient, group: str, coordinator: int) -> dict[str, Any]:
    kind = await _group_type(client, group)
    if kind == "consumer":
        resp = await client.send(69, 0, node=coordinator, group_ids=[group], include_authorized_operations=False)
        g = resp.groups[0]
        check(g.error_code, g.error_message, f"ConsumerGroupDescribe {group}")
        return {"group_id": group, "type": "consumer", "state": g.group_state, "protocol_type": "consumer",
                "protocol": g.assignor_name, "epoch": g.group_epoch,
                "members": [{"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                             "client_host": m.client_host,
                             "assignment": [{"topic": tp.topic_name, "partitions": list(tp.partitions)}
                                            for tp in m.assignment.topic_partitions]}
                            for m in g.members]}
    resp = await client.send(15, 5, node=coordinator, groups=[group], include_authorized_operations=False)
    g = resp.groups[0]
    check(g.error_code, g.error_message, f"DescribeGroups {group}")
    consumer = g.protocol_type == "consumer"
    return {"group_id": group, "type": kind or "classic", "state": g.group_state,
            "protocol_type": g.protocol_type, "protocol": g.protocol_data,
            "members": [{"member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id,
                         "client_host": m.client_host,
                         "assignment": _consumer_assignment(m.member_assignment) if consumer else []}
                        for m in g.members]}


async def _committed(client: KafkaClient, group: str, coordinator: int) -> dict[tuple[str, int], int]:
    Req = messages.OffsetFetchRequest
    resp = await client.send(9, 8, node=coordinator, groups=[Req.OffsetFetchRequestGroup(group_id=group, topics=None)],
                             require_stable=False)
    g = resp.groups[0]
    check(g.error_code, None, f"OffsetFetch {group}")
    out = {}
    for t in g.topics:
        for p in t.partitions:
            check(p.error_code, None, f"OffsetFetch {group} {t.name}-{p.partition_index}")
            if p.committed_offset >= 0:
                out[(t.name, p.partition_index)] = p.committed_offset
    return out


async def describe_group(client: KafkaClient, group: str) -> dict[str, Any]:
    if not group:
        raise Invalid("group", "the group id is required")
    coordinator = await client.coordinator(group)
    desc = await _describe(client, group, coordinator)
    if desc["state"] == "Dead" and await _group_type(client, group) is None:
        raise NotFound(f"no group {group!r}")
    committed = await _committed(client, group, coordinator)
    assigned: dict[tuple[str, int], str] = {}
    for m in desc["members"]:
        for a in m["assignment"]:
            for p in a["partitions"]:
                assigned[(a["topic"], p)] = m["member_id"]
    keys = sorted(set(committed) | set(assigned))
    ends: dict[tuple[str, int], int] = {}
    for topic in sorted({t for t, _ in keys}):
        try:
            leaders = await client.leaders(topic)
        except KafkaError:
            continue
        wanted = {p: leaders[p] for t, p in keys if t == topic and p in leaders}
        for p, off in (await _offsets(client, topic, wanted, LATEST)).items():
            ends[(topic, p)] = off
    rows = []
    for key in keys:
        c = committed.get(key)
        end = ends.get(key)
        rows.append({"topic": key[0], "partition": key[1], "committed": c, "end_offset": end,
                     "lag": None if c is None or end is None else max(0, end - c),
                     "member": assigned.get(key)})
    desc["coordinator"] = coordinator
    desc["offsets"] = rows
    desc["total_lag"] = sum(r["lag"] for r in rows if r["lag"] is not None)
    return desc


async def reset_offsets(client: KafkaClient, group: str, data: dict) -> dict[str, Any]:
    """kafka-consumer-groups --reset-offsets --execute: only while the group is inactive."""
    if not group:
        raise Invalid("group", "the group id is required")
    to = data.get("to")
    if to not in ("earliest", "latest", "offset", "timestamp"):
        raise Invalid("to", "to must be one of earliest, latest, offset, timestamp")
    topic = data.get("topic")
    if topic not in (None, ""):
        topic_name(topic, "topic")
    coordinator = await client.coordinator(group)
    desc = await _describe(client, group, coordinator)
    if desc["state"] not in ("Empty", "Dead"):
        raise Conflict(f"Assignments can only be reset if the group '{group}' is inactive, "
                       f"but the current state is {desc['state']}.")
    committed = await _committed(client, group, coordinator)
    if topic:
        leaders_of = {topic: await client.leaders(topic)}
    else:
        leaders_of = {}
        for t in sorted({t for t, _ in committed}):
            leaders_of[t] = await client.leaders(t)
        if not leaders_of:
            raise Invalid("topic", f"group {group!r} has no committed offsets: name a topic to reset")
    targets: dict[tuple[str, int], int] = {}
    for t, leaders in leaders_of.items():
        if to == "earliest":
            offs = await _offsets(client, t, leaders, EARLIEST)
        elif to == "latest":
            offs = await _offsets(client, t, leaders, LATEST)
        elif to == "offset":
            wanted = want_int(data, "offset", low=0)
            lo = await _offsets(client, t, leaders, EARLIEST)
            hi = await _offsets(client, t, leaders, LATEST)
            offs = {p: min(max(wanted, lo[p]), hi[p]) for p in leaders}  # clamped, as Kafka's tool does
        else:
            ts = want_int(data, "timestamp", low=0)
            found = await _offsets(client, t, leaders, ts)
            hi = await _offsets(client, t, leaders, LATEST)
            offs = {p: hi[p] if found[p] < 0 else found[p] for p in leaders}
        for p, off in offs.items():
            targets[(t, p)] = off
    Req = messages.OffsetCommitRequest
    topics = []
    for t in sorted(leaders_of):
        topics.append(Req.OffsetCommitRequestTopic(name=t, partitions=[
            Req.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=off, committed_leader_epoch=-1, committed_metadata="")
            for (tt, p), off in sorted(targets.items()) if tt == t]))
    resp = await client.send(8, 8, node=coordinator, group_id=group, generation_id_or_member_epoch=-1,
                             member_id="", group_instance_id=None, topics=topics)
    for t in resp.topics:
        for p in t.partitions:
            check(p.error_code, None, f"OffsetCommit {group} {t.name}-{p.partition_index}")
    return {"group_id": group, "offsets": [{"topic": t, "partition": p, "offset": off}
                                           for (t, p), off in sorted(targets.items())]}


class Conflict(Exception):
    pass


# -- transactions and producers ---------------------------------------------------------------


async def transactions(client: KafkaClient) -> dict[str, Any]:
    listed = []
    for node, resp in await client.each_broker(66, 1, state_filters=[], producer_id_filters=[],
                                              duration_filter=-1):
        check(resp.error_code, None, f"ListTransactions on broker {node}")
        listed += [(node, s.transactional_id) for s in resp.transaction_states]
    out = []
    for node, tid in sorted(listed, key=lambda x: x[1]):
        resp = await client.send(65, 0, node=node, transactional_ids=[tid])
        s = resp.transaction_states[0]
        if s.error_code != ErrorCode.NONE:
            out.append({"transactional_id": tid, "coordinator": node, "error": KafkaError(s.error_code).code})
            continue
        out.append({"transactional_id": tid, "coordinator": node, "state": s.transaction_state,
                    "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
                    "timeout_ms": s.transaction_timeout_ms, "start_time_ms": s.transaction_start_time_ms,
                    "partitions": [{"topic": t.topic, "partitions": list(t.partitions)} for t in s.topics]})
    return {"transactions": out}


async def producers(client: KafkaClient) -> dict[str, Any]:
    meta = await client.metadata(None)
    Req = messages.DescribeProducersRequest
    by_leader: dict[int, dict[str, list[int]]] = {}
    for t in meta.topics:
        if t.error_code != ErrorCode.NONE or t.is_internal:
            continue
        for p in t.partitions:
            by_leader.setdefault(p.leader_id, {}).setdefault(t.name, []).append(p.partition_index)
    out = []
    for leader, topics in sorted(by_leader.items()):
        if leader < 0:
            continue
        resp = await client.send(61, 0, node=leader, topics=[Req.TopicRequest(name=n, partition_indexes=sorted(ps))
                                                             for n, ps in sorted(topics.items())])
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE:
                    continue
                for s in p.active_producers:
                    out.append({"topic": t.name, "partition": p.partition_index, "producer_id": s.producer_id,
                                "producer_epoch": s.producer_epoch, "last_sequence": s.last_sequence,
                                "last_timestamp": s.last_timestamp, "coordinator_epoch": s.coordinator_epoch,
                                "txn_start_offset": s.current_txn_start_offset})
    out.sort(key=lambda r: (r["topic"], r["partition"], r["producer_id"]))
    return {"producers": out}
