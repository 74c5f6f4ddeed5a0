"""``kbroker [server.properties] [--override key=value]...`` — run a broker in the foreground.

With no arguments: node.id 1, PLAINTEXT on localhost:9092, data under ./kbroker-data, metrics at
http://127.0.0.1:9644/metrics (kbroker.http.listeners; only while ``listeners`` is the default).
``kbroker ctl ...`` drives a running broker's control endpoint (see kbroker.control.cli).
``kbroker format ...`` and ``kbroker random-uuid`` are Kafka's ``kafka-storage.sh format`` and
``random-uuid`` (kbroker.storage); ``kbroker cluster N`` runs N nodes on 127.0.0.1 (kbroker.cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from kbroker.config import BrokerConfig, ConfigError, load_properties_file

DEFAULTS = {"node.id": "1", "listeners": "PLAINTEXT://localhost:9092", "log.dirs": "./kbroker-data"}
# The dev start's metrics listener: only while the Kafka listener is the default one too (a start
# that moves the Kafka port, as tools and tests running several brokers do, gets no fixed port).
DEV_HTTP_LISTENERS = "http://127.0.0.1:9644"

log = logging.getLogger("kbroker")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kbroker",
        description="A broker that speaks the Apache Kafka protocol. Runs in the foreground.",
    )
    parser.add_argument("config", nargs="?", help="server.properties file (Kafka's keys)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="key=value",
        help="set a configuration key, overriding the file (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--from-snapshot", metavar="DIR",
                        help="start from a snapshot (POST /snapshot); the log dirs must be empty")
    parser.add_argument("--trace", metavar="FILE",
                        help="write every request and response as JSON lines to FILE (kbroker.trace.file)")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> BrokerConfig:
    props: dict[str, str] = {}
    if args.config:
        props.update(load_properties_file(args.config))
    else:
        props.update(DEFAULTS)
    for item in args.override:
        if "=" not in item:
            raise ConfigError("--override", item, "expected key=value")
        key, value = item.split("=", 1)
        props[key.strip()] = value
    if not args.config and props["listeners"] == DEFAULTS["listeners"]:
        props.setdefault("kbroker.http.listeners", DEV_HTTP_LISTENERS)
    if getattr(args, "trace", None):
        props["kbroker.trace.file"] = args.trace
    return BrokerConfig(props)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:  # kbroker ctl ...: drive a running broker's control endpoint
        from kbroker.control.cli import main as ctl_main

        return ctl_main(argv[1:])
    if argv[:1] and argv[0] in ("topic", "produce", "consume", "group", "completion"):
        from kbroker.opcli import main as operator_main  # the operator commands (rpk-style)

        return operator_main(argv)
    if argv[:1] == ["random-uuid"]:  # kafka-storage.sh random-uuid
        from kbroker.storage import random_uuid

        print(random_uuid())
        return 0
    if argv[:1] == ["format"]:  # kafka-storage.sh format
        return _format(argv[1:])
    if argv[:1] == ["cluster"]:  # N nodes on 127.0.0.1 (kbroker.cluster)
        from kbroker.cluster import main as cluster_main

        return cluster_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"kbroker: {exc}", file=sys.stderr)
        return 2
    if args.from_snapshot:
        from kbroker.control.state import restore

        try:
            restore(args.from_snapshot, config)
        except (ValueError, OSError) as exc:
            print(f"kbroker: --from-snapshot: {exc}", file=sys.stderr)
            return 2
    from kbroker.server import malloc

    malloc.tune()  # large requests' buffers stay in the heap, not faulted in anew each time
    runner: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(_serve(config))
    except KeyboardInterrupt:
        return 0


def _format(argv: list[str]) -> int:
    """``kbroker format``: Kafka's ``kafka-storage.sh format`` (same options)."""
    from kbroker.storage import StorageError, format_storage

    parser = argparse.ArgumentParser(prog="kbroker format",
                                     description="Format the node's log directories (kafka-storage.sh format).")
    parser.add_argument("--config", "-c", required=True, help="the node's server.properties")
    parser.add_argument("--cluster-id", "-t", required=True, help="the cluster id (kbroker random-uuid)")
    parser.add_argument("--ignore-formatted", "-g", action="store_true",
                        help="skip directories already formatted instead of failing")
    parser.add_argument("--override", action="append", default=[], metavar="key=value",
                        help="set a configuration key, overriding the file (repeatable)")
    parser.add_argument("--add-scram", "-S", action="append", default=[], metavar="MECHANISM=[name=...,password=...]",
                        help="a SCRAM credential for the bootstrap metadata (repeatable), as kafka-storage.sh")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--standalone", "-s", action="store_true",
                       help="a dynamic quorum of this one controller")
    group.add_argument("--initial-controllers", "-I", metavar="ID@HOST:PORT:DIRECTORY_ID,...",
                       help="the initial voters of a dynamic quorum")
    group.add_argument("--no-initial-controllers", "-N", action="store_true",
                       help="a controller joining an existing dynamic quorum")
    args = parser.parse_args(argv)
    try:
        config = build_config(argparse.Namespace(config=args.config, override=args.override, trace=None))
        format_storage(config, args.cluster_id, standalone=args.standalone,
                       initial_controllers=args.initial_controllers,
                       no_initial_controllers=args.no_initial_controllers,
                       ignore_formatted=args.ignore_formatted, add_scram=args.add_scram, out=sys.stdout)
    except (ConfigError, StorageError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


async def _serve(config: BrokerConfig) -> int:
    from kbroker.broker import Broker
    from kbroker.errors import StartupError

    broker = Broker(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A node of a quorum may wait at start (for a leader, to catch up, to be unfenced): a signal
    # meanwhile stops it too.
    starting = asyncio.ensure_future(broker.start())
    signalled = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopped while starting")
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await broker.stop()
        return 0
    signalled.cancel()
    try:
        starting.result()
    except StartupError as exc:
        print(f"kbroker: {exc}", file=sys.stderr)
        await broker.stop()
        return 1
    shown = [f"{name}://{host}:{port}" for name, host, port in broker.advertised_endpoints()]
    raft = broker.raft
    if raft is not None and raft.port and broker.config.controller_listeners:
        shown.append(f"{broker.config.controller_listeners[0].listener}://{raft.host}:{raft.port}")
    listeners = ", ".join(shown)
    # The readiness line: tools and tests wait for it.
    print(f"kbroker ready: node {broker.node_id} listening on {listeners}", flush=True)
    if broker.control.http is not None:
        print(f"kbroker control endpoint: {broker.control.http.url}", flush=True)
    if broker.metrics.http is not None:
        print(f"kbroker metrics: {broker.metrics.http.url}/metrics", flush=True)
    if broker.metrics.console is not None and broker.metrics.http is not None:  # (served by http)
        print(f"kbroker console: {broker.metrics.http.url}/", flush=True)
    await stop.wait()
    log.info("shutting down")
    await broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
