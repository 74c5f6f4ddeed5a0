#!/usr/bin/env python3
"""Side by side: what kbroker and Apache Kafka 4.4 advertise in ApiVersions.

Starts kbroker (in-process, on an ephemeral port) and the reference Apache Kafka 4.4.0
(scripts/reference_kafka.py: single-node KRaft, fetched from Maven Central) with the same test
settings, sends each the same ApiVersions v4 request, and prints every API key whose advertised
version range differs (or that only one of them advertises), then every supported and finalized
feature that differs. Keys and features that agree are counted, not listed.

    .venv/bin/python scripts/compare_api_versions.py [--kafka HOST:PORT] [--kbroker HOST:PORT]
                                                     [--override key=value]... [--check]

--kafka / --kbroker use a broker already running instead of starting one; --override passes a
setting to both brokers started here (e.g. unstable.api.versions.enable=true); --check exits 1
when anything differs. Starting Kafka takes a JVM (about a minute and a CPU on a small machine).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from kbroker_protocol.messages.api_versions import ApiVersionsRequest  # noqa: E402

VERSION = 4


@dataclass
class Advertised:
    apis: dict[int, tuple[int, int]]
    supported: dict[str, tuple[int, int]]
    finalized: dict[str, int]


def api_versions(bootstrap: str, timeout: float = 30.0) -> Advertised:
    host, port = bootstrap.rsplit(":", 1)
    header = RequestHeader(request_api_key=18, request_api_version=VERSION, correlation_id=1,
                           client_id="compare-api-versions")
    body = ApiVersionsRequest(client_software_name="compare-api-versions", client_software_version="1.0")
    payload = encode_request(header, body)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        _, resp = decode_response(_recv(sock, size), 18, VERSION)
    if resp.error_code != 0:
        raise RuntimeError(f"{bootstrap} answered ApiVersions with error {resp.error_code}")
    return Advertised(
        apis={k.api_key: (k.min_version, k.max_version) for k in resp.api_keys},
        supported={f.name: (f.min_version, f.max_version) for f in resp.supported_features},
        finalized={f.name: f.max_version_level for f in resp.finalized_features},
    )


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def api_name(key: int) -> str:
    cls = REQUESTS.get(key)
    return cls.__name__.removesuffix("Request") if cls is not None else f"api{key}"


def _range(r: tuple[int, int] | None) -> str:
    return "-" if r is None else f"v{r[0]}-{r[1]}"


def _level_range(r: tuple[int, int] | None) -> str:
    return "-" if r is None else f"{r[0]}-{r[1]}"


def differences(kb: Advertised, kafka: Advertised) -> tuple[list[str], int]:
    """Lines describing every difference, and how many API keys agree."""
    lines: list[str] = []
    same = 0
    for key in sorted(set(kb.apis) | set(kafka.apis)):
        a, b = kb.apis.get(key), kafka.apis.get(key)
        if a == b:
            same += 1
            continue
        lines.append(f"  {key:>3} {api_name(key):<38} kbroker {_range(a):<8} kafka {_range(b)}")
    feature_lines = []
    for name in sorted(set(kb.supported) | set(kafka.supported)):
        a, b = kb.supported.get(name), kafka.supported.get(name)
        if a != b:
            feature_lines.append(f"  supported {name:<34} kbroker {_level_range(a):<8} kafka {_level_range(b)}")
    for name in sorted(set(kb.finalized) | set(kafka.finalized)):
        a, b = kb.finalized.get(name), kafka.finalized.get(name)
        if a != b:
            feature_lines.append(f"  finalized {name:<34} kbroker {'-' if a is None else a:<8} "
                                 f"kafka {'-' if b is None else b}")
    if feature_lines:
        lines.append("features:")
        lines += feature_lines
    return lines, same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", help="bootstrap of a running reference Kafka (default: start one)")
    ap.add_argument("--kbroker", help="bootstrap of a running kbroker (default: start one in-process)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--check", action="store_true", help="exit 1 when anything differs")
    args = ap.parse_args(argv)
    overrides = dict(o.split("=", 1) for o in args.override)

    from reference_kafka import KAFKA_VERSION, TEST_SETTINGS, start_reference_kafka

    stack = []
    try:
        if args.kbroker:
            kb_bootstrap = args.kbroker
        else:
            from kbroker.testing import BrokerThread

            kb = BrokerThread(config={**TEST_SETTINGS, **overrides}).start()
            stack.append(kb.stop)
            kb_bootstrap = kb.bootstrap_servers
        if args.kafka:
            kafka_bootstrap = args.kafka
        else:
            print(f"starting the reference Apache Kafka {KAFKA_VERSION} ...", file=sys.stderr, flush=True)
            ref = start_reference_kafka(overrides=overrides)
            stack.append(ref.stop)
            kafka_bootstrap = ref.bootstrap
        kb_adv, kafka_adv = api_versions(kb_bootstrap), api_versions(kafka_bootstrap)
    finally:
        for stop in reversed(stack):
            stop()

    lines, same = differences(kb_adv, kafka_adv)
    print(f"ApiVersions v{VERSION}: kbroker {kb_bootstrap} vs Apache Kafka {KAFKA_VERSION} {kafka_bootstrap}")
    print(f"API keys advertised: kbroker {len(kb_adv.apis)}, Kafka {len(kafka_adv.apis)}; "
          f"same range: {same}")
    if lines:
        print("differences ('-' = not advertised):")
        print("\n".join(lines))
    else:
        print("no differences")
    return 1 if args.check and lines else 0


if __name__ == "__main__":
    sys.exit(main())
