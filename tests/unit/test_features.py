"""Feature-level rules of kbroker/metadata/features.py against Kafka 4.4's FeatureControlManager,
for the cases a freshly formatted broker cannot reach over the wire (it starts at the newest levels)."""

from __future__ import annotations

import pytest

from kbroker.metadata.features import (
    SAFE_DOWNGRADE,
    UNSAFE_DOWNGRADE,
    UPGRADE,
    FeatureUpdateError,
    bootstrap_levels,
    metadata_changed,
    plan_feature_updates,
)


def _plan(finalized, *updates):
    return [(r.name, r.feature_level) for r in plan_feature_updates(1, finalized, list(updates))]


def test_metadata_version_downgrade_without_metadata_changes_is_allowed():
    # Levels 25..29 changed no records (4.0-IV3 .. 4.2-IV1): 29 -> 24 loses nothing.
    assert not metadata_changed(29, 24)
    assert _plan({"metadata.version": 29}, ("metadata.version", 24, SAFE_DOWNGRADE)) == [("metadata.version", 24)]
    # 24 -> 22 crosses 23 (4.0-IV1, ELR records): refused, also when unsafe is asked.
    for kind, detail in ((SAFE_DOWNGRADE, "Refusing to perform the requested downgrade because it might delete "
                                          "metadata information."),
                         (UNSAFE_DOWNGRADE, "Unsafe metadata downgrade is not supported in this version.")):
        with pytest.raises(FeatureUpdateError) as err:
            _plan({"metadata.version": 24}, ("metadata.version", 22, kind))
        assert err.value.message == f"Unsupported metadata.version downgrade from 24 to 22. {detail}"


def test_upgrade_type_must_match_the_direction():
    with pytest.raises(FeatureUpdateError) as err:
        _plan({"metadata.version": 29}, ("metadata.version", 30, SAFE_DOWNGRADE))
    assert err.value.message == ("Invalid update version 30 for feature metadata.version. "
                                 "Can't downgrade to a newer version.")
    assert _plan({"metadata.version": 29}, ("metadata.version", 33, UPGRADE)) == [("metadata.version", 33)]


def test_dependencies_are_checked_against_the_proposed_levels():
    # eligible.leader.replicas.version 1 needs metadata.version 23 (4.0-IV1).
    with pytest.raises(FeatureUpdateError) as err:
        _plan({"metadata.version": 22}, ("eligible.leader.replicas.version", 1, UPGRADE))
    assert err.value.message == ("Invalid update version 1 for feature eligible.leader.replicas.version. "
                                 "eligible.leader.replicas.version could not be set to 1 because it depends on "
                                 "metadata.version level 23")
    # In the same request as the metadata.version upgrade it is satisfied.
    assert _plan({"metadata.version": 22}, ("metadata.version", 23, UPGRADE),
                 ("eligible.leader.replicas.version", 1, UPGRADE)) == [
        ("metadata.version", 23), ("eligible.leader.replicas.version", 1)]


def test_bootstrap_levels_follow_the_metadata_version():
    assert bootstrap_levels() == {"metadata.version": 33, "transaction.version": 2, "group.version": 1,
                                  "eligible.leader.replicas.version": 1, "share.version": 2, "streams.version": 1}
    # Kafka's Feature.defaultLevel: at 4.2-IV1 (29) share.version is 1, transaction.version 2.
    assert bootstrap_levels(29)["share.version"] == 1
    assert bootstrap_levels(22) == {"metadata.version": 22, "group.version": 1}
