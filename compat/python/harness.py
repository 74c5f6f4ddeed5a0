"""Shared driver for the Python-hosted scenario programs of the compatibility matrix.

Each program defines SCENARIOS (name -> function(ctx)) and calls main(). Usage:
    python <program>.py BOOTSTRAP SCENARIO [SCENARIO...]     run, one JSON line per scenario
    python <program>.py --list                               print the scenario names
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
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


# The line a program writes on stderr when a scenario starts: SCENARIO_MARK + the scenario's name
# (compat/matrix_runs.py reads it).
SCENARIO_MARK = "--- scenario "
# Lines of the client's debug log kept for the scenario running: its first HEAD_LINES (how the group
# formed) and its last TAIL_LINES (how it ended); the ones between are counted, not kept.
HEAD_LINES = 10000
TAIL_LINES = 10000


class ScenarioLog(logging.Handler):
    """The client library's log of the scenario running, kept in memory and written to stderr only
    when the scenario fails (or the program is ended by SIGTERM, as compat/run_matrix.py ends a
    scenario that timed out), so that a passing scenario costs a formatted line in memory (at most
    HEAD_LINES + TAIL_LINES of them) and nothing on stderr. compat/run_matrix.py writes a failed scenario's stderr into its out-dir."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.debug: tuple[str, ...] = ()
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.dropped = 0
        self.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(threadName)s %(name)s %(levelname)s %(message)s",
                                            "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if len(self.head) < HEAD_LINES:
                self.head.append(line)
            else:
                if len(self.tail) == TAIL_LINES:
                    self.dropped += 1
                self.tail.append(line)
        except Exception:  # noqa: BLE001 - a log line that cannot be formatted is not the scenario's failure
            self.handleError(record)

    def start(self, scenario: str) -> None:
        """A new scenario: forget the last one's lines, and mark its start on stderr (one line a
        scenario: compat/run_matrix.py cuts a program's stderr into the scenarios' logs there)."""
        self.head = [f"--- client log (DEBUG for {', '.join(self.debug) or 'none'}, INFO for the rest)"]
        self.tail.clear()
        self.dropped = 0
        sys.stderr.write(f"{SCENARIO_MARK}{scenario}\n")
        sys.stderr.flush()

    def dump(self, why: str) -> None:
        head, tail, dropped = list(self.head), list(self.tail), self.dropped
        gap = [f"--- {dropped} lines left out"] if dropped else []
        sys.stderr.write("\n".join([*head, *gap, *tail, f"--- end of client log ({why}, "
                                     f"{len(head) + len(tail)} lines)", ""]))
        sys.stderr.flush()

    def install(self, debug: tuple[str, ...]) -> None:
        """DEBUG for the loggers ``debug`` (the client's group coordinator), INFO for the rest."""
        self.debug = debug
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(self)
        for name in debug:
            logging.getLogger(name).setLevel(logging.DEBUG)


def main(client: str, version: str, scenarios: dict[str, Callable[[Ctx], None]],
         debug_loggers: tuple[str, ...] = ()) -> int:
    """Run the scenarios named on the command line. ``debug_loggers``: the client library's loggers
    kept at DEBUG in a failed scenario's log (ScenarioLog); the others at INFO."""
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
    scenario_log = ScenarioLog()
    scenario_log.install(debug_loggers)

    def ended(signum: int, frame: object) -> None:
        try:
            scenario_log.dump("ended by SIGTERM")
        finally:  # even if stderr was busy (a write it interrupted)
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, ended)
    for name in names:
        scenario_log.start(name)
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
                scenario_log.dump("failed")
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
        rec["seconds"] = round(time.monotonic() - t0, 3)
        print(json.dumps(rec), flush=True)
    return 0
