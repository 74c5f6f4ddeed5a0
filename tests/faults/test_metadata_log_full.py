"""A real full disk under the KRaft metadata log (``metadata.log.dir`` on a small tmpfs, as root,
the partition logs elsewhere): the kbroker process halts as Kafka 4.4 does (``Shutdown broker
because the metadata log dir <dir> has failed``, exit status 1) instead of going on without a
durable metadata log, and with space again it starts with every topic it acknowledged."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewTopic
from faults import disk
from faults.broker import BrokerProcess, free_port
from rootcheck import needs_root  # noqa: F401 - autouse fixture


def test_a_full_metadata_log_dir_halts_the_node_and_keeps_what_it_acknowledged(tmp_path):
    with disk.small_disk(tmp_path / "meta-disk", 4, "kbf-test-metafull") as meta_disk:
        meta = meta_disk / "meta"
        log_path = tmp_path / "broker.log"
        broker = BrokerProcess(tmp_path / "data", free_port(), "default", 1, log_path)
        broker.overrides.append(f"metadata.log.dir={meta}")
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        acknowledged: list[str] = []
        refused: list[str] = []
        admin.create_topics([NewTopic("before-full", 1, 1)])["before-full"].result(30)
        acknowledged.append("before-full")
        disk.fill(meta_disk)
        try:
            assert broker.proc is not None
            deadline = time.monotonic() + 120
            batch = 0
            while broker.proc.poll() is None and time.monotonic() < deadline:
                names = [f"t{batch}-{i}" for i in range(200)]
                batch += 1
                futures = admin.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=10,
                                              request_timeout=15)
                for name, fut in futures.items():
                    try:
                        fut.result(20)
                        acknowledged.append(name)
                    except Exception as exc:  # noqa: BLE001 - refused or cut off by the halt
                        refused.append(f"{name}: {exc}")
            assert broker.proc.poll() is not None, "the node still runs with a full metadata log dir"
        finally:
            code = broker.stop()
        assert code == 1
        text = log_path.read_text(errors="replace")
        assert f"Shutdown broker because the metadata log dir {meta} has failed" in text
        assert f"in the metadata log dir {meta}: [Errno 28] No space left on device" in text

        # Space again: the node starts and has every topic it acknowledged.
        (meta_disk / disk.FILLER).unlink()
        broker.start()
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            topics = set(admin.list_topics(timeout=30).topics)
            assert set(acknowledged) <= topics, sorted(set(acknowledged) - topics)[:5]
        finally:
            assert broker.stop() == 0
