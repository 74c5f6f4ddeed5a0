"""The compatibility matrix's Java harness (compat/java) on a kafka-clients version, ready to run.

Built exactly as scripts/install-compat-deps builds it (``mvn compile``, each profile's runtime
jars copied into ``.cache/java-clients/<3.9|4>``, the same source-hash stamp), and only when the
stamp is not current, so the two stay interchangeable. Used by tests and scripts that drive one
scenario of the harness themselves.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAVA_DIR = ROOT / "compat" / "java"
CACHE = ROOT / ".cache" / "java-clients"
JAVA = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


def source_stamp() -> str:
    """sha1 of pom.xml and the sources in path order, first 12 hex digits (as install-compat-deps)."""
    sources = [JAVA_DIR / "pom.xml", *sorted(p for p in (JAVA_DIR / "src").rglob("*") if p.is_file())]
    return hashlib.sha1(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]


def ensure_java_harness(clients: str = "4") -> list[str]:
    """The command running ``kbroker.compat.Scenarios`` on kafka-clients 4.x (``"4"``) or 3.9 (``"3.9"``)."""
    stamp = source_stamp()
    stamp_file = CACHE / ".stamp"
    if not stamp_file.exists() or stamp_file.read_text().strip() != stamp:
        shutil.rmtree(CACHE, ignore_errors=True)
        mvn = ["mvn", "-q", "-B"]
        subprocess.run([*mvn, "compile"], cwd=JAVA_DIR, check=True, timeout=900)
        for profile, out in (("kafka39", "3.9"), ("kafka4", "4")):
            subprocess.run([*mvn, "-P", profile, "dependency:copy-dependencies", "-DincludeScope=runtime",
                            f"-DoutputDirectory={CACHE / out}"], cwd=JAVA_DIR, check=True, timeout=900)
        shutil.copytree(JAVA_DIR / "target" / "classes", CACHE / "classes")
        stamp_file.write_text(stamp + "\n")
    return [*JAVA, "-cp", f"{CACHE / 'classes'}:{CACHE / clients}/*", "kbroker.compat.Scenarios"]
