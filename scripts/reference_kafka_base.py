"""The basics scripts/reference_kafka.py and scripts/reference_kafka_jvm.py share: Apache Kafka's version,
the cache its jars are fetched into (``ensure_kafka``), the log line and ``free_port``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_VERSION = os.environ.get("REFERENCE_KAFKA_VERSION", "4.4.0")
POM = ROOT / "scripts" / "reference-kafka" / "pom.xml"
CACHE = ROOT / ".cache" / f"kafka-{KAFKA_VERSION}"
LIBS = CACHE / "libs"


def log(msg: str) -> None:
    print(f"[reference-kafka] {msg}", file=sys.stderr, flush=True)


def ensure_kafka(quiet: bool = True) -> Path:
    """Resolve Kafka's jars into the cache (idempotent). Returns the libs dir."""
    stamp = CACHE / ".complete"
    want = POM.read_bytes()
    if stamp.exists() and stamp.read_bytes() == want and any(LIBS.glob("kafka_2.13-*.jar")):
        return LIBS
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: Maven is needed to fetch Apache Kafka")
    if LIBS.exists():
        shutil.rmtree(LIBS)
    LIBS.mkdir(parents=True)
    cmd = ["mvn", "-B", "-f", str(POM), f"-Dkafka.version={KAFKA_VERSION}",
           "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={LIBS}"]
    if quiet:
        cmd.insert(1, "-q")
    log(f"fetching Apache Kafka {KAFKA_VERSION} with Maven")
    subprocess.run(cmd, check=True, cwd=ROOT)
    stamp.write_bytes(want)
    return LIBS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
