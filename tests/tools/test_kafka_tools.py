"""Kafka 4.4's own command-line tools against kbroker and against the reference Apache Kafka.

Every test runs once per broker (the module-scoped ``broker`` fixture is parametrized over kbroker,
started in-process, and Apache Kafka 4.4.0, started from the jars ``scripts/reference_kafka.py``
fetches), with the tools' real arguments, and checks the exit code and the meaningful part of the
output. The expectations are the same on both brokers unless a comment points at compat/FINDINGS.md.
Each tool run is a JVM start, so a test groups the checks that share a topic.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import reference_kafka
from waiting import wait_until

from kbroker.testing import BrokerThread

TOOLS = "org.apache.kafka.tools."
# Tools are short-lived JVMs: the C1 compiler alone starts them faster.


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
    res = reference_kafka.run_tool(main_class if main_class.startswith(("org.", "kafka.")) else TOOLS + main_class,
                                   list(args), stdin=stdin, timeout=timeout)
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
    # The controller has answered; the broker serving the describe applies the change right after.
    wait_until(lambda: describe_partition_counts(tool("TopicCommand", *bs, "--describe", "--topic", topic).stdout)
               == {topic: 5}, timeout=60, message="5 partitions in --describe")
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
    wait_until(lambda: topic not in tool("TopicCommand", *bs, "--list").stdout.split(), timeout=60,
               message="the deleted topic gone from --list")
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


# -- kafka-configs -----------------------------------------------------------------------------------

def configs(b: Broker, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """kafka-configs; after a successful --alter of a topic's or a broker's configs, waits until a
    --describe shows the change (see ``await_configs``)."""
    res = tool("ConfigCommand", "--bootstrap-server", b.bootstrap, *args, ok=ok)
    if "--alter" in args and res.returncode == 0:
        entity = [a for i, a in enumerate(args) if a != "--alter" and "-config" not in a
                  and not (i and "-config" in args[i - 1])]
        added = dict(kv.split("=", 1) for kv in re.split(r",(?![^\[]*\])", value_after(args, "--add-config")) if kv)
        await_configs(b, entity, {k: v.strip("[]") for k, v in added.items()},
                      [k for k in value_after(args, "--delete-config").split(",") if k])
    return res


def value_after(args: tuple[str, ...], option: str) -> str:
    return args[args.index(option) + 1] if option in args else ""


def await_configs(b: Broker, entity: list[str], present: dict[str, str], absent: list[str] | None = None) -> None:
    """Wait until a --describe of ``entity`` (topics or brokers) lists ``present`` and none of ``absent``.
    The controller has committed an alter when the tool returns; the broker answering --describe
    applies it right after (Kafka's describe can show the old value for a moment)."""
    if "topics" not in entity and "brokers" not in entity:
        return

    def applied() -> bool:
        lines = config_lines(tool("ConfigCommand", "--bootstrap-server", b.bootstrap, *entity, "--describe").stdout)
        return all(lines.get(k) == v for k, v in present.items()) and not any(k in lines for k in absent or [])
    wait_until(applied, timeout=60, message=f"{entity}: {present} set, {absent} unset in --describe")


def config_lines(stdout: str) -> dict[str, str]:
    """`  key=value sensitive=false synonyms={...}` lines of a --describe: key -> value."""
    return dict(m.groups() for m in re.finditer(r"^  ([\w.]+)=(\S*) sensitive=", stdout, re.M))


def test_kafka_configs_topics_and_brokers(broker: Broker) -> None:
    topic = new_name("configs")
    create_topic(broker, topic)
    res = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--alter",
                  "--add-config", "retention.ms=86400000,segment.bytes=1048576,cleanup.policy=[compact,delete]")
    assert res.stdout.strip() == f"Completed updating config for topic {topic}."
    desc = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--describe").stdout
    assert desc.splitlines()[0] == f"Dynamic configs for topic {topic} are:"
    assert config_lines(desc) == {"retention.ms": "86400000", "segment.bytes": "1048576",
                                  "cleanup.policy": "compact,delete"}
    assert "synonyms={DYNAMIC_TOPIC_CONFIG:segment.bytes=1048576, DEFAULT_CONFIG:log.segment.bytes=1073741824}" in desc
    # No broker config sets log.retention.ms, so its lower synonym log.retention.hours is not listed
    # (Kafka's ConfigHelper drops the synonyms before the first one named log.retention.ms).
    assert "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=86400000}" in desc
    configs(broker, "--entity-type", "topics", "--entity-name", topic, "--alter", "--delete-config", "retention.ms")
    desc = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--describe").stdout
    assert config_lines(desc) == {"segment.bytes": "1048576", "cleanup.policy": "compact,delete"}
    bad = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--alter",
                  "--add-config", "retention.ms=soon", ok=False)
    assert bad.returncode == 1
    assert "InvalidConfigurationException: Invalid value soon for configuration retention.ms" in bad.stderr
    # Brokers: one broker's dynamic config, and the cluster-wide default.
    node = str(broker.node_id)
    res = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--alter",
                  "--add-config", "message.max.bytes=2000000")
    assert res.stdout.strip() == f"Completed updating config for broker {node}."
    desc = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe").stdout
    assert desc.splitlines()[0] == f"Dynamic configs for broker {node} are:"
    assert config_lines(desc) == {"message.max.bytes": "2000000"}
    assert ("synonyms={DYNAMIC_BROKER_CONFIG:message.max.bytes=2000000, DEFAULT_CONFIG:message.max.bytes=1048588}"
            in desc)
    configs(broker, "--entity-type", "brokers", "--entity-name", node, "--alter", "--delete-config",
            "message.max.bytes")
    assert config_lines(configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe").stdout) == {}
    res = configs(broker, "--entity-type", "brokers", "--entity-default", "--alter",
                  "--add-config", "log.retention.ms=3600000")
    assert res.stdout.strip() == "Completed updating default config for brokers in the cluster."
    desc = configs(broker, "--entity-type", "brokers", "--entity-default", "--describe").stdout
    assert desc.splitlines()[0] == "Default configs for brokers in the cluster are:"
    defaults = config_lines(desc)
    assert defaults.pop("log.retention.ms") == "3600000"
    if broker.kind == "kafka":
        # Kafka 4.4's format bootstraps a cluster-wide min.insync.replicas; kbroker's does not
        # (compat/FINDINGS.md, 'kafka-configs: cluster default min.insync.replicas').
        assert defaults == {"min.insync.replicas": "1"}
    else:
        assert defaults == {}
    # log.cleaner.threads is a dynamic per-broker config in Kafka; kbroker's cleaner cannot change
    # its thread count at run time (compat/FINDINGS.md, 'kafka-configs: log.cleaner.threads').
    threads = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--alter",
                      "--add-config", "log.cleaner.threads=2", ok=broker.kind == "kafka")
    if broker.kind == "kbroker":
        assert threads.returncode == 1
        assert ("InvalidRequestException: Cannot update these configs dynamically: [log.cleaner.threads]"
                in threads.stderr)
    else:
        configs(broker, "--entity-type", "brokers", "--entity-name", node, "--alter",
                "--delete-config", "log.cleaner.threads")
    everything = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe", "--all").stdout
    assert everything.splitlines()[0] == f"All configs for broker {node} are:"
    assert config_lines(everything)["message.max.bytes"] == "1048588"
    lines = {line.split("=", 1)[0].strip(): line.strip() for line in everything.splitlines()[1:]}
    assert lines["log.retention.ms"] == (
        "log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, "
        "DEFAULT_CONFIG:log.retention.hours=168}")
    assert lines["log.retention.hours"] == (
        "log.retention.hours=168 sensitive=false synonyms={DEFAULT_CONFIG:log.retention.hours=168}")
    assert lines["log.roll.ms"] == "log.roll.ms=null sensitive=false synonyms={}"
    assert lines["log.roll.hours"] == "log.roll.hours=168 sensitive=false synonyms={DEFAULT_CONFIG:log.roll.hours=168}"
    # Now that the cluster default sets log.retention.ms, a topic's retention.ms lists the whole chain.
    desc = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--describe", "--all").stdout
    assert ("retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, "
            "DEFAULT_CONFIG:log.retention.hours=168}") in desc


def test_kafka_configs_clients_and_users(broker: Broker) -> None:
    """Client quotas and SCRAM credentials, the same on both brokers (kbroker's quotas:
    docs/quotas.md; SCRAM logins with these credentials: tests/security/test_kafka_tools_security.py)."""
    client, user = new_name("client"), new_name("user")
    add_quota = ("--entity-type", "clients", "--entity-name", client, "--alter",
                 "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048")
    add_user_quota = ("--entity-type", "users", "--entity-name", user, "--alter",
                      "--add-config", "request_percentage=50")
    add_scram = ("--entity-type", "users", "--entity-name", user, "--alter",
                 "--add-config", "SCRAM-SHA-256=[iterations=8192,password=secret]")
    assert configs(broker, *add_quota).stdout.strip() == f"Completed updating config for client {client}."
    desc = configs(broker, "--entity-type", "clients", "--entity-name", client, "--describe").stdout
    assert desc.strip() == (f"Quota configs for client-id '{client}' are consumer_byte_rate=2048.0, "
                            "producer_byte_rate=1024.0")
    assert configs(broker, *add_user_quota).stdout.strip() == f"Completed updating config for user {user}."
    assert configs(broker, *add_scram).stdout.strip() == f"Completed updating config for user {user}."
    desc = configs(broker, "--entity-type", "users", "--entity-name", user, "--describe").stdout
    assert f"Quota configs for user-principal '{user}' are request_percentage=50.0" in desc
    assert f"SCRAM credential configs for user-principal '{user}' are SCRAM-SHA-256=iterations=8192" in desc


# -- kafka-transactions, kafka-leader-election -------------------------------------------------------

OPEN_TRANSACTION = """\
import os, sys
from confluent_kafka import Producer
bs, topic, tid = sys.argv[1:4]
p = Producer({"bootstrap.servers": bs, "transactional.id": tid, "transaction.timeout.ms": 900000})
p.init_transactions(30)
p.begin_transaction()
for i in range(3):
    p.produce(topic, value=f"open{i}".encode())
assert p.flush(30) == 0
os._exit(0)  # gone without committing: the transaction stays open
"""


def tab_rows(stdout: str) -> list[dict[str, str]]:
    """kafka-transactions prints tab-separated tables with a header line."""
    lines = [[w.strip() for w in line.split("\t")] for line in stdout.splitlines() if line.strip()]
    return [dict(zip(lines[0], row, strict=False)) for row in lines[1:]]


def test_kafka_transactions_and_leader_election(broker: Broker) -> None:
    topic, committed, hanging = new_name("txn"), new_name("tx-done"), new_name("tx-open")
    create_topic(broker, topic)
    bs = ["--bootstrap-server", broker.bootstrap]
    # kafka-producer-perf-test as a transactional producer: 100 records, committed.
    res = tool("ProducerPerformance", "--topic", topic, "--num-records", "100", "--record-size", "20",
               "--throughput", "-1", "--command-property", f"bootstrap.servers={broker.bootstrap}",
               "--transactional-id", committed, "--transaction-duration-ms", "60000")
    assert re.search(r"^100 records sent", res.stdout, re.M), res.stdout
    # A transaction left open by a producer that went away.
    subprocess.run([sys.executable, "-c", OPEN_TRANSACTION, broker.bootstrap, topic, hanging], check=True,
                   timeout=60)
    listed = {r["TransactionalId"]: r for r in tab_rows(tool("TransactionsCommand", *bs, "list").stdout)}
    assert listed[committed]["TransactionState"] == "CompleteCommit"
    assert listed[hanging]["TransactionState"] == "Ongoing"
    assert listed[hanging]["Coordinator"] == str(broker.node_id)
    [desc] = tab_rows(tool("TransactionsCommand", *bs, "describe", "--transactional-id", hanging).stdout)
    assert (desc["TransactionState"], desc["TopicPartitions"], desc["TransactionTimeoutMs"]) == (
        "Ongoing", f"{topic}-0", "900000")
    [desc] = tab_rows(tool("TransactionsCommand", *bs, "describe", "--transactional-id", committed).stdout)
    assert (desc["TransactionState"], desc["TopicPartitions"]) == ("CompleteCommit", "")
    producers = tab_rows(tool("TransactionsCommand", *bs, "describe-producers", "--topic", topic,
                              "--partition", "0").stdout)
    open_at = {r["ProducerId"]: r["CurrentTransactionStartOffset"] for r in producers}
    # 100 committed records and their commit marker, then the open transaction's first record.
    assert sorted(open_at.values()) == ["101", "None"], producers
    # The coordinator still knows the open transaction, so it is not hanging.
    res = tool("TransactionsCommand", *bs, "find-hanging", "--broker-id", str(broker.node_id),
               "--max-transaction-timeout", "0")
    assert tab_rows(res.stdout) == [], res.stdout
    wrong = tool("TransactionsCommand", *bs, "abort", "--topic", topic, "--partition", "0",
                 "--start-offset", "102", ok=False)
    assert wrong.returncode == 1
    assert f"Could not find any open transactions starting at offset 102 on partition {topic}-0" in wrong.stderr
    tool("TransactionsCommand", *bs, "abort", "--topic", topic, "--partition", "0", "--start-offset", "101")
    producers = tab_rows(tool("TransactionsCommand", *bs, "describe-producers", "--topic", topic,
                              "--partition", "0").stdout)
    assert [r["CurrentTransactionStartOffset"] for r in producers] == ["None", "None"], producers
    # The abort marker follows the 3 open records.
    assert get_offsets(broker, topic) == {0: 105}
    # kafka-dump-log on the broker's own files: the partition's aborted-transaction index, and the
    # coordinator's __transaction_state records, decoded.
    [txnindex] = (broker.log_dir / f"{topic}-0").glob("*.txnindex")
    res = tool("DumpLogSegments", "--files", str(txnindex))
    [pid] = [p for p, start in open_at.items() if start == "101"]
    assert f"version: 0 producerId: {pid} firstOffset: 101 lastOffset: 104 lastStableOffset: 105" in res.stdout
    state_logs = sorted(broker.log_dir.glob("__transaction_state-*/*.log"))
    res = tool("DumpLogSegments", "--files", ",".join(map(str, state_logs)), "--transaction-log-decoder")
    statuses: dict[str, list[str]] = {}
    for m in re.finditer(r'key: \{"type":"0","data":\{"transactionalId":"([^"]+)"\}\} payload: (\{.*\})$',
                         res.stdout, re.M):
        statuses.setdefault(m.group(1), []).append(json.loads(m.group(2))["data"]["transactionStatus"])
    assert statuses[hanging] == ["Empty", "Ongoing"], res.stdout
    assert statuses[committed][0] == "Empty" and statuses[committed][-1] == "CompleteCommit"
    assert "PrepareCommit" in statuses[committed]
    # kafka-leader-election: one replica a partition, already the leader.
    res = tool("LeaderElectionCommand", *bs, "--election-type", "preferred", "--topic", topic, "--partition", "0")
    assert res.stdout.strip() == f"Valid replica already elected for partitions {topic}-0"
    res = tool("LeaderElectionCommand", *bs, "--election-type", "unclean", "--all-topic-partitions")
    assert res.stdout.strip() == ""


# -- perf tests and the verifiable producer/consumer -------------------------------------------------

def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_perf_and_verifiable_clients(broker: Broker) -> None:
    topic = new_name("perf")
    create_topic(broker, topic, 2)
    res = tool("ProducerPerformance", "--topic", topic, "--num-records", "300", "--record-size", "50",
               "--throughput", "-1", "--command-property", f"bootstrap.servers={broker.bootstrap}", "acks=all")
    assert re.search(r"^300 records sent, [\d.]+ records/sec", res.stdout, re.M), res.stdout
    res = tool("ConsumerPerformance", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--num-records", "300")
    header, row = res.stdout.strip().splitlines()[-2:]
    stats = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in row.split(",")], strict=True))
    assert stats["data.consumed.in.nMsg"] == "300", res.stdout
    assert stats["data.consumed.in.MB"] == "0.0143"  # 300 x 50 bytes
    res = tool("VerifiableProducer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--max-messages", "20", "--acks", "-1")
    events = json_events(res.stdout)
    sent = [e for e in events if e["name"] == "producer_send_success"]
    assert sorted(int(e["value"]) for e in sent) == list(range(20))
    assert not [e for e in events if e["name"] == "producer_send_error"]
    assert events[-1]["name"] == "tool_data" and events[-1]["sent"] == 20 and events[-1]["acked"] == 20
    assert sum(get_offsets(broker, topic).values()) == 320
    group = new_name("verifiable")
    res = tool("VerifiableConsumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--group-id", group, "--max-messages", "320", "--reset-policy", "earliest")
    events = json_events(res.stdout)
    assert sum(e["count"] for e in events if e["name"] == "records_consumed") == 320
    committed = [e for e in events if e["name"] == "offsets_committed"]
    assert committed and all(e["success"] for e in committed)
    assert events[-1]["name"] in ("shutdown_complete", "shutdown_requested")
    rows = group_rows(broker, group)
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == 320 and {r["LAG"] for r in rows} == {"0"}, rows
    # kafka-dump-log --offsets-decoder on the broker's own __consumer_offsets: the group's last commit
    # of each partition is the offset --describe shows.
    offset_logs = sorted(broker.log_dir.glob("__consumer_offsets-*/*.log"))
    res = tool("DumpLogSegments", "--files", ",".join(map(str, offset_logs)), "--offsets-decoder")
    last: dict[int, int] = {}
    for m in re.finditer(r'key: (\{"type":"1",.*?\}\}) payload: (\{.*\})$', res.stdout, re.M):
        key, value = json.loads(m.group(1))["data"], json.loads(m.group(2))["data"]
        if key["group"] == group and key["topic"] == topic:
            last[key["partition"]] = value["offset"]
    assert last == {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in rows}, res.stdout[-3000:]


# -- ACLs and partition reassignment ------------------------------------------------------------------

def test_acls_tool_without_an_authorizer(broker: Broker) -> None:
    """kafka-acls without an authorizer: both brokers refuse it alike (kafka-acls against an
    authorizer: tests/security/test_kafka_tools_security.py)."""
    acls = tool("AclCommand", "--bootstrap-server", broker.bootstrap, "--list", ok=False)
    assert acls.returncode == 1
    # No authorizer configured: both brokers refuse ACL requests.
    assert "SecurityDisabledException: No Authorizer is configured on the broker" in acls.stdout


def test_reassign_partitions_tool_on_one_broker(broker: Broker, tmp_path: Path) -> None:
    """kafka-reassign-partitions on one broker, side by side: --list finds none, --generate proposes
    the one broker, --execute of that plan and --verify complete, a plan naming an unknown broker is
    refused (moves between brokers: tests/cluster/test_reassign_partitions_tool.py)."""
    reassign = "reassign.ReassignPartitionsCommand"
    res = tool(reassign, "--bootstrap-server", broker.bootstrap, "--list")
    assert res.stdout.strip() == "No partition reassignments found."
    topic = new_name("moved")
    create_topic(broker, topic, 2)
    move = tmp_path / f"{broker.kind}-move.json"
    move.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
    res = tool(reassign, "--bootstrap-server", broker.bootstrap, "--generate", "--topics-to-move-json-file",
               str(move), "--broker-list", str(broker.node_id))
    lines = res.stdout.splitlines()
    proposed = json.loads(lines[lines.index("Proposed partition reassignment configuration") + 1])
    assert sorted((p["partition"], p["replicas"]) for p in proposed["partitions"]) == \
        [(0, [broker.node_id]), (1, [broker.node_id])]
    plan = tmp_path / f"{broker.kind}-plan.json"
    plan.write_text(json.dumps(proposed))
    res = tool(reassign, "--bootstrap-server", broker.bootstrap, "--execute", "--reassignment-json-file", str(plan),
               "--throttle", "1000")
    assert "Successfully started partition reassignments for" in res.stdout, res.stdout
    assert "The inter-broker throttle limit was set to 1000 B/s" in res.stdout, res.stdout
    node = str(broker.node_id)
    rates = {"leader.replication.throttled.rate": "1000", "follower.replication.throttled.rate": "1000"}
    await_configs(broker, ["--entity-type", "brokers", "--entity-name", node], rates)
    desc = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe").stdout
    throttles = {k: v for k, v in config_lines(desc).items() if "throttled" in k}
    assert throttles == {"leader.replication.throttled.rate": "1000", "follower.replication.throttled.rate": "1000"}
    everything = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe", "--all").stdout
    # dynamic-only keys: listed once set, without a default synonym
    quota_lines = [line.strip() for line in everything.splitlines() if "throttled" in line or "log.dirs.io" in line]
    assert quota_lines == [
        f"{side}.replication.throttled.rate=1000 sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:"
        f"{side}.replication.throttled.rate=1000}}" for side in ("follower", "leader")], quota_lines
    res = tool(reassign, "--bootstrap-server", broker.bootstrap, "--verify", "--reassignment-json-file", str(plan))
    assert f"Reassignment of partition {topic}-0 is completed." in res.stdout, res.stdout
    assert f"Reassignment of partition {topic}-1 is completed." in res.stdout, res.stdout
    assert f"Clearing broker-level throttles on broker {node}" in res.stdout, res.stdout
    await_configs(broker, ["--entity-type", "brokers", "--entity-name", node], {}, list(rates))
    desc = configs(broker, "--entity-type", "brokers", "--entity-name", node, "--describe").stdout
    assert not [k for k in config_lines(desc) if "throttled" in k], desc
    # a topic throttle list is validated as Kafka's ThrottledReplicaListValidator
    res = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config",
                  "leader.replication.throttled.replicas=x", ok=False)
    assert res.returncode == 1 and "leader.replication.throttled.replicas must be the literal '*' or a list of " \
        "replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..." in res.stderr, \
        res.stdout + res.stderr
    bad = tmp_path / f"{broker.kind}-bad.json"
    bad.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [broker.node_id, 99], "log_dirs": ["any", "any"]}]}))
    res = tool(reassign, "--bootstrap-server", broker.bootstrap, "--execute", "--reassignment-json-file", str(bad),
               ok=False)
    assert res.returncode == 1 and "Unknown broker id 99" in res.stdout, res.stdout + res.stderr
