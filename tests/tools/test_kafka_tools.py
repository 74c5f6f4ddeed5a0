"""Kafka 4.4's own command-line tools against kbroker and against the reference Apache Kafka.

Every test runs once per broker (the module-scoped ``broker`` fixture is parametrized over kbroker,
started in-process, and Apache Kafka 4.4.0, started from the jars ``scripts/reference_kafka.py``
fetches), with the tools' real arguments, and checks the exit code and the meaningful part of the
output. The expectations are the same on both brokers unless a comment points at compat/FINDINGS.md.
Each tool run is a JVM start, so a test groups the checks that share a topic.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import reference_kafka
finally:
    sys.path.remove(str(ROOT / "scripts"))

TOOLS = "org.apache.kafka.tools."
# Tools are short-lived JVMs: the C1 compiler alone starts them faster.
TOOL_ENV = dict(os.environ, JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1")


@dataclass
class Broker:
    kind: str
    bootstrap: str
    log_dir: Path
    node_id: int


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def broker(request, tmp_path_factory) -> Iterator[Broker]:
    work = tmp_path_factory.mktemp(request.param)
    if request.param == "kbroker":
        with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(work / "data")) as b:
            yield Broker("kbroker", b.bootstrap_servers, Path(b.data_dir), b.broker.node_id)
    else:
        handle = reference_kafka.start_reference_kafka(work)
        try:
            yield Broker("kafka", handle.bootstrap, work / "data", 1)
        finally:
            handle.stop()


def tool(main_class: str, *args: str, stdin: str | None = None, ok: bool = True,
         timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of Kafka's tools; with ``ok`` (the default) it must exit 0."""
    cmd = reference_kafka.tool_command(main_class if main_class.startswith(("org.", "kafka.")) else TOOLS + main_class,
                                       list(args), heap="256m")
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=TOOL_ENV)
    if ok:
        assert res.returncode == 0, f"{main_class} {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(b: Broker, topic: str, partitions: int = 1, *extra: str) -> None:
    res = tool("TopicCommand", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", str(partitions), "--replication-factor", "1", *extra)
    assert res.stdout.strip() == f"Created topic {topic}."


def produce(b: Broker, topic: str, lines: list[str], keyed: bool = True) -> None:
    props = ["--reader-property", "parse.key=true", "--reader-property", "key.separator=:"] if keyed else []
    tool("ConsoleProducer", "--bootstrap-server", b.bootstrap, "--topic", topic, *props,
         stdin="".join(line + "\n" for line in lines))


def get_offsets(b: Broker, topic: str, *extra: str) -> dict[int, int]:
    """kafka-get-offsets: one ``topic:partition:offset`` line a partition."""
    res = tool("GetOffsetShell", "--bootstrap-server", b.bootstrap, "--topic", topic, *extra)
    out = {}
    for line in res.stdout.split():
        t, p, o = line.rsplit(":", 2)
        assert t == topic, res.stdout
        out[int(p)] = int(o)
    return out


def table(stdout: str) -> list[dict[str, str]]:
    """The rows of a whitespace-aligned table whose header line starts with GROUP/TOPIC/etc."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in stdout.splitlines():
        words = line.split()
        if not words:
            header = None
            continue
        if header is None:
            if words[0] in ("GROUP", "TransactionalId", "TOPIC"):
                header = words
            continue
        rows.append(dict(zip(header, words, strict=False)))
    return rows


# -- kafka-topics ------------------------------------------------------------------------------------

def describe_partition_counts(stdout: str) -> dict[str, int]:
    """`Topic: t  TopicId: ..  PartitionCount: 3  ReplicationFactor: 1  Configs: ..` lines."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^Topic: (\S+)\s+TopicId: \S+\s+PartitionCount: (\d+)", stdout, re.M)}


def test_kafka_topics_create_describe_alter_delete(broker: Broker) -> None:
    topic = new_name("topics")
    bs = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker, topic, 3, "--config", "retention.ms=123456")
    # Creating it again fails, and says why.
    again = tool("TopicCommand", *bs, "--create", "--topic", topic, "--partitions", "1", ok=False)
    assert again.returncode == 1
    assert f"Topic '{topic}' already exists." in again.stdout + again.stderr
    listed = tool("TopicCommand", *bs, "--list").stdout.split()
    assert topic in listed
    desc = tool("TopicCommand", *bs, "--describe", "--topic", topic).stdout
    assert describe_partition_counts(desc) == {topic: 3}
    assert "retention.ms=123456" in desc
    parts = re.findall(rf"^\s*Topic: {topic}\s+Partition: (\d+)\s+Leader: (\d+)\s+Replicas: (\d+)\s+Isr: (\d+)",
                       desc, re.M)
    node = str(broker.node_id)
    assert sorted(parts) == [(str(p), node, node, node) for p in range(3)], desc
    tool("TopicCommand", *bs, "--alter", "--topic", topic, "--partitions", "5")
    desc = tool("TopicCommand", *bs, "--describe", "--topic", topic).stdout
    assert describe_partition_counts(desc) == {topic: 5}
    # Fewer partitions is refused.
    shrink = tool("TopicCommand", *bs, "--alter", "--topic", topic, "--partitions", "2", ok=False)
    assert shrink.returncode == 1
    assert (f"InvalidPartitionsException: The topic {topic} currently has 5 partition(s); 2 would not be an "
            "increase.") in shrink.stdout
    # One node, every replica in sync: nothing under-replicated, nothing without a leader.
    under = tool("TopicCommand", *bs, "--describe", "--under-replicated-partitions")
    assert under.stdout.strip() == ""
    unavailable = tool("TopicCommand", *bs, "--describe", "--unavailable-partitions")
    assert unavailable.stdout.strip() == ""
    tool("TopicCommand", *bs, "--delete", "--topic", topic)
    assert topic not in tool("TopicCommand", *bs, "--list").stdout.split()
    gone = tool("TopicCommand", *bs, "--describe", "--topic", topic, ok=False)
    assert gone.returncode == 1
    assert f"Topic '{topic}' does not exist as expected" in gone.stdout + gone.stderr


# -- console producer/consumer, kafka-consumer-groups ------------------------------------------------

def group_rows(b: Broker, group: str) -> list[dict[str, str]]:
    res = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", b.bootstrap, "--describe",
               "--group", group)
    return table(res.stdout)


def reset(b: Broker, group: str, topic: str, *mode: str) -> dict[int, int]:
    """kafka-consumer-groups --reset-offsets --execute: the NEW-OFFSET column by partition."""
    res = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", b.bootstrap, "--reset-offsets",
               "--group", group, "--topic", topic, *mode, "--execute")
    rows = table(res.stdout)
    assert rows and all(r["GROUP"] == group and r["TOPIC"] == topic for r in rows), res.stdout
    return {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in rows}


def test_console_tools_and_consumer_groups(broker: Broker, tmp_path: Path) -> None:
    topic, group = new_name("console"), new_name("group")
    create_topic(broker, topic)
    produce(broker, topic, [f"k{i}:v{i}" for i in range(6)])
    assert get_offsets(broker, topic) == {0: 6}
    assert get_offsets(broker, topic, "--time", "-2") == {0: 0}
    consumed = tool("consumer.ConsoleConsumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                    "--group", group, "--from-beginning", "--max-messages", "6",
                    "--formatter-property", "print.key=true", "--formatter-property", "key.separator=:")
    assert consumed.stdout.splitlines() == [f"k{i}:v{i}" for i in range(6)]
    assert "Processed a total of 6 messages" in consumed.stderr
    rows = group_rows(broker, group)
    assert [(r["TOPIC"], r["PARTITION"], r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) for r in rows] == [
        (topic, "0", "6", "6", "0")], rows
    listed = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, "--list")
    assert group in listed.stdout.split()
    # Every reset mode, each applied (--execute) and visible in the next --describe.
    assert reset(broker, group, topic, "--to-earliest") == {0: 0}
    assert [r["LAG"] for r in group_rows(broker, group)] == ["6"]
    assert reset(broker, group, topic, "--to-latest") == {0: 6}
    assert reset(broker, group, topic, "--to-offset", "2") == {0: 2}
    assert reset(broker, group, topic, "--shift-by", "3") == {0: 5}
    assert reset(broker, group, topic, "--shift-by", "-10") == {0: 0}  # clamped to the log start
    assert reset(broker, group, topic, "--to-current") == {0: 0}
    assert reset(broker, group, topic, "--to-datetime", "2000-01-01T00:00:00.000") == {0: 0}
    assert reset(broker, group, topic, "--to-datetime", "2999-01-01T00:00:00.000") == {0: 6}
    assert reset(broker, group, topic, "--by-duration", "P1D") == {0: 0}
    plan = tmp_path / "reset.csv"
    plan.write_text(f"{group},{topic},0,4\n")
    res = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, "--reset-offsets",
               "--group", group, "--from-file", str(plan), "--execute")
    assert [(r["PARTITION"], r["NEW-OFFSET"]) for r in table(res.stdout)] == [("0", "4")]
    assert [(r["CURRENT-OFFSET"], r["LAG"]) for r in group_rows(broker, group)] == [("4", "2")]
    # --delete-offsets, then --delete.
    res = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap,
               "--delete-offsets", "--group", group, "--topic", topic)
    assert f"Request succeeded for deleting offsets from group {group}." in res.stdout
    assert table(res.stdout) == [{"TOPIC": topic, "PARTITION": "0", "STATUS": "Successful"}], res.stdout
    res = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, "--delete",
               "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in res.stdout
    listed = tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, "--list")
    assert group not in listed.stdout.split()


# -- kafka-get-offsets, kafka-delete-records, kafka-log-dirs, kafka-dump-log --------------------------

def test_delete_records_log_dirs_and_dump_log(broker: Broker, tmp_path: Path) -> None:
    topic = new_name("records")
    create_topic(broker, topic)
    produce(broker, topic, [f"v{i}" for i in range(5)], keyed=False)
    plan = tmp_path / "delete.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 3}]}))
    res = tool("DeleteRecordsCommand", "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(plan))
    assert re.search(rf"partition: {re.escape(topic)}-0\s+low_watermark: 3", res.stdout), res.stdout
    assert get_offsets(broker, topic, "--time", "-2") == {0: 3}
    assert get_offsets(broker, topic, "--time", "-1") == {0: 5}
    res = tool("LogDirsCommand", "--bootstrap-server", broker.bootstrap, "--describe", "--topic-list", topic)
    doc = json.loads(res.stdout.splitlines()[-1])
    [entry] = doc["brokers"]
    assert entry["broker"] == broker.node_id
    [log_dir] = entry["logDirs"]
    assert Path(log_dir["logDir"]).resolve() == broker.log_dir.resolve()
    [part] = log_dir["partitions"]
    assert part["partition"] == f"{topic}-0" and part["size"] > 0 and part["isFuture"] is False
    # kafka-dump-log on the broker's own segment file: the 5 records, as one batch.
    segments = sorted((broker.log_dir / f"{topic}-0").glob("*.log"))
    assert segments, list((broker.log_dir / f"{topic}-0").iterdir())
    res = tool("DumpLogSegments", "--files", ",".join(map(str, segments)), "--print-data-log")
    counts = [int(c) for c in re.findall(r"^baseOffset: \d+ lastOffset: \d+ count: (\d+)", res.stdout, re.M)]
    assert sum(counts) == 5, res.stdout
    payloads = re.findall(r"\| offset: (\d+) .* payload: (\S+)$", res.stdout, re.M)
    assert payloads == [(str(i), f"v{i}") for i in range(5)], res.stdout
