"""The operator commands (``kbroker topic|produce|consume|group|completion``) against kbroker and
against the reference Apache Kafka 4.4: the same commands, the same expectations on both."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

from kbroker import opcli
from kbroker.console.records import murmur2

ROOT = Path(__file__).resolve().parents[2]


def run(bootstrap: str, *args: str, stdin: str = "", code: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    got = opcli.main([*args, "-b", bootstrap], out=out, err=err, stdin=io.StringIO(stdin))
    assert got == code, (args, got, out.getvalue(), err.getvalue())
    return out.getvalue(), err.getvalue()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_topic_create_list_describe_alter_delete(bootstrap: str) -> None:
    topic = name("ops")
    out, _ = run(bootstrap, "topic", "create", topic, "-p", "3", "-r", "1", "-c", "retention.ms=123456")
    assert out == f"created {topic} (3 partitions, replication factor 1)\n"
    _, err = run(bootstrap, "topic", "create", topic, code=1)
    assert "TOPIC_ALREADY_EXISTS" in err
    listed = json.loads(run(bootstrap, "topic", "list", "--json")[0])
    assert {"name": topic, "partitions": 3, "replication_factor": 1} == {
        k: v for t in listed if t["name"] == topic for k, v in t.items() if k in ("name", "partitions",
                                                                               "replication_factor")}
    assert not any(t["internal"] for t in listed)
    out, _ = run(bootstrap, "topic", "describe", topic)
    assert out.startswith(f"NAME {topic}  ID ")
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["0", "1", "2"]
    assert any(line.split()[:2] == ["retention.ms", "123456"] for line in out.splitlines())
    run(bootstrap, "topic", "alter-config", topic, "--set", "cleanup.policy=compact", "--delete", "retention.ms")
    configs = {c["name"]: c for c in json.loads(run(bootstrap, "topic", "describe", topic, "--json")[0])["configs"]}
    assert configs["cleanup.policy"]["value"] == "compact"
    assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"
    assert run(bootstrap, "topic", "delete", topic)[0] == f"deleted {topic}\n"
    _, err = run(bootstrap, "topic", "describe", topic, code=1)
    assert f"no topic '{topic}'" in err


def test_bad_arguments_name_the_option_and_exit_2(bootstrap: str) -> None:
    topic = name("bad")
    _, err = run(bootstrap, "topic", "create", topic, "-c", "retention.ms", code=2)
    assert "-c/--config: expected key=value" in err
    _, err = run(bootstrap, "topic", "alter-config", topic, code=2)
    assert "--set" in err
    run(bootstrap, "topic", "create", topic, "-p", "2")
    _, err = run(bootstrap, "produce", topic, "-p", "7", stdin="x\n", code=2)
    assert f"{topic} has no partition 7 (it has 2)" in err
    _, err = run(bootstrap, "consume", topic, "-o", "sideways", "-e", code=2)
    assert "-o/--offset" in err
    assert opcli.main(["topic", "list", "-b", "nohost"], out=io.StringIO(), err=io.StringIO()) == 2


def test_produce_keys_headers_then_consume_with_formats_and_offsets(bootstrap: str) -> None:
    topic = name("rec")
    run(bootstrap, "topic", "create", topic, "-p", "4")
    lines = "".join(f"key{i}:value {i}\n" for i in range(40))
    out, err = run(bootstrap, "produce", topic, "-K", ":", "-H", "source=cli", "-H", "n=1", "--progress", stdin=lines)
    assert out.startswith(f"produced 40 records to {topic} (")
    assert err.strip().endswith("s") and "produced 40 records in" in err
    out, _ = run(bootstrap, "consume", topic, "-e", "-f", "%p|%o|%k|%v|%h\\n")
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == 40
    for p, _offset, key, value, headers in rows:
        assert int(p) == (murmur2(key.encode()) & 0x7FFFFFFF) % 4  # Kafka's default partitioner
        assert value == f"value {key[3:]}"
        assert headers == "source=cli,n=1"
    per_partition: dict[str, list[int]] = {}
    for p, offset, *_ in rows:
        per_partition.setdefault(p, []).append(int(offset))
    assert all(offs == list(range(len(offs))) for offs in per_partition.values())
    # -o -N: the last N of each partition; -n: a count; -p: one partition
    busiest = max(per_partition, key=lambda p: len(per_partition[p]))
    out, _ = run(bootstrap, "consume", topic, "-p", busiest, "-o", "-2", "-e", "-f", "%o\\n")
    n = len(per_partition[busiest])
    assert out.split() == [str(n - 2), str(n - 1)]
    out, _ = run(bootstrap, "consume", topic, "-n", "5", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 5 and all(r["headers"][0] == {"key": "source", "value": "cli"} for r in records)
    # unkeyed lines, compressed, to one partition; a line without the separator has no key
    out, _ = run(bootstrap, "produce", topic, "-p", "0", "-z", "gzip", "-K", ":", stdin="plain\nk:v\n")
    assert out == f"produced 2 records to {topic} (0: 2)\n"
    out, _ = run(bootstrap, "consume", topic, "-p", "0", "-o", "-2", "-e", "-f", "%K %k %v\\n")
    assert out == "-1  plain\n1 k v\n"


def test_consume_in_a_group_commits_then_reset_and_delete(bootstrap: str) -> None:
    topic, group = name("grp"), name("g")
    run(bootstrap, "topic", "create", topic, "-p", "2")
    run(bootstrap, "produce", topic, stdin="".join(f"v{i}\n" for i in range(30)))
    out, _ = run(bootstrap, "consume", topic, "-g", group, "-e")
    assert sorted(out.split()) == sorted(f"v{i}" for i in range(30))
    desc = json.loads(run(bootstrap, "group", "describe", group, "--json")[0])
    assert desc["total_lag"] == 0 and sum(o["committed"] for o in desc["offsets"]) == 30
    out, _ = run(bootstrap, "consume", topic, "-g", group, "-e")
    assert out == ""  # everything was committed by the first member
    out, _ = run(bootstrap, "group", "reset", group, "--to", "earliest", "-t", topic)
    assert [line.split() for line in out.splitlines()[1:]] == [[topic, "0", "0"], [topic, "1", "0"]]
    listed = json.loads(run(bootstrap, "group", "list", "--json")[0])
    assert any(g["group_id"] == group for g in listed)
    out, _ = run(bootstrap, "consume", topic, "-g", group, "-n", "30")
    assert len(out.split()) == 30
    assert run(bootstrap, "group", "delete", group)[0] == f"deleted {group}\n"
    _, err = run(bootstrap, "group", "describe", group, code=1)
    assert group in err


def test_bash_completion_completes_the_command_tree(tmp_path: Path) -> None:
    out = io.StringIO()
    assert opcli.main(["completion", "bash"], out=out) == 0
    script = tmp_path / "kbroker.bash"
    script.write_text(out.getvalue())

    def complete(*words: str) -> list[str]:
        cmd = (f"source {script}; COMP_WORDS=(kbroker {' '.join(words)}); COMP_CWORD={len(words)}; "
               '_kbroker_complete; printf "%s\\n" "${COMPREPLY[@]}"')
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.split()

    assert complete("") == ["completion", "consume", "group", "produce", "topic"]
    assert complete("topic", "") == ["alter-config", "create", "delete", "describe", "list"]
    assert "--partitions" in complete("topic", "create", "t", "--")
    assert complete("group", "reset", "g", "--t") == ["--to", "--topic"]


def test_the_kbroker_command_runs_them_and_reports_an_unreachable_broker(tmp_path: Path) -> None:
    env_free = subprocess.run([sys.executable, "-m", "kbroker", "topic", "list", "-b", "127.0.0.1:1"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert env_free.returncode == 1
    assert env_free.stderr.startswith("kbroker: broker 127.0.0.1:1:")
