"""The kbroker image's entrypoint: configuration from the environment, then ``exec kbroker``.

Every ``KBROKER_CFG_<NAME>`` variable becomes ``--override <key>=<value>``, the key being NAME in
lower case with ``_`` read as ``.`` and ``__`` as ``_`` (the convention of the common Kafka images'
``KAFKA_CFG_*``)::

    KBROKER_CFG_ADVERTISED_LISTENERS=PLAINTEXT://broker1:9092  ->  advertised.listeners=...
    KBROKER_CFG_CONTROLLER_QUORUM_VOTERS=1@k1:9093,...          ->  controller.quorum.voters=...
    KBROKER_CFG_KBROKER_HTTP_LISTENERS=http://0.0.0.0:9644      ->  kbroker.http.listeners=...

Other variables:

- ``KBROKER_CONFIG``: a server.properties file (e.g. mounted) read first; the overrides win.
  Without it the overrides are the whole configuration (the image sets node.id, listeners,
  advertised.listeners and log.dirs).
- ``KBROKER_CLUSTER_ID``: format the log directories with this cluster id before starting
  (``kbroker format --ignore-formatted``: a node already formatted starts as it is), as a KRaft
  cluster's nodes need (Kafka's ``kafka-storage.sh format``).

Arguments: none or options (``--log-level DEBUG``) start the broker with them; a first argument that
is not an option is a kbroker command run as it is (``topic list -b host:9092``, ``random-uuid``).
``--healthcheck`` exits 0 when the first listener accepts a TCP connection (the image's HEALTHCHECK).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

PREFIX = "KBROKER_CFG_"


class EnvError(ValueError):
    pass


def key_of(variable: str) -> str:
    """``KBROKER_CFG_LOG_DIRS`` -> ``log.dirs``; ``__`` stands for an underscore in the key."""
    name = variable[len(PREFIX):]
    if not name or name.startswith("_") or name.endswith("_") or "___" in name:
        raise EnvError(f"{variable}: cannot be read as a configuration key")
    return name.lower().replace("__", "\0").replace("_", ".").replace("\0", "_")


def overrides(env: Mapping[str, str]) -> list[str]:
    """The ``--override key=value`` arguments of the ``KBROKER_CFG_*`` variables, sorted by key."""
    props: dict[str, str] = {}
    for variable, value in env.items():
        if variable.startswith(PREFIX):
            props[key_of(variable)] = value
    args: list[str] = []
    for key in sorted(props):
        args += ["--override", f"{key}={props[key]}"]
    return args


def commands(env: Mapping[str, str], argv: Sequence[str]) -> list[list[str]]:
    """The kbroker command lines to run, in order; the last one replaces this process."""
    if argv and not argv[0].startswith("-"):
        return [["kbroker", *argv]]
    config = env.get("KBROKER_CONFIG") or "/dev/null"
    over = overrides(env)
    start = ["kbroker", config, *over, *argv]
    cluster_id = env.get("KBROKER_CLUSTER_ID", "").strip()
    if not cluster_id:
        return [start]
    fmt = ["kbroker", "format", "--config", config, "--cluster-id", cluster_id, "--ignore-formatted", *over]
    return [fmt, start]


def first_listener_port(env: Mapping[str, str]) -> tuple[str, int]:
    listeners = env.get("KBROKER_CFG_LISTENERS", "PLAINTEXT://0.0.0.0:9092")
    first = listeners.split(",")[0].strip()
    hostport = first.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise EnvError(f"KBROKER_CFG_LISTENERS: no port in {first!r}") from None


def healthcheck(env: Mapping[str, str]) -> int:
    host, port = first_listener_port(env)
    try:
        with socket.create_connection((host, port), timeout=3):
            return 0
    except OSError as exc:
        print(f"kbroker healthcheck: {host}:{port}: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        if argv[:1] == ["--healthcheck"]:
            return healthcheck(env)
        steps = commands(env, argv)
    except EnvError as exc:
        print(f"kbroker entrypoint: {exc}", file=sys.stderr)
        return 2
    for step in steps[:-1]:
        code = subprocess.call(step)
        if code != 0:
            print(f"kbroker entrypoint: {' '.join(step[:2])} exited with {code}", file=sys.stderr)
            return code
    os.execvp(steps[-1][0], steps[-1])
    return 127  # not reached: execvp replaces the process or raises


if __name__ == "__main__":
    sys.exit(main())
