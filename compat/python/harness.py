"""Shared driver for the Python-hosted scenario programs of the compatibility matrix.

Each program defines SCENARIOS (name -> function(ctx)) and calls main(). Usage:
    python <program>.py BOOTSTRAP SCENARIO [SCENARIO...]     run, one JSON line per scenario
    python <program>.py --list                               print the scenario names
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Apache Kafka's default message.max.bytes: the largest record batch the broker accepts.
MESSAGE_MAX_BYTES = 1048588
# A one-record batch of value V (null key, no headers, 3-byte varints) takes V + 72 bytes: the
# 61-byte batch header, the record's length (3), attributes, timestamp and offset deltas and key
# length (1 each), value length (3) and header count (1). So AT_LIMIT_VALUE makes a batch of
# exactly message.max.bytes (accepted), BEYOND_LIMIT_VALUE one byte more (MESSAGE_TOO_LARGE).
AT_LIMIT_VALUE = MESSAGE_MAX_BYTES - 72
BEYOND_LIMIT_VALUE = MESSAGE_MAX_BYTES - 71
CLIENT_MAX_REQUEST = 2 * 1024 * 1024


def replication_factor() -> int:
    """The replication factor of the topics the scenarios create: COMPAT_REPLICATION_FACTOR, set by
    compat/run_matrix.py (1 against one broker, 3 against a three-broker cluster); default 1."""
    raw = os.environ.get("COMPAT_REPLICATION_FACTOR", "1")
    try:
        rf = int(raw)
    except ValueError:
        raise SystemExit(f"COMPAT_REPLICATION_FACTOR must be a positive integer, not {raw!r}") from None
    if rf < 1:
        raise SystemExit(f"COMPAT_REPLICATION_FACTOR must be a positive integer, not {raw!r}")
    return rf


def security() -> dict[str, str]:
    """How to connect, from the environment compat/run_matrix.py sets for its SASL_SSL column
    (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_MECHANISM, COMPAT_SASL_USERNAME, COMPAT_SASL_PASSWORD,
    COMPAT_SSL_CA): keys protocol, mechanism, username, password, ca; empty for PLAINTEXT."""
    protocol = os.environ.get("COMPAT_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return {}
    if protocol != "SASL_SSL":
        raise SystemExit(f"COMPAT_SECURITY_PROTOCOL: only PLAINTEXT and SASL_SSL are set up, not {protocol!r}")
    return {"protocol": protocol, "mechanism": os.environ["COMPAT_SASL_MECHANISM"],
            "username": os.environ["COMPAT_SASL_USERNAME"], "password": os.environ["COMPAT_SASL_PASSWORD"],
            "ca": os.environ["COMPAT_SSL_CA"]}


def librdkafka_security() -> dict[str, str]:
    """security() as librdkafka configuration (confluent-kafka, kcat's -X)."""
    sec = security()
    if not sec:
        return {}
    return {"security.protocol": sec["protocol"], "sasl.mechanisms": sec["mechanism"],
            "sasl.username": sec["username"], "sasl.password": sec["password"], "ssl.ca.location": sec["ca"]}


def kafka_python_security() -> dict[str, str]:
    """security() as kafka-python keyword arguments (its clients and admin client)."""
    sec = security()
    if not sec:
        return {}
    return {"security_protocol": sec["protocol"], "sasl_mechanism": sec["mechanism"],
            "sasl_plain_username": sec["username"], "sasl_plain_password": sec["password"],
            "ssl_cafile": sec["ca"]}


class ScenarioError(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ScenarioError(msg)


def wait_until(fn: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(interval)  # polling interval, bounded by the deadline
    raise ScenarioError(f"timed out waiting for {what}")


@dataclass
class Ctx:
    bootstrap: str  # host:port[,host:port...]: every client here takes such a list
    client: str
    scenario: str
    rf: int = 1  # replication factor of the topics a scenario creates

    def topic(self, suffix: str = "") -> str:
        return f"compat-{self.client}-{self.scenario}{suffix}-{uuid.uuid4().hex[:8]}".replace("_", "-")

    def group(self) -> str:
        return f"g-{self.client}-{self.scenario}-{uuid.uuid4().hex[:8]}"


def main(client: str, version: str, scenarios: dict[str, Callable[[Ctx], None]]) -> int:
    args = sys.argv[1:]
    if args[:1] == ["--list"]:
        print("\n".join(scenarios))
        return 0
    if args[:1] == ["--version"]:
        print(version)
        return 0
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, names = args[0], args[1:]
    rf = replication_factor()
    for name in names:
        t0 = time.monotonic()
        rec = {"client": client, "client_version": version, "scenario": name, "ok": False, "error": ""}
        fn = scenarios.get(name)
        if fn is None:
            rec["error"] = "unsupported scenario"
            rec["supported"] = False
        else:
            try:
                fn(Ctx(bootstrap, client, name, rf))
                rec["ok"] = True
            except Exception as e:  # noqa: BLE001 - any failure is the scenario's result
                rec["error"] = f"{type(e).__name__}: {e}"[:500]
                traceback.print_exc(file=sys.stderr)
        rec["seconds"] = round(time.monotonic() - t0, 3)
        print(json.dumps(rec), flush=True)
    return 0
