"""Cordoned log dirs (KIP-1066) as Kafka 4.4 has them: the ``cordoned.log.dirs`` broker config and
its checks, the lifecycle manager's heartbeats, the controller's record
(BrokerRegistrationChangeRecord v3, RegisterBrokerRecord v4), replica placement and manual
assignments skipping brokers whose dirs are all cordoned, and the log manager's choice of a new
partition's dir."""

from __future__ import annotations

import random
import uuid

import pytest

from kbroker.config import BrokerConfig, ConfigError
from kbroker.controller.errors import ControllerError
from kbroker.controller.placement import PlacementError, place_replicas
from kbroker.controller.reassignment import ReassignmentError, validate_manual_assignment
from kbroker.controller.topic_plans import plan_topic
from kbroker.log import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.metadata.broker_lifecycle import BROKER_HEARTBEAT, LifecycleMachine
from kbroker.metadata.features import METADATA_VERSION, SUPPORTED_FEATURES, bootstrap_levels
from kbroker.metadata.new_topic import NewTopic
from kbroker.metadata.snapshot import image_to_records, records_to_image
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatResponse
from kbroker_protocol.messages.broker_registration import BrokerRegistrationResponse
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord
from tests.unit.cluster_helpers import CLUSTER_ID, MemoryLog, heartbeat, new_cc, register

E = ErrorCode
DIRS = {b: [uuid.uuid4(), uuid.uuid4()] for b in (1, 2, 3)}


def _cluster(mv: int | None = None) -> tuple[MemoryLog, object]:
    """Brokers 1-3, two log dirs each, registered and unfenced."""
    levels = dict(bootstrap_levels())
    if mv is not None:
        levels[METADATA_VERSION] = mv
    log = MemoryLog(levels)
    cc = new_cc(log)
    for b, dirs in DIRS.items():
        epoch = register(cc, log, b, log_dirs=dirs)
        _, records = cc.heartbeat(log.image, heartbeat(b, epoch, log.image.offset), 0)
        log.commit(records)
    return log, cc


def _cordon(cc, log: MemoryLog, broker_id: int, dirs: list[uuid.UUID] | None) -> list[object]:
    request = heartbeat(broker_id, log.image.brokers[broker_id].epoch, log.image.offset)
    request.cordoned_log_dirs = dirs
    resp, records = cc.heartbeat(log.image, request, 0)
    assert resp.error_code == E.NONE
    log.commit(records)
    return records


# -- the controller ---------------------------------------------------------------------------------


def test_heartbeats_record_the_cordoned_dirs_when_they_change():
    log, cc = _cluster()
    assert log.image.brokers[1].cordoned_log_dirs is None  # not reported yet
    assert _cordon(cc, log, 1, None) == []  # null: the broker has not caught up
    assert _cordon(cc, log, 2, []) == []  # none cordoned and none before: nothing written (Kafka)
    (record,) = _cordon(cc, log, 1, [DIRS[1][0]])
    assert isinstance(record, BrokerRegistrationChangeRecord) and record.cordoned_log_dirs == [DIRS[1][0]]
    assert log.image.brokers[1].cordoned_log_dirs == [DIRS[1][0]]
    assert _cordon(cc, log, 1, [DIRS[1][0]]) == []  # unchanged: nothing written
    assert len(_cordon(cc, log, 1, [])) == 1 and log.image.brokers[1].cordoned_log_dirs == []
    _cordon(cc, log, 1, list(reversed(DIRS[1])))
    assert _cordon(cc, log, 1, list(DIRS[1])) == []  # compared as sets
    # kept in snapshots (RegisterBrokerRecord's CordonedLogDirs) and reset by a new registration
    restored = records_to_image(image_to_records(log.image), log.image.offset)
    assert sorted(restored.brokers[1].cordoned_log_dirs) == sorted(DIRS[1])
    assert restored.brokers[2].cordoned_log_dirs is None
    register(cc, log, 1, incarnation=log.image.brokers[1].incarnation_id, log_dirs=DIRS[1])  # amended
    assert log.image.brokers[1].cordoned_log_dirs is None


def test_below_metadata_version_30_cordoned_dirs_are_not_recorded():
    log, cc = _cluster(mv=29)
    assert _cordon(cc, log, 1, list(DIRS[1])) == []
    assert log.image.brokers[1].cordoned_log_dirs is None


@pytest.mark.parametrize("seed", range(5))
def test_a_broker_with_every_dir_cordoned_gets_no_new_replica(seed):
    log, cc = _cluster()
    _cordon(cc, log, 1, [DIRS[1][0]])  # one of two: still usable
    _cordon(cc, log, 3, list(DIRS[3]))  # all: not usable
    for replicas in place_replicas(log.image, 12, 2, random.Random(seed)):
        assert sorted(replicas) == [1, 2]
    with pytest.raises(PlacementError) as e:
        place_replicas(log.image, 1, 3, random.Random(seed))
    assert (e.value.code, e.value.message) == (
        E.INVALID_REPLICATION_FACTOR, "The target replication factor of 3 cannot be reached because only 2 "
        "broker(s) are registered or some brokers have all their log directories cordoned.")


def test_every_broker_cordoned_refuses_creation_with_kafkas_message():
    log, cc = _cluster()
    for b in DIRS:
        _cordon(cc, log, b, list(DIRS[b]))
    with pytest.raises(ControllerError) as e:
        plan_topic(log.image, NewTopic("t", 1, 1), 1, 1)
    assert (e.value.code, e.value.message) == (
        E.INVALID_REPLICATION_FACTOR, "Unable to replicate the partition 1 time(s): All brokers are currently "
        "fenced, or have all their log directories cordoned.")


def test_manual_assignments_and_reassignments_to_a_fully_cordoned_broker_are_refused():
    log, cc = _cluster()
    _cordon(cc, log, 2, list(DIRS[2]))
    message = "The manual partition assignment includes broker 2, but all its log directories are cordoned."
    with pytest.raises(ControllerError) as e:
        plan_topic(log.image, NewTopic("t", assignments={0: [1, 2]}), 1, 1)
    assert (e.value.code, e.value.message) == (E.INVALID_REPLICA_ASSIGNMENT, message)
    with pytest.raises(ReassignmentError) as r:
        validate_manual_assignment(log.image, [3, 2])
    assert (r.value.code, r.value.message) == (E.INVALID_REPLICA_ASSIGNMENT, message)
    plan_topic(log.image, NewTopic("t", assignments={0: [1, 3]}), 1, 1)


# -- the broker's lifecycle manager -------------------------------------------------------------------


def _machine(supported: bool, cordoned: list[uuid.UUID]) -> LifecycleMachine:
    m = LifecycleMachine(1, CLUSTER_ID, listeners=[("PLAINTEXT", "localhost", 9092, 0)],
                         features=dict(SUPPORTED_FEATURES), log_dirs=[uuid.uuid4()])
    m.metadata_offset = lambda: 41
    m.cordoned_provider = lambda: list(cordoned)
    m.cordoned_supported = lambda: supported
    m.start(0)
    m.on_response(*m.poll(0)[:1], BrokerRegistrationResponse(error_code=E.NONE, broker_epoch=7), 0)
    return m


def _heartbeat(m: LifecycleMachine, now: int, caught_up: bool = True):
    api_key, request = m.poll(now)
    assert api_key == BROKER_HEARTBEAT
    m.on_response(api_key, BrokerHeartbeatResponse(error_code=E.NONE, is_caught_up=caught_up, is_fenced=True), now)
    return request


def test_heartbeats_carry_the_cordoned_dirs_once_caught_up_and_at_once_when_they_change():
    cordoned = [uuid.uuid4()]
    m = _machine(True, cordoned)
    assert _heartbeat(m, 0, caught_up=False).cordoned_log_dirs is None
    assert _heartbeat(m, 10).cordoned_log_dirs is None  # the answer that says caught up
    assert _heartbeat(m, 20).cordoned_log_dirs == cordoned
    later = [uuid.uuid4(), uuid.uuid4()]
    m.propagate_directory_cordoned(later, 25)
    assert m.next_at == 25  # sent at once
    assert _heartbeat(m, 25).cordoned_log_dirs == sorted(later)
    unsupported = _machine(False, cordoned)
    _heartbeat(unsupported, 0)
    assert _heartbeat(unsupported, 10).cordoned_log_dirs is None


# -- the config ---------------------------------------------------------------------------------------


def test_cordoned_log_dirs_config_checks_as_kafka(tmp_path):
    dirs = f"{tmp_path}/a,{tmp_path}/b"
    base = {"log.dirs": dirs}
    assert BrokerConfig(base, warn=False).cordoned_log_dirs == []
    assert BrokerConfig(dict(base, **{"cordoned.log.dirs": "*"}), warn=False).cordoned_log_dirs == [
        tmp_path / "a", tmp_path / "b"]
    assert BrokerConfig(dict(base, **{"cordoned.log.dirs": f"{tmp_path}/b"}), warn=False).cordoned_log_dirs == [
        tmp_path / "b"]
    with pytest.raises(ConfigError, match=r"^requirement failed: When cordoned.log.dirs is set to \*, it must not "
                       "contain other values$"):
        BrokerConfig(dict(base, **{"cordoned.log.dirs": f"*,{tmp_path}/a"}), warn=False)
    with pytest.raises(ConfigError, match="^requirement failed: All entries in cordoned.log.dirs must be present in "
                       "log.dirs or log.dir. Missing entries : /x$"):
        BrokerConfig(dict(base, **{"cordoned.log.dirs": "/x"}), warn=False)
    # a stored dynamic value that does not fit this broker is ignored (the static one applies)
    config = BrokerConfig(dict(base, **{"cordoned.log.dirs": f"{tmp_path}/a"}), warn=False)
    assert config.with_dynamic({}, {"cordoned.log.dirs": "/x"}).cordoned_log_dirs == [tmp_path / "a"]
    assert config.with_dynamic({}, {"cordoned.log.dirs": ""}).cordoned_log_dirs == []


# -- the log manager ----------------------------------------------------------------------------------


def test_new_partitions_avoid_cordoned_dirs_unless_all_are(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    manager = LogManager([a, b, c], LogConfig())
    try:
        manager.cordoned_dirs = frozenset({a, c})
        for i in range(3):
            assert manager.get_or_create("t", i).directory.parent == b
        manager.create_logs([("u", 0), ("u", 1)], LogConfig())
        assert {manager.log_dir_of("u", i) for i in (0, 1)} == {b}
        manager.cordoned_dirs = frozenset({a, b, c})
        assert manager.get_or_create("v", 0).directory.parent == a  # all cordoned: the first online dir
        manager.cordoned_dirs = frozenset()
        assert manager.get_or_create("w", 0).directory.parent == c  # the fewest partitions again
    finally:
        manager.close()
