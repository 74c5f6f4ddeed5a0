"""Restarting on the same data directory: what the metadata log and the partition logs must bring
back (topics and ids, added partitions, config overrides, deletions, log starts, leader epochs,
offsets) and that appends continue where they stopped."""

from __future__ import annotations

import os

from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.integration.admin_helpers import CP, delete_records, dtp, epoch_end, list_offset, partition_count


def describe_config(wire: Wire, topic: str, key: str) -> tuple[str, int]:
    D = REQUESTS[32]
    resp = wire.call(32, 4, resources=[D.DescribeConfigsResource(resource_type=2, resource_name=topic,
                                                                 configuration_keys=[key])],
                     include_synonyms=False, include_documentation=False)
    (entry,) = resp.results[0].configs
    return entry.value, entry.config_source


def test_everything_comes_back(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        cluster_id, node_id = b.broker.cluster_id, b.broker.node_id
        create_topic(w, "grown", 1, {"retention.ms": "3600000"})
        assert w.call(37, 3, topics=[CP.CreatePartitionsTopic(name="grown", count=4, assignments=None)],
                      timeout_ms=5000, validate_only=False).results[0].error_code == ErrorCode.NONE
        for p in range(4):
            produce(w, "grown", p, 10 + p)
        create_topic(w, "trimmed", 1)
        produce(w, "trimmed", 0, 30)
        assert delete_records(w, 2, "trimmed", {0: 12}) == {0: (ErrorCode.NONE, 12)}
        create_topic(w, "doomed", 2)
        produce(w, "doomed", 1, 3)
        deleted = w.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name="doomed")], timeout_ms=5000)
        assert deleted.responses[0].error_code == ErrorCode.NONE
        ids = {t.name: t.topic_id for t in dtp(w, ["grown", "trimmed"]).topics}
        w.close()

    for _round in range(2):  # twice: a restart must leave the data dir as good as it found it
        with BrokerThread(data_dir=data) as b:
            w = Wire(b.bootstrap_servers)
            assert (b.broker.cluster_id, b.broker.node_id) == (cluster_id, node_id)
            topics = dtp(w, ["grown", "trimmed", "doomed"]).topics
            by_name = {t.name: t for t in topics}
            assert {n: t.topic_id for n, t in by_name.items() if n != "doomed"} == ids
            assert by_name["doomed"].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            assert not any(name.startswith("doomed-") and not name.endswith("-delete")
                           for name in os.listdir(data))
            assert partition_count(w, "grown") == 4
            assert [list_offset(w, "grown", p, -1) for p in range(4)] == [10 + p + _round for p in range(4)]
            assert describe_config(w, "grown", "retention.ms") == ("3600000", 1)  # DYNAMIC_TOPIC_CONFIG
            assert (list_offset(w, "trimmed", 0, -2), list_offset(w, "trimmed", 0, -1)) == (12, 30 + _round)
            assert epoch_end(w, 4, "trimmed", 0, 0) == (ErrorCode.NONE, 0, 30 + _round)
            # Appends continue at the recovered end.
            for p in range(4):
                assert produce(w, "grown", p, 1) == 10 + p + _round
            assert produce(w, "trimmed", 0, 1) == 30 + _round
            w.close()


def test_topic_recreated_under_the_same_name_after_restart(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "again", 1)
        produce(w, "again", 0, 5)
        old_id = dtp(w, ["again"]).topics[0].topic_id
        w.call(20, 6, topics=[REQUESTS[20].DeleteTopicState(name="again")], timeout_ms=5000)
        create_topic(w, "again", 2)
        produce(w, "again", 1, 2)
        w.close()
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        topic = dtp(w, ["again"]).topics[0]
        assert topic.topic_id != old_id
        assert len(topic.partitions) == 2
        assert list_offset(w, "again", 0, -1) == 0  # the old topic's data did not come back
        assert list_offset(w, "again", 1, -1) == 2
        w.close()
