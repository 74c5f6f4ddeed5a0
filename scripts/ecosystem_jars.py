#!/usr/bin/env python3
"""The Kafka ecosystem's jars (Connect worker, FileStream and MirrorMaker 2 connectors, Kafka Streams)
for tests/ecosystem, fetched from Maven Central with Maven into `.cache/ecosystem-<version>/libs`.

Command line:  scripts/ecosystem_jars.py            prints the libs dir (fetching it first if needed)
As a module:   ecosystem_jars.java_command("org.apache.kafka.connect.cli.ConnectDistributed", [props])
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "scripts" / "ecosystem" / "pom.xml"
CACHE = ROOT / ".cache" / "ecosystem-4.4.0"
LIBS = CACHE / "libs"
SHIM_SRC = ROOT / "scripts" / "ecosystem" / "shim"
SHIM = CACHE / "shim"

CONNECT_DISTRIBUTED = "org.apache.kafka.connect.cli.ConnectDistributed"
MIRROR_MAKER = "org.apache.kafka.connect.mirror.MirrorMaker"


def _sources() -> list[Path]:
    return sorted(SHIM_SRC.rglob("*.java"))


def ensure_jars() -> Path:
    """Resolve the jars into the cache and compile the shim (idempotent: redone when the pom or the shim
    changes). Returns the libs dir.

    connect-file and connect-mirror 4.4.0 are not on Maven Central, so the pom takes their 4.3.1
    releases; Kafka 4.4 moved two classes they use (AppInfoParser, Exit) to
    org.apache.kafka.common.utils.internals, and the shim forwards them (compat/FINDINGS.md).
    """
    stamp = CACHE / ".complete"
    want = POM.read_bytes() + b"".join(p.read_bytes() for p in _sources())
    if stamp.exists() and stamp.read_bytes() == want and any(LIBS.glob("connect-runtime-*.jar")):
        return LIBS
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: Maven is needed to fetch Kafka Connect and Kafka Streams")
    if LIBS.exists():
        shutil.rmtree(LIBS)
    LIBS.mkdir(parents=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime",
                    f"-DoutputDirectory={LIBS}"], check=True, cwd=ROOT)
    if SHIM.exists():
        shutil.rmtree(SHIM)
    SHIM.mkdir(parents=True)
    subprocess.run(["javac", "-nowarn", "-d", str(SHIM), "-cp", f"{LIBS}/*", *map(str, _sources())], check=True)
    stamp.write_bytes(want)
    return LIBS


def java_command(main_class: str, args: list[str], heap: str = "384m", log4j: Path | None = None,
                 extra_classpath: list[Path] | None = None) -> list[str]:
    """A JVM command running ``main_class`` with the ecosystem jars (plus ``extra_classpath``)."""
    libs = ensure_jars()
    cp = [str(p) for p in extra_classpath or []] + [str(SHIM), f"{libs}/*"]
    cmd = ["java", f"-Xmx{heap}", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           "-Djava.awt.headless=true"]
    if log4j is not None:
        cmd.append(f"-Dlog4j2.configurationFile={log4j}")
    return cmd + ["-cp", ":".join(cp), main_class, *args]


def log4j_file(path: Path, log: Path, level: str = "INFO") -> Path:
    """Write a log4j2 configuration sending everything to ``log``; returns ``path``."""
    path.write_text(
        "status = warn\n"
        "appender.file.type = File\nappender.file.name = FILE\n"
        f"appender.file.fileName = {log}\n"
        "appender.file.layout.type = PatternLayout\nappender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        f"rootLogger.level = {level}\nrootLogger.appenderRef.file.ref = FILE\n")
    return path


if __name__ == "__main__":
    print(ensure_jars())
    sys.exit(0)
