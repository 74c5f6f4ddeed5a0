"""Group-level config overrides (IncrementalAlterConfigs on GROUP resources), kbroker against Apache
Kafka 4.4 itself (scripts/reference_kafka.py, one JVM for the module): the same requests, the same
answers. A consumer group's consumer.heartbeat.interval.ms, a streams group's
streams.heartbeat.interval.ms, streams.task.offset.interval.ms and streams.acceptable.recovery.lag are
what their heartbeats return (a change from the next heartbeat on), DescribeConfigs shows the
overrides, and invalid ones are refused with the same errors. (The session timeouts need a clock:
tests/integration/test_group_config_overrides.py and tests/streams/test_streams_group_configs.py.)"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest
import reference_kafka
from group_config_helpers import alter_group_configs, describe_group_configs, wait_group_configs
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest

pytestmark = pytest.mark.slow  # the reference Apache Kafka (a JVM)

CT = REQUESTS[19]
Topology = StreamsGroupHeartbeatRequest.Topology


def _describe(w: Wire, group: str, names: list[str]) -> list[tuple[str, str | None, int]]:
    return sorted((name, value, source) for name, (value, source) in describe_group_configs(w, group, names).items())


def _set(w: Wire, group: str, configs: dict[str, str | None]) -> tuple[int, str | None]:
    """Alter, then wait until DescribeConfigs shows the overrides (the broker's metadata has them)."""
    result = alter_group_configs(w, group, configs)
    wait_group_configs(w, group, configs, timeout=60)
    return result


def _ready(call):
    """The answer of ``call`` once the group's coordinator is up (the first request of a group finds
    ``__consumer_offsets`` being created and loaded: COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE,
    NOT_COORDINATOR, retried as clients do)."""
    seen = {}

    def answered() -> bool:
        seen["r"] = call()
        return seen["r"].error_code not in (14, 15, 16)
    wait_until(answered, timeout=60, message="the group coordinator")
    return seen["r"]


def _consumer_hb(w: Wire, group: str, member: str, epoch: int, topic: str):
    return _ready(lambda: w.call(ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, rebalance_timeout_ms=30000 if epoch == 0 else -1,
        subscribed_topic_names=[topic] if epoch == 0 else None, topic_partitions=[] if epoch == 0 else None), 1))


def _streams_join(w: Wire, group: str, topic: str):
    topology = Topology(epoch=0, subtopologies=[Topology.Subtopology(subtopology_id="0", source_topics=[topic])])
    member = uuid.uuid4().hex
    return _ready(lambda: w.call(StreamsGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=0, rebalance_timeout_ms=30000, topology=topology,
        active_tasks=[], standby_tasks=[], warmup_tasks=[], process_id=member), 1))


def _scenario(bootstrap: str) -> list:
    w = Wire(bootstrap)
    w.sock.settimeout(120)
    try:
        topic = "cfg-source"
        created = w.call(19, 7, topics=[CT.CreatableTopic(name=topic, num_partitions=2, replication_factor=1,
                                                          assignments=[], configs=[])],
                         timeout_ms=60000, validate_only=False)
        out: list = [[(t.name, t.error_code) for t in created.topics]]
        # FindCoordinator creates __consumer_offsets (as clients do before their first group request).
        groups = ["cg", "cg-other", "sg", "sg-other"]
        wait_until(lambda: all(c.error_code == 0 for c in w.call(10, 4, key_type=0, coordinator_keys=groups).coordinators),
                   timeout=60, message="the group coordinators")

        # A consumer group: its override from the join, a change from the next heartbeat.
        keys = ["consumer.heartbeat.interval.ms", "consumer.session.timeout.ms"]
        out.append(_set(w, "cg", {"consumer.heartbeat.interval.ms": "7000", "consumer.session.timeout.ms": "50000"}))
        out.append(_describe(w, "cg", keys))
        member = uuid.uuid4().hex
        joined = _consumer_hb(w, "cg", member, 0, topic)
        out.append((joined.error_code, joined.heartbeat_interval_ms))
        out.append(_set(w, "cg", {"consumer.heartbeat.interval.ms": "9000"}))
        seen = {}

        def changed() -> bool:
            resp = _consumer_hb(w, "cg", member, joined.member_epoch, topic)
            seen["r"] = (resp.error_code, resp.heartbeat_interval_ms)
            return resp.heartbeat_interval_ms != 7000
        wait_until(changed, timeout=30, message="the next heartbeat's interval")
        out.append(seen["r"])
        # Another group keeps the broker's value.
        other = _consumer_hb(w, "cg-other", uuid.uuid4().hex, 0, topic)
        out.append((other.error_code, other.heartbeat_interval_ms))

        # A streams group: the overrides in its first heartbeat's response.
        streams = {"streams.heartbeat.interval.ms": "6000", "streams.task.offset.interval.ms": "20000",
                   "streams.acceptable.recovery.lag": "123"}
        out.append(_set(w, "sg", streams))
        out.append(_describe(w, "sg", list(streams)))
        first = _streams_join(w, "sg", topic)
        out.append((first.error_code, first.heartbeat_interval_ms, first.task_offset_interval_ms,
                    first.acceptable_recovery_lag))
        plain = _streams_join(w, "sg-other", topic)
        out.append((plain.error_code, plain.heartbeat_interval_ms, plain.task_offset_interval_ms,
                    plain.acceptable_recovery_lag))

        # Overrides checked against the broker's bounds (and one within them).
        for refused in ({"consumer.heartbeat.interval.ms": "60000"},
                        {"consumer.session.timeout.ms": "45000", "consumer.heartbeat.interval.ms": "15000"},
                        {"streams.task.offset.interval.ms": "14999"},
                        {"streams.acceptable.recovery.lag": "-1"},
                        {"streams.num.standby.replicas": "3"}):
            out.append(alter_group_configs(w, "cg-refused", refused))
        return out
    finally:
        w.close()


@pytest.fixture(scope="module")
def kafka_answers() -> Iterator[list]:
    with tempfile.TemporaryDirectory() as work:
        handle = reference_kafka.start_reference_kafka(work)
        try:
            yield _scenario(handle.bootstrap)
        finally:
            handle.stop()


def test_kbroker_applies_group_overrides_as_kafka(kafka_answers, tmp_path):
    with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(tmp_path / "data")) as b:
        ours = _scenario(b.bootstrap_servers)
    assert kafka_answers[3] == (0, 7000) and kafka_answers[5] == (0, 9000)
    assert ours == kafka_answers
