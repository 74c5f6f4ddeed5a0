"""Parsing of kafka-metadata-quorum output shared by the quorum tool tests (moved from test_kafka_quorum_tool)."""

from __future__ import annotations


def fields(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out
