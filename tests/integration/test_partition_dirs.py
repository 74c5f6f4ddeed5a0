"""The directories of a new topic's partitions are made after the controller committed the topic
(the log manager's worker), as Kafka's broker makes its logs when it applies the partition
records; a crash between the commit and the directories leaves nothing lost: the broker makes
them when it opens the replayed partitions at start."""

from __future__ import annotations

import shutil
from pathlib import Path

from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread
from tests.integration.admin_helpers import list_offset


def partition_dirs(data: Path, topic: str) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.is_dir() and p.name.startswith(topic + "-"))


def test_the_directories_exist_once_the_topic_is_created_and_led(tmp_path):
    data = tmp_path / "data"
    with BrokerThread(data_dir=str(data)) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "lazy", 8)
        broker = b.broker
        assert broker is not None and broker.log_manager is not None
        broker.log_manager.drain_worker()  # (what the commit queued has run)
        assert partition_dirs(data, "lazy") == sorted(f"lazy-{p}" for p in range(8))
        for p in range(8):
            assert produce(w, "lazy", p, 3) == 0
            assert list_offset(w, "lazy", p, -1) == 3
        w.close()


def test_a_crash_between_the_commit_and_the_directories_recovers_them_at_start(tmp_path):
    data = tmp_path / "data"
    with BrokerThread(data_dir=str(data)) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "late", 4)
        produce(w, "late", 0, 5)
        w.close()
    # The state a kill -9 after the commit and before the worker made them leaves: the topic's
    # records are in the metadata log, the directories of the partitions never written are not.
    for p in (1, 2, 3):
        shutil.rmtree(data / f"late-{p}")
    with BrokerThread(data_dir=str(data)) as b:
        assert partition_dirs(data, "late") == [f"late-{p}" for p in range(4)]
        w = Wire(b.bootstrap_servers)
        assert list_offset(w, "late", 0, -1) == 5
        for p in (1, 2, 3):
            assert list_offset(w, "late", p, -1) == 0
            assert produce(w, "late", p, 2) == 0
        w.close()
    with BrokerThread(data_dir=str(data)) as b:
        w = Wire(b.bootstrap_servers)
        assert [list_offset(w, "late", p, -1) for p in range(4)] == [5, 2, 2, 2]
        w.close()
