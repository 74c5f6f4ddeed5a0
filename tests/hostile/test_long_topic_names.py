"""A topic with the longest legal name (249 characters) can be deleted, and the broker starts again
afterwards. Found by scripts/fuzz_sequences.py: the deleted partition's directory was renamed to
``<name>-<partition>.<32 hex>-delete``, past the 255-character limit of a file name, so the
deletion (already in the metadata log) raised in the handler and again at every replay: the broker
never started again. Kafka cuts the topic part of that name (LocalLog.logDeleteDirName)."""

from __future__ import annotations

import logging
import os

from wire import Wire, create_topic, produce

from kbroker.log.partition_log import delete_dir_name
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
LONGEST = "t" * 249


def test_delete_dir_names_stay_within_a_file_name():
    for partition in (0, 7, 2_147_483_647):
        name = delete_dir_name(f"{LONGEST}-{partition}")
        assert len(name) <= 255 and name.endswith("-delete") and f"-{partition}." in name
    short = delete_dir_name("orders-3")
    assert short.startswith("orders-3.") and len(short) == len("orders-3.") + 32 + len("-delete")


def test_a_topic_with_the_longest_name_is_deleted_and_the_broker_restarts(tmp_path, caplog):
    data = str(tmp_path / "data")
    with caplog.at_level(logging.INFO), BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, LONGEST, 2)
        produce(w, LONGEST, 1, 3)
        resp = w.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name=LONGEST)], timeout_ms=5000)
        assert resp.responses[0].error_code == E.NONE
        create_topic(w, "kept", 1)
        w.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        meta = w.call(3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
        assert [t.name for t in meta.topics] == ["kept"]
        create_topic(w, LONGEST, 1)  # the name can be used again
        assert produce(w, LONGEST, 0, 1) == 0
        w.close()
    assert not [name for name in os.listdir(data) if name.endswith("-delete")]
