"""``kbroker [server.properties] [--override key=value]...`` — run a broker in the foreground.

With no arguments: node.id 1, PLAINTEXT on localhost:9092, data under ./kbroker-data, metrics at
http://127.0.0.1:9644/metrics (kbroker.http.listeners; only while ``listeners`` is the default).
``kbroker ctl ...`` drives a running broker's control endpoint (see kbroker.control.cli).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

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
    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(_serve(config))
    except KeyboardInterrupt:
        return 0


async def _serve(config: BrokerConfig) -> int:
    from kbroker.broker import Broker, StartupError

    broker = Broker(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await broker.start()
    except StartupError as exc:
        print(f"kbroker: {exc}", file=sys.stderr)
        await broker.stop()
        return 1
    listeners = ", ".join(f"{name}://{host}:{port}" for name, host, port in broker.advertised_endpoints())
    # The readiness line: tools and tests wait for it.
    print(f"kbroker ready: node {broker.node_id} listening on {listeners}", flush=True)
    if broker.control.http is not None:
        print(f"kbroker control endpoint: {broker.control.http.url}", flush=True)
    if broker.metrics.http is not None:
        print(f"kbroker metrics: {broker.metrics.http.url}/metrics", flush=True)
    if broker.metrics.console is not None:
        print(f"kbroker console: {broker.metrics.http.url}/", flush=True)
    await stop.wait()
    log.info("shutting down")
    await broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
