"""``kbroker topic|produce|consume|group``: the daily operations, in the manner of ``rpk``.

Every command is plain Kafka requests through the console's client (:mod:`kbroker.console.client`)
and its operations (:mod:`kbroker.console.ops`, ``records``, ``groups``), so it works against any Kafka-compatible broker,
Apache Kafka included, from the address in ``-b/--bootstrap-server`` (or the environment variable
``KBROKER_BOOTSTRAP_SERVER``; default ``localhost:9092``).

    kbroker topic create orders -p 6 -r 3 -c retention.ms=86400000
    kbroker topic list | describe orders | alter-config orders --set cleanup.policy=compact | delete orders
    printf 'k1:v1\\nk2:v2\\n' | kbroker produce orders --key-separator : -H source=cli
    kbroker consume orders -o start -e -f '%p@%o %k=%v\\n'
    kbroker consume orders -g billing -n 100          # a KIP-848 consumer group member
    kbroker group list | describe billing | reset billing --to earliest --topic orders | delete billing
    source <(kbroker completion bash)

Exit status: 0 done, 1 the broker answered an error (its Kafka code is printed) or could not be
reached, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any

from kbroker.console import groups as group_ops
from kbroker.console import ops
from kbroker.console import records as record_ops
from kbroker.console.client import BrokerUnreachable, KafkaClient, KafkaError, check
from kbroker_protocol import messages
from kbroker_protocol.compression import Codec
from kbroker_protocol.errors import ErrorCode, is_retriable
from kbroker_protocol.records import Record, build_batch

COMMANDS = ("topic", "produce", "consume", "group", "completion")
ENV_BOOTSTRAP = "KBROKER_BOOTSTRAP_SERVER"
BATCH_RECORDS = 1000
BATCH_BYTES = 512 * 1024
CODECS = {"none": Codec.NONE, "gzip": Codec.GZIP, "snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


class UsageError(Exception):
    """Bad arguments (exit status 2)."""


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; the first of a comma-separated list."""
    first = text.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--bootstrap-server: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def parse_pairs(items: list[str], what: str, sep: str = "=") -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key:
            raise UsageError(f"{what}: expected key{sep}value, got {item!r}")
        out.append((key, value))
    return out


async def leaders_of(client: KafkaClient, topic: str, wait: float = 15.0) -> dict[int, int]:
    """partition -> leader, waiting (bounded) while the topic's leaders are being elected: right
    after a create, a cluster answers LEADER_NOT_AVAILABLE or leader -1 for a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            found = await client.leaders(topic)
            if all(leader >= 0 for leader in found.values()) or loop.time() >= deadline:
                return found
        except KafkaError as exc:
            # An unknown topic gets a short grace (a create still reaching this broker), others the wait.
            unknown = exc.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if not is_retriable(exc.error_code) or loop.time() >= (deadline - wait + 2.0 if unknown else deadline):
                raise
        await asyncio.sleep(0.1)


# -- output -----------------------------------------------------------------------------------


def table(rows: list[list[Any]], headers: list[str], out: IO[str]) -> None:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


class Progress:
    """Counts written to stderr at most once a second while a long operation runs (on a terminal,
    or always with ``--progress``), and a final line."""

    def __init__(self, what: str, enabled: bool, err: IO[str]) -> None:
        self.what, self.enabled, self.err = what, enabled, err
        self.count = 0
        self.started = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 1.0:
            self.last = now
            self.err.write(f"{self.what} {self.count} records ({self.count / (now - self.started):.0f}/s)\n")
            self.err.flush()

    def done(self) -> None:
        if self.enabled:
            self.err.write(f"{self.what} {self.count} records in {time.monotonic() - self.started:.1f} s\n")


# -- topics -----------------------------------------------------------------------------------


async def cmd_topic(client: KafkaClient, args: argparse.Namespace, out: IO[str]) -> int:
    if args.action == "list":
        topics = [t for t in (await ops.list_topics(client))["topics"] if args.internal or not t["internal"]]
        if args.json:
            out.write(json.dumps(topics) + "\n")
        else:
            table([[t["name"], t["partitions"], t["replication_factor"], t["messages"], t["size"]] for t in topics],
                  ["NAME", "PARTITIONS", "REPLICAS", "MESSAGES", "BYTES"], out)
        return 0
    if args.action == "describe":
        for name in args.names:
            d = await ops.describe_topic(client, name)
            if args.json:
                out.write(json.dumps(d) + "\n")
                continue
            out.write(f"NAME {d['name']}  ID {d['topic_id']}  PARTITIONS {len(d['partitions'])}\n")
            table([[p["partition"], p["leader"], p["leader_epoch"], p["replicas"], p["isr"], p["start_offset"],
                    p["end_offset"], p["size"]] for p in d["partitions"]],
                  ["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START", "END", "BYTES"], out)
            changed = [c for c in d["configs"] if c["source"] != "DEFAULT_CONFIG" or args.all_configs]
            if changed:
                out.write("CONFIGS\n")
                table([[c["name"], "(sensitive)" if c["sensitive"] else c["value"], c["source"]] for c in changed],
                      ["KEY", "VALUE", "SOURCE"], out)
        return 0
    if args.action == "create":
        configs = dict(parse_pairs(args.config, "-c/--config"))
        for name in args.names:
            r = await ops.create_topic(client, {"name": name, "partitions": args.partitions,
                                                "replication_factor": args.replicas, "configs": configs})
            out.write(f"created {r['name']} ({r['partitions']} partitions, replication factor "
                      f"{r['replication_factor']})\n")
        return 0
    if args.action == "delete":
        for name in args.names:
            await ops.delete_topic(client, name)
            out.write(f"deleted {name}\n")
        return 0
    # alter-config
    sets = dict(parse_pairs(args.set, "--set"))
    if not sets and not args.delete:
        raise UsageError("alter-config: give --set key=value or --delete key")
    await ops.alter_configs(client, args.names[0], {"set": sets, "delete": args.delete})
    out.write(f"altered {args.names[0]}\n")
    return 0


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


# -- groups -----------------------------------------------------------------------------------


async def cmd_group(client: KafkaClient, args: argparse.Namespace, out: IO[str]) -> int:
    if args.action == "list":
        groups = (await group_ops.list_groups(client))["groups"]
        if args.json:
            out.write(json.dumps(groups) + "\n")
        else:
            table([[g["group_id"], g["type"], g["state"], g["coordinator"]] for g in groups],
                  ["GROUP", "TYPE", "STATE", "COORDINATOR"], out)
        return 0
    if args.action == "describe":
        d = await group_ops.describe_group(client, args.group)
        if args.json:
            out.write(json.dumps(d) + "\n")
            return 0
        out.write(f"GROUP {d['group_id']}  TYPE {d['type']}  STATE {d['state']}  COORDINATOR {d['coordinator']}"
                  f"  MEMBERS {len(d['members'])}  TOTAL-LAG {d['total_lag']}\n")
        table([[o["topic"], o["partition"], o["committed"], o["end_offset"], o["lag"], o["member"]]
               for o in d["offsets"]], ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"], out)
        return 0
    if args.action == "reset":
        data: dict[str, Any] = {"to": args.to, "topic": args.topic}
        if args.to in ("offset", "timestamp"):
            if args.value is None:
                raise UsageError(f"reset --to {args.to} needs a value: --to {args.to} N")
            data[args.to] = args.value
        r = await group_ops.reset_offsets(client, args.group, data)
        table([[o["topic"], o["partition"], o["offset"]] for o in r["offsets"]], ["TOPIC", "PARTITION", "NEW-OFFSET"],
              out)
        return 0
    # delete
    coordinator = await client.coordinator(args.group)
    resp = await client.send(42, 2, node=coordinator, groups_names=[args.group])
    r = resp.results[0]
    check(r.error_code, None, f"delete group {args.group}")
    out.write(f"deleted {args.group}\n")
    return 0


# -- the command line -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kbroker", description="Operate a Kafka cluster (kbroker or Apache Kafka).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-b", "--bootstrap-server", default=os.environ.get(ENV_BOOTSTRAP, "localhost:9092"),
                        help=f"host:port of any broker (${ENV_BOOTSTRAP}; default localhost:9092)")
    common.add_argument("--json", action="store_true", help="JSON output, one object a line")
    sub = parser.add_subparsers(dest="command", required=True)

    topic = sub.add_parser("topic", help="list, describe, create, delete and configure topics")
    tsub = topic.add_subparsers(dest="action", required=True)
    p = tsub.add_parser("list", parents=[common], help="topics with partitions, messages and bytes")
    p.add_argument("-i", "--internal", action="store_true", help="include internal topics")
    p = tsub.add_parser("describe", parents=[common], help="partitions, leaders, ISR, offsets and configs")
    p.add_argument("names", nargs="+", metavar="TOPIC")
    p.add_argument("-a", "--all-configs", action="store_true", help="defaults too, not only changed configs")
    p = tsub.add_parser("create", parents=[common], help="create topics")
    p.add_argument("names", nargs="+", metavar="TOPIC")
    p.add_argument("-p", "--partitions", type=int, default=1)
    p.add_argument("-r", "--replicas", type=int, default=-1, help="replication factor (-1: the broker's default)")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    p = tsub.add_parser("delete", parents=[common], help="delete topics")
    p.add_argument("names", nargs="+", metavar="TOPIC")
    p = tsub.add_parser("alter-config", parents=[common], help="set or delete a topic's configs")
    p.add_argument("names", nargs=1, metavar="TOPIC")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--delete", action="append", default=[], metavar="KEY")

    p = sub.add_parser("produce", parents=[common], help="one record per line of standard input")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("-k", "--key", help="the key of every record")
    p.add_argument("-K", "--key-separator", metavar="SEP", help="split each line at the first SEP into key and value")
    p.add_argument("-H", "--header", action="append", default=[], metavar="KEY=VALUE", help="a header (repeatable)")
    p.add_argument("-p", "--partition", type=int, help="every record to this partition (default: by key, "
                                                        "Kafka's partitioner; unkeyed: a batch per partition in turn)")
    p.add_argument("-z", "--compression", choices=sorted(CODECS), default="none")
    p.add_argument("--acks", type=int, choices=[-1, 1], default=-1)
    p.add_argument("--progress", action="store_true", help="counts on stderr (always on a terminal)")

    p = sub.add_parser("consume", parents=[common], help="print a topic's records")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("-p", "--partition", type=int, action="append", help="only this partition (repeatable)")
    p.add_argument("-o", "--offset", default="start", help="start, end, N, -N (before the end), @TIMESTAMP_MS; "
                                                           "in a group: where a partition with no commit starts")
    p.add_argument("-g", "--group", help="consume as a member of this consumer group (KIP-848), committing")
    p.add_argument("-n", "--count", type=int, help="stop after this many records")
    p.add_argument("-e", "--exit-at-end", action="store_true", help="stop at the end of every partition")
    p.add_argument("-f", "--format", default="%v\\n", help="kcat's tokens: %%t %%p %%o %%k %%v %%T %%h %%K %%S")
    p.add_argument("--progress", action="store_true", help="counts on stderr (always on a terminal)")

    group = sub.add_parser("group", help="list, describe, reset and delete consumer groups")
    gsub = group.add_subparsers(dest="action", required=True)
    gsub.add_parser("list", parents=[common], help="groups of every coordinator")
    p = gsub.add_parser("describe", parents=[common], help="members, assignments, committed offsets and lag")
    p.add_argument("group", metavar="GROUP")
    p = gsub.add_parser("reset", parents=[common], help="move an inactive group's committed offsets")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--to", required=True, choices=["earliest", "latest", "offset", "timestamp"])
    p.add_argument("value", nargs="?", type=int, help="the offset or timestamp (ms) for --to offset|timestamp")
    p.add_argument("-t", "--topic", help="only this topic (default: every topic the group committed)")
    p = gsub.add_parser("delete", parents=[common], help="delete an empty group")
    p.add_argument("group", metavar="GROUP")

    p = sub.add_parser("completion", help="a shell completion script: source <(kbroker completion bash)")
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """Bash completion of the command tree (zsh through ``bashcompinit``)."""
    words: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        choices: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    choices.append(name)
                    walk(child, f"{path} {name}".strip())
            else:
                choices += [o for o in action.option_strings if o.startswith("--") and o != "--help"]
                if action.choices and not action.option_strings:
                    choices += [str(c) for c in action.choices]
        words[path] = choices

    walk(parser, "")
    cases = "\n".join(f'        "{path}") opts="{" ".join(sorted(set(w)))}" ;;' for path, w in sorted(words.items()))
    script = f"""_kbroker_complete() {{
    local cur path="" w i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$w" in -*) ;; *) case "${{path:+$path }}$w" in
{chr(10).join(f'            "{p}") path="{p}" ;;' for p in sorted(words) if p)}
        esac ;; esac
    done
    local opts
    case "$path" in
{cases}
    esac
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}}
complete -F _kbroker_complete kbroker
"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script


async def _run(args: argparse.Namespace, out: IO[str], err: IO[str], stdin: IO[str]) -> int:
    host, port = parse_address(args.bootstrap_server)
    client = KafkaClient(host, port)
    try:
        if args.command == "topic":
            return await cmd_topic(client, args, out)
        if args.command == "produce":
            return await cmd_produce(client, args, out, err, iter(stdin))
        if args.command == "consume":
            return await cmd_consume(client, args, out, err)
        return await cmd_group(client, args, out)
    finally:
        await client.close()


def main(argv: list[str], out: IO[str] | None = None, err: IO[str] | None = None,
         stdin: IO[str] | None = None) -> int:
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command == "completion":
        out.write(completion_script(parser, args.shell))
        return 0
    try:
        return asyncio.run(_run(args, out, err, stdin))
    except UsageError as exc:
        err.write(f"kbroker: {exc}\n")
        return 2
    except ops.Invalid as exc:
        err.write(f"kbroker: {exc}\n")
        return 2
    except (KafkaError, BrokerUnreachable, ops.NotFound, ops.Conflict) as exc:
        err.write(f"kbroker: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
