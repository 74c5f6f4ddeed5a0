"""UpdateFeatures checks every registered broker's and controller's supported range, as Kafka 4.4's
FeatureControlManager.reasonNotSupported (kbroker/controller/feature_support.py), with its messages."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from kbroker.controller.feature_support import cluster_support
from kbroker.metadata.features import SUPPORTED_FEATURES, FeatureUpdateError, plan_feature_updates
from kbroker.metadata.image import BrokerRegistration
from kbroker_protocol.messages.metadata_records import RegisterControllerRecord


def image(mv: int, brokers: dict[int, dict[str, tuple[int, int]]], controllers: dict[int, dict[str, tuple[int, int]]]):
    C = RegisterControllerRecord
    return SimpleNamespace(
        features={"metadata.version": mv},
        brokers={b: BrokerRegistration(b, uuid.uuid4(), 1, {}, None, False, supported_features=f)
                 for b, f in brokers.items()},
        controllers={c: C(controller_id=c, incarnation_id=uuid.uuid4(), zk_migration_ready=False, end_points=[],
                          features=[C.ControllerFeature(name=n, min_supported_version=lo, max_supported_version=hi)
                                    for n, (lo, hi) in f.items()])
                     for c, f in controllers.items()})


ALL = dict(SUPPORTED_FEATURES)


def plan(img, updates, quorum=(1,)):
    return plan_feature_updates(1, {"metadata.version": 20}, updates, cluster_support(img, 1, quorum))


def test_a_broker_without_the_feature_refuses_it():
    img = image(20, {1: ALL, 2: {k: v for k, v in ALL.items() if k != "group.version"}}, {})
    with pytest.raises(FeatureUpdateError) as info:
        plan(img, [("group.version", 1, 1)])
    assert info.value.message == "Invalid update version 1 for feature group.version. Broker 2 does not support " \
                                 "this feature."
    assert plan(image(20, {1: ALL}, {}), [("group.version", 1, 1)])


def test_a_broker_range_is_named():
    img = image(20, {1: ALL, 3: dict(ALL, **{"metadata.version": (7, 21)})}, {})
    with pytest.raises(FeatureUpdateError, match=r"Invalid update version 22 for feature metadata.version. Broker 3 "
                                                 r"only supports versions 7-21$"):
        plan(img, [("metadata.version", 22, 1)])


def test_controllers_are_checked_from_controller_registrations_on():
    img = image(20, {}, {2: {k: v for k, v in ALL.items() if k != "group.version"}})
    with pytest.raises(FeatureUpdateError, match="Controller 2 does not support this feature."):
        plan(img, [("group.version", 1, 1)], quorum=(1, 2))
    with pytest.raises(FeatureUpdateError, match="controller 3 has not registered, and may not support this feature"):
        plan(image(20, {}, {2: ALL}), [("group.version", 1, 1)], quorum=(1, 2, 3))
    assert plan(image(20, {}, {2: ALL}), [("group.version", 1, 1)], quorum=(1, 2))
    # before metadata.version 3.7-IV0 controllers cannot be verified
    assert plan(image(14, {}, {}), [("group.version", 1, 1)], quorum=(1, 2, 3))
