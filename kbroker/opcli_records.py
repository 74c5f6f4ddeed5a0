"""``kbroker produce`` and ``kbroker consume`` (``kbroker.opcli``): records from lines of input,
and records out in a format, from offsets or as a KIP-848 group member."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from kbroker.console import groups as group_ops
from kbroker.console import ops
from kbroker.console import records as record_ops
from kbroker.console.client import BrokerUnreachable, KafkaClient, KafkaError, check
from kbroker.opcli_common import (
    BATCH_BYTES,
    BATCH_RECORDS,
    CODECS,
    Progress,
    UsageError,
    leaders_of,
    parse_pairs,
)
from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode, is_retriable
from kbroker_protocol.records import Record, build_batch

# -- produce ----------------------------------------------------------------------------------


def input_records(lines: Iterator[str], args: argparse.Namespace) -> Iterator[Record]:
    headers = tuple((k, v.encode()) for k, v in parse_pairs(args.header, "-H/--header"))
    fixed_key = None if args.key is None else args.key.encode()
    for line in lines:
        text = line[:-1] if line.endswith("\n") else line
        key = fixed_key
        if args.key_separator is not None:
            k, found, text = text.partition(args.key_separator)
            if not found:
                k, text = "", k  # no separator on the line: the whole line is the value, no key
                key = None
            else:
                key = k.encode()
        yield Record(key=key, value=text.encode(), headers=headers, timestamp=int(time.time() * 1000))


async def cmd_produce(client: KafkaClient, args: argparse.Namespace, out: IO[str], err: IO[str],
                      lines: Iterator[str]) -> int:
    leaders = await leaders_of(client, args.topic)
    count = len(leaders)
    if args.partition is not None and args.partition not in leaders:
        raise UsageError(f"-p/--partition: {args.topic} has no partition {args.partition} (it has {count})")
    codec = CODECS[args.compression]
    progress = Progress("produced", args.progress or err.isatty(), err)
    pending: dict[int, list[Record]] = {}
    sizes: dict[int, int] = {}
    sticky = 0
    written: dict[int, int] = {}

    async def flush(partition: int) -> None:
        nonlocal leaders
        records = pending.pop(partition, [])
        sizes.pop(partition, None)
        if not records:
            return
        batch = build_batch(records, compression=codec)
        Req = messages.ProduceRequest
        for attempt in range(10):
            resp = await client.send(0, 9, node=leaders[partition], transactional_id=None, acks=args.acks,
                                     timeout_ms=30_000, topic_data=[Req.TopicProduceData(
                                         name=args.topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
                                             index=partition, records=batch)])])
            p = resp.responses[0].partition_responses[0]
            if p.error_code != ErrorCode.NONE and is_retriable(p.error_code) and attempt < 9:
                await asyncio.sleep(0.1 * (attempt + 1))  # a leader moving: back off, learn the new one
                leaders = await leaders_of(client, args.topic)
                continue
            check(p.error_code, p.error_message, f"Produce {args.topic}-{partition}")
            break
        written[partition] = written.get(partition, 0) + len(records)
        if args.json:
            for n, r in enumerate(records):
                out.write(json.dumps({"topic": args.topic, "partition": partition, "offset": p.base_offset + n,
                                      "key": None if r.key is None else r.key.decode("utf-8", "replace")}) + "\n")
        progress.add(len(records))

    for record in input_records(lines, args):
        if args.partition is not None:
            partition = args.partition
        elif record.key is not None:
            partition = (record_ops.murmur2(record.key) & 0x7FFFFFFF) % count  # Kafka's default partitioner
        else:
            partition = sticky % count  # sticky: unkeyed records fill a batch, then the next partition
        pending.setdefault(partition, []).append(record)
        sizes[partition] = sizes.get(partition, 0) + len(record.value or b"") + len(record.key or b"") + 32
        if len(pending[partition]) >= BATCH_RECORDS or sizes[partition] >= BATCH_BYTES:
            await flush(partition)
            if record.key is None and args.partition is None:
                sticky += 1
    for partition in sorted(pending):
        await flush(partition)
    progress.done()
    if not args.json:
        total = sum(written.values())
        parts = ", ".join(f"{p}: {n}" for p, n in sorted(written.items()))
        out.write(f"produced {total} records to {args.topic}" + (f" ({parts})" if parts else "") + "\n")
    return 0


# -- consume ----------------------------------------------------------------------------------


def render(fmt: str, topic: str, partition: int, r: Record) -> str:
    """kcat's format tokens: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp,
    %h headers (k=v,...), %K/%S key/value size (-1 for null), %% a percent; \\n, \\t escapes."""
    def text(b: bytes | None) -> str:
        return "" if b is None else b.decode("utf-8", "replace")
    fields: dict[str, Callable[[], str]] = {
        "t": lambda: topic, "p": lambda: str(partition), "o": lambda: str(r.offset),
        "k": lambda: text(r.key), "v": lambda: text(r.value), "T": lambda: str(r.timestamp),
        "h": lambda: ",".join(f"{k}={text(v)}" for k, v in r.headers),
        "K": lambda: str(-1 if r.key is None else len(r.key)), "S": lambda: str(-1 if r.value is None else len(r.value)),
        "%": lambda: "%",
    }
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt) and fmt[i + 1] in fields:
            out.append(fields[fmt[i + 1]]())
            i += 2
        elif c == "\\" and i + 1 < len(fmt) and fmt[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[fmt[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def as_json(topic: str, partition: int, r: Record) -> str:
    def show(b: bytes | None) -> str | None:
        return None if b is None else b.decode("utf-8", "replace")
    return json.dumps({"topic": topic, "partition": partition, "offset": r.offset, "timestamp": r.timestamp,
                       "key": show(r.key), "value": show(r.value),
                       "headers": [{"key": k, "value": show(v)} for k, v in r.headers]})


async def start_offsets(client: KafkaClient, topic: str, leaders: dict[int, int], spec: str) -> dict[int, int]:
    """``-o``: start|oldest|beginning, end|newest, N (absolute, clamped), -N (N before the end),
    @TIMESTAMP (ms: the first offset at or after it, the end if none)."""
    starts = await ops._offsets(client, topic, leaders, ops.EARLIEST)
    ends = await ops._offsets(client, topic, leaders, ops.LATEST)
    if spec in ("start", "oldest", "beginning"):
        return starts
    if spec in ("end", "newest"):
        return ends
    if spec.startswith("@") and spec[1:].isdigit():
        found = await ops._offsets(client, topic, leaders, int(spec[1:]))
        return {p: ends[p] if o < 0 else o for p, o in found.items()}
    if spec.lstrip("-").isdigit():
        n = int(spec)
        if n < 0:
            return {p: max(starts[p], ends[p] + n) for p in leaders}
        return {p: min(max(n, starts[p]), ends[p]) for p in leaders}
    raise UsageError(f"-o/--offset: expected start, end, N, -N or @TIMESTAMP, got {spec!r}")


class GroupMember:
    """A KIP-848 consumer group member (ConsumerGroupHeartbeat): joins, takes the partitions the
    coordinator assigns, commits what it printed, leaves at the end."""

    def __init__(self, client: KafkaClient, group: str, topic: str) -> None:
        self.client, self.group, self.topic = client, group, topic
        self.member_id = str(uuid.uuid4())
        self.epoch = 0
        self.owned: list[int] = []
        self.interval = 0.0
        self.coordinator = -1
        self.topic_id: uuid.UUID | None = None

    async def heartbeat(self, leaving: bool = False) -> None:
        if self.coordinator < 0:
            self.coordinator = await self.client.coordinator(self.group)
        Req = messages.ConsumerGroupHeartbeatRequest
        if leaving:
            owned = None
        elif self.epoch == 0 or self.topic_id is None:
            owned = []  # a join sends the field, empty (Kafka refuses a null one)
        else:
            owned = [Req.TopicPartitions(topic_id=self.topic_id, partitions=self.owned)]
        resp = await self.client.send(
            68, 0, node=self.coordinator, group_id=self.group, member_id=self.member_id,
            member_epoch=-1 if leaving else self.epoch, rebalance_timeout_ms=60_000,
            subscribed_topic_names=None if self.epoch and not leaving else [self.topic], topic_partitions=owned)
        if leaving:
            return
        if resp.error_code in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE):
            self.coordinator = -1  # find it again at the next beat
            return
        if resp.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return  # the group's partition is still loading: beat again soon
        if resp.error_code in (ErrorCode.FENCED_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID):
            self.epoch, self.owned = 0, []  # rejoin, as a consumer does after being fenced
            return
        check(resp.error_code, resp.error_message, f"ConsumerGroupHeartbeat {self.group}")
        self.epoch = resp.member_epoch
        self.interval = resp.heartbeat_interval_ms / 1000
        if resp.assignment is not None:
            if self.topic_id is None:
                meta = await self.client.metadata([self.topic])
                self.topic_id = meta.topics[0].topic_id
            self.owned = sorted(p for tp in resp.assignment.topic_partitions if tp.topic_id == self.topic_id
                                for p in tp.partitions)

    async def committed(self) -> dict[int, int]:
        got = await group_ops._committed(self.client, self.group, self.coordinator)
        return {p: o for (t, p), o in got.items() if t == self.topic}

    async def commit(self, positions: dict[int, int]) -> None:
        if not positions or self.coordinator < 0:
            return
        Req = messages.OffsetCommitRequest
        T = Req.OffsetCommitRequestTopic
        resp = await self.client.send(8, 9, node=self.coordinator, group_id=self.group,
                                      generation_id_or_member_epoch=self.epoch, member_id=self.member_id,
                                      group_instance_id=None, topics=[T(name=self.topic, partitions=[
                                          T.OffsetCommitRequestPartition(partition_index=p, committed_offset=o)
                                          for p, o in sorted(positions.items())])])
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code in (ErrorCode.STALE_MEMBER_EPOCH, ErrorCode.FENCED_MEMBER_EPOCH,
                                    ErrorCode.UNKNOWN_MEMBER_ID):
                    continue  # the partition moved meanwhile: its new owner commits from now on
                check(p.error_code, None, f"OffsetCommit {self.group} {t.name}-{p.partition_index}")


async def cmd_consume(client: KafkaClient, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    leaders = await leaders_of(client, args.topic)
    if args.partition and args.group:
        raise UsageError("-p/--partition and -g/--group exclude each other: a group's coordinator assigns partitions")
    for p in args.partition or []:
        if p not in leaders:
            raise UsageError(f"-p/--partition: {args.topic} has no partition {p} (it has {len(leaders)})")
    member = GroupMember(client, args.group, args.topic) if args.group else None
    progress = Progress("consumed", args.progress or err.isatty(), err)
    positions: dict[int, int] = {}
    targets: dict[int, int] = {}  # -e: the end offsets seen when a partition was taken
    done_commit: dict[int, int] = {}
    printed = 0
    next_beat = 0.0
    loop = asyncio.get_running_loop()

    async def take(partitions: list[int]) -> None:
        fresh = [p for p in partitions if p not in positions]
        for p in list(positions):
            if p not in partitions:
                del positions[p]
                targets.pop(p, None)
        if not fresh:
            return
        chosen = {p: leaders[p] for p in fresh}
        committed = await member.committed() if member else {}
        reset = await start_offsets(client, args.topic, chosen, args.offset)
        ends = await ops._offsets(client, args.topic, chosen, ops.LATEST)
        for p in fresh:
            positions[p] = committed.get(p, reset[p])
            targets[p] = ends[p]

    try:
        if member is None:
            await take(sorted(args.partition or leaders))
        while args.count is None or printed < args.count:
            if member is not None and loop.time() >= next_beat:
                await member.heartbeat()
                next_beat = loop.time() + (member.interval if member.epoch > 0 and member.interval else 0.2)
                await take(member.owned)
            if args.exit_at_end and (member is None or member.epoch > 0) and all(
                    positions[p] >= targets[p] for p in positions) and (member is None or member.owned):
                break
            if not positions:
                await asyncio.sleep(min(0.2, member.interval if member and member.interval else 0.2))
                continue
            by_leader: dict[int, dict[int, int]] = {}
            for p, o in positions.items():
                by_leader.setdefault(leaders[p], {})[p] = o
            wait = 0 if args.exit_at_end else 500
            for n, (leader, offsets) in enumerate(sorted(by_leader.items())):
                try:
                    got = await record_ops._fetch_many(client, args.topic, leader, offsets, max_wait_ms=wait if n == 0 else 0)
                except KafkaError as exc:
                    if not is_retriable(exc.error_code):
                        raise
                    await asyncio.sleep(0.2)  # a leader moving: learn the new one and go on
                    leaders = await leaders_of(client, args.topic)
                    break
                for p, (records, _hw, after) in sorted(got.items()):
                    if p not in positions:
                        continue
                    for r in records:
                        if args.count is not None and printed >= args.count:
                            break
                        out.write(as_json(args.topic, p, r) + "\n" if args.json else render(args.format, args.topic, p, r))
                        printed += 1
                        positions[p] = r.offset + 1  # type: ignore[operator]
                    else:
                        positions[p] = max(positions[p], after)
                    progress.add(len(records))
            out.flush()
            if member is not None:
                changed = {p: o for p, o in positions.items() if done_commit.get(p) != o}
                await member.commit(changed)
                done_commit.update(changed)
    finally:
        if member is not None and member.coordinator >= 0:
            try:
                await member.commit({p: o for p, o in positions.items() if done_commit.get(p) != o})
                await member.heartbeat(leaving=True)
            except (KafkaError, BrokerUnreachable) as exc:
                err.write(f"kbroker: leaving group {args.group}: {exc}\n")
    progress.done()
    return 0
