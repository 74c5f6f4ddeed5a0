"""Kafka's own tools (run by scripts/reference_kafka.py) and their client properties files, shared by the security tool tests (moved from test_kafka_tools_security)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import reference_kafka


def tool(main_class: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    res = reference_kafka.run_tool("org.apache.kafka.tools." + main_class, list(args))
    if ok:
        assert res.returncode == 0, f"{main_class} {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def client_properties(path: Path, **props: str) -> str:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return str(path)
