"""``python -m kbroker`` as a process: readiness line, SIGTERM, clean restarts, bad config,
old-style server.properties."""

from __future__ import annotations

import signal
import socket

import pytest

from kbroker_protocol.messages import REQUESTS
from tests.integration.cli_helpers import BrokerProcess, base_args, call, end_offset, produce


def test_readiness_line_and_metadata(tmp_path):
    proc = BrokerProcess(base_args(tmp_path / "data"), tmp_path)
    try:
        node, host, port = proc.wait_ready().groups()
        resp = call(host, int(port), 3, 12, topics=None, allow_auto_topic_creation=False,
                    include_topic_authorized_operations=False)
        assert [(b.node_id, b.host, b.port) for b in resp.brokers] == [(int(node), host, int(port))]
    finally:
        assert proc.stop() == 0


def test_sigterm_exits_cleanly_and_restart_skips_recovery(tmp_path):
    data = tmp_path / "data"
    proc = BrokerProcess(base_args(data), tmp_path)
    _node, host, port = proc.wait_ready().groups()
    produce(host, int(port), "durable", 25)
    assert proc.stop(signal.SIGTERM) == 0
    partition_dir = data / "durable-0"
    assert (partition_dir / ".kafka_cleanshutdown").exists()
    checkpoint = partition_dir / "log-state.checkpoint"
    before = checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()

    proc = BrokerProcess(base_args(data), tmp_path)
    try:
        _node, host, port = proc.wait_ready().groups()
        assert end_offset(host, int(port), "durable") == 25
        # A clean start consumes the marker and neither scans nor rewrites the log's checkpoint.
        assert not (partition_dir / ".kafka_cleanshutdown").exists()
        assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()) == before
        produce(host, int(port), "durable", 5)
    finally:
        assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
    # After a kill there is no marker, and the next start recovers (and rewrites the checkpoint).
    assert not (partition_dir / ".kafka_cleanshutdown").exists()
    before = checkpoint.read_bytes()
    proc = BrokerProcess(base_args(data), tmp_path)
    try:
        _node, host, port = proc.wait_ready().groups()
        assert end_offset(host, int(port), "durable") == 30
        assert checkpoint.read_bytes() != before
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("override,key", [
    ("num.partitions=lots", "num.partitions"),
    ("log.cleanup.policy=shred", "log.cleanup.policy"),
    ("message.max.bytes=-4", "message.max.bytes"),
    ("listeners=nonsense", "listeners"),
])
def test_invalid_value_exits_nonzero_naming_the_key(tmp_path, override, key):
    proc = BrokerProcess([*base_args(tmp_path / "data"), "--override", override], tmp_path)
    code = proc.proc.wait(60)
    stdout = proc.proc.stdout.read()
    proc.stop()
    assert code != 0
    assert key in proc.stderr()
    assert b"kbroker ready" not in stdout


def test_old_style_server_properties(tmp_path):
    data = tmp_path / "kafka-logs"
    props = tmp_path / "server.properties"
    props.write_text(
        "# A ZooKeeper-era config\n"
        "broker.id=3\n"
        "listeners=PLAINTEXT://127.0.0.1:0\n"
        f"log.dirs={data}\n"
        "num.partitions=2\n"
        "zookeeper.connect=localhost:2181\n"
        "zookeeper.connection.timeout.ms=18000\n"
        "log.retention.hours=168\n"
    )
    proc = BrokerProcess([str(props)], tmp_path)
    try:
        node, host, port = proc.wait_ready().groups()
        assert node == "3"  # broker.id is the node id
        produce(host, int(port), "legacy", 1)
        resp = call(host, int(port), 3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name="legacy")],
                    allow_auto_topic_creation=False, include_topic_authorized_operations=False)
        assert len(resp.topics[0].partitions) == 2  # num.partitions from the file
    finally:
        assert proc.stop() == 0
    assert "zookeeper.connect" in proc.stderr()
    assert "WARNING" in proc.stderr()


def test_port_in_use_exits_nonzero(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = BrokerProcess(["--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                              "--override", f"log.dirs={tmp_path / 'data'}"], tmp_path)
        code = proc.proc.wait(60)
        proc.stop()
    assert code != 0
    assert str(port) in proc.stderr()
