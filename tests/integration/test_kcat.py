"""kcat (librdkafka) against a broker started by ``python -m kbroker`` (the CLI, on uvloop when
installed): -L metadata, -P produce from stdin, -C consume, with keys, headers and compression."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

READY = re.compile(r"kbroker ready: node (\d+) listening on PLAINTEXT://([^:\s]+):(\d+)")
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory):
    assert KCAT, "kcat is not installed (scripts/install-test-tools installs it)"
    tmp = tmp_path_factory.mktemp("kcat")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kbroker", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
         "--override", f"log.dirs={tmp / 'data'}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + 60
    match = None
    while match is None and time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=0.2):
            out += os.read(proc.stdout.fileno(), 4096)
            match = READY.search(out.decode(errors="replace"))
    assert match, f"broker did not start: {out!r}"
    yield f"{match.group(2)}:{match.group(3)}", int(match.group(1))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    proc.stdout.close()


def kcat(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.fixture
def topic() -> str:
    return f"kcat-{uuid.uuid4().hex[:8]}"


def test_list_metadata(cli_broker, topic):
    bootstrap, node = cli_broker
    kcat("-b", bootstrap, "-P", "-t", topic, stdin=b"x\n")
    meta = json.loads(kcat("-b", bootstrap, "-L", "-J"))
    assert [b["id"] for b in meta["brokers"]] == [node]
    assert meta["brokers"][0]["name"] == bootstrap
    topics = {t["topic"]: t for t in meta["topics"]}
    assert [p["leader"] for p in topics[topic]["partitions"]] == [node]
    text = kcat("-b", bootstrap, "-L", "-t", topic).decode()
    assert f'topic "{topic}" with 1 partitions' in text


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume(cli_broker, topic, codec):
    bootstrap, _ = cli_broker
    lines = [f"key{i % 4}:value {i}" for i in range(500)]
    kcat("-b", bootstrap, "-P", "-t", topic, "-K", ":", "-z", codec, "-H", "origin=kcat",
         stdin="\n".join(lines).encode() + b"\n")
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o|%k|%s|%h\n")
    rows = [line.split("|") for line in out.decode().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(500))
    assert [f"{r[1]}:{r[2]}" for r in rows] == lines
    assert {r[3] for r in rows} == {"origin=kcat"}


def test_consume_from_offset_and_count(cli_broker, topic):
    bootstrap, _ = cli_broker
    kcat("-b", bootstrap, "-P", "-t", topic, stdin=b"".join(b"m%d\n" % i for i in range(20)))
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "15", "-e", "-f", "%s\n")
    assert out.decode().split() == [f"m{i}" for i in range(15, 20)]
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "-3", "-e", "-f", "%s\n")
    assert out.decode().split() == ["m17", "m18", "m19"]
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-c", "4", "-f", "%s\n")
    assert out.decode().split() == ["m0", "m1", "m2", "m3"]


def test_large_consume_goes_through_sendfile_intact(cli_broker, topic):
    """Enough data that fetch responses leave by sendfile (slices of 32 KiB and more)."""
    bootstrap, _ = cli_broker
    lines = [(f"{i:08d}-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 28)[:1000] for i in range(20000)]
    kcat("-b", bootstrap, "-P", "-t", topic, "-X", "linger.ms=50", stdin="\n".join(lines).encode() + b"\n")
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-X", "check.crcs=true",
               "-X", "fetch.max.bytes=4000000", "-f", "%s\n")
    assert out.decode().splitlines() == lines
