"""Kafka 4.4's own share-group tools against kbroker and, beside it, the reference Apache Kafka 4.4.0
(as tests/tools does): kafka-configs on a group, kafka-console-share-consumer, and
kafka-share-groups --list/--describe/--reset-offsets/--delete-offsets/--delete, with the same
expectations on both brokers."""

from __future__ import annotations

import subprocess
import uuid

import reference_kafka


def tool(main_class: str, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    res = reference_kafka.run_tool(f"org.apache.kafka.tools.{main_class}", list(args), stdin=stdin)
    if ok:
        assert res.returncode == 0, f"{main_class} {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def rows(stdout: str, first: str = "GROUP") -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    header = None
    for line in stdout.splitlines():
        words = line.split()
        if not words:
            header = None
        elif header is None:
            header = words if words[0] == first else None
        else:
            out.append(dict(zip(header, words, strict=False)))
    return out


def test_share_group_tools(bootstrap: str) -> None:
    topic, group = f"share-tools-{uuid.uuid4().hex[:8]}", f"share-tools-g-{uuid.uuid4().hex[:8]}"
    bs = ("--bootstrap-server", bootstrap)
    tool("TopicCommand", *bs, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    done = tool("ConfigCommand", *bs, "--alter", "--entity-type", "groups", "--entity-name", group,
                "--add-config", "share.auto.offset.reset=earliest")
    assert f"Completed updating config for group {group}." in done.stdout
    desc = tool("ConfigCommand", *bs, "--describe", "--entity-type", "groups", "--entity-name", group)
    assert "share.auto.offset.reset=earliest" in desc.stdout
    tool("ConsoleProducer", *bs, "--topic", topic, stdin="".join(f"m{i}\n" for i in range(5)))

    got = tool("consumer.ConsoleShareConsumer", *bs, "--topic", topic, "--group", group, "--max-messages", "5",
               "--timeout-ms", "60000")
    assert sorted(got.stdout.split()) == [f"m{i}" for i in range(5)]

    listed = tool("consumer.group.ShareGroupCommand", *bs, "--list")
    assert group in listed.stdout.split()
    offsets = rows(tool("consumer.group.ShareGroupCommand", *bs, "--describe", "--group", group).stdout)
    # Everything delivered: lag 0. (The start offset Kafka reports is the one it last persisted, 0 here:
    # it writes the state before moving the start past acknowledged records; kbroker reports 5.)
    assert [(r["TOPIC"], r["PARTITION"], r["LAG"]) for r in offsets] == [(topic, "0", "0")]
    state = rows(tool("consumer.group.ShareGroupCommand", *bs, "--describe", "--group", group, "--state").stdout)
    assert [(r["GROUP"], r["STATE"], r["#MEMBERS"]) for r in state] == [(group, "Empty", "0")]

    reset = tool("consumer.group.ShareGroupCommand", *bs, "--reset-offsets", "--group", group, "--topic", topic,
                 "--to-earliest", "--execute")
    assert [(r["TOPIC"], r["PARTITION"], r["NEW-OFFSET"]) for r in rows(reset.stdout)] == [(topic, "0", "0")]
    offsets = rows(tool("consumer.group.ShareGroupCommand", *bs, "--describe", "--group", group).stdout)
    assert [(r["START-OFFSET"], r["LAG"]) for r in offsets] == [("0", "5")]

    deleted = tool("consumer.group.ShareGroupCommand", *bs, "--delete-offsets", "--group", group, "--topic", topic)
    assert [(r["TOPIC"], r["STATUS"]) for r in rows(deleted.stdout, "TOPIC")] == [(topic, "Successful")]
    gone = tool("consumer.group.ShareGroupCommand", *bs, "--delete", "--group", group)
    assert f"Deletion of requested share groups ('{group}') was successful." in gone.stdout
    assert group not in tool("consumer.group.ShareGroupCommand", *bs, "--list").stdout.split()
