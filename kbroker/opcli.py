"""``kbroker topic|produce|consume|group``: the daily operations, in the manner of ``rpk``.

Every command is plain Kafka requests through the console's client (:mod:`kbroker.console.client`)
and its operations (:mod:`kbroker.console.ops`), so it works against any Kafka-compatible broker,
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
from typing import IO, Any

from kbroker.console import groups as group_ops
from kbroker.console import ops
from kbroker.console.client import BrokerUnreachable, KafkaClient, KafkaError, check
from kbroker.opcli_common import CODECS, ENV_BOOTSTRAP, UsageError, parse_address, parse_pairs, table
from kbroker.opcli_records import cmd_consume, cmd_produce

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
