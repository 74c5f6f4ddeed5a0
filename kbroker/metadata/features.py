"""Feature levels (KIP-584): what this broker supports, what a new cluster finalizes, and the checks
of an UpdateFeatures request, as Kafka 4.4's ``Feature``/``MetadataVersion`` enums,
``BrokerFeatures.defaultSupportedFeatures``/``QuorumFeatures`` and ``FeatureControlManager`` define them.

Finalized levels live in the metadata log as ``FeatureLevelRecord``s (level 0 removes a feature);
:class:`kbroker.metadata.image.MetadataImage` replays them. Only stable levels are supported, as a
Kafka broker without ``unstable.feature.versions.enable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode

METADATA_VERSION = "metadata.version"
KRAFT_VERSION = "kraft.version"

# MetadataVersion: feature level -> didMetadataChange (whether records changed at that level; a
# downgrade across such a level could lose metadata). Levels 7 (3.3-IV3) .. 34 (4.5-IV0), as in the
# Apache Kafka 4.4.0 release (whose newest production level is 33, 4.4-IV2).
METADATA_CHANGED: dict[int, bool] = {
    7: True, 8: True, 9: False, 10: False, 11: True, 12: False, 13: True, 14: True, 15: True,
    16: False, 17: True, 18: False, 19: False, 20: False, 21: False, 22: False, 23: True, 24: False,
    25: False, 26: False, 27: False, 28: False, 29: False, 30: True, 31: False, 32: True, 33: True, 34: False,
}
MV_MINIMUM = 7
MV_LATEST_TESTING = 34
MV_LATEST_PRODUCTION = 33


@dataclass(frozen=True, slots=True)
class FeatureLevel:
    level: int
    bootstrap_mv: int  # the metadata.version from which a new cluster gets this level by default
    dependencies: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    levels: tuple[FeatureLevel, ...]
    latest_production: int

    @property
    def minimum(self) -> int:
        return self.levels[0].level

    def default_level(self, metadata_version: int) -> int:
        """Kafka's ``Feature.defaultLevel``: the newest level whose bootstrap MV is <= ``metadata_version``."""
        level = self.levels[0].level
        for fl in self.levels:
            if fl.bootstrap_mv > metadata_version:
                break
            level = fl.level
        return level

    def level(self, level: int) -> FeatureLevel | None:
        return next((fl for fl in self.levels if fl.level == level), None)


# Kafka 4.4's production features (Feature.PRODUCTION_FEATURES), in its enum order.
FEATURES: dict[str, Feature] = {f.name: f for f in [
    Feature(KRAFT_VERSION, (FeatureLevel(0, 7), FeatureLevel(1, 21)), 1),
    Feature("transaction.version", (FeatureLevel(0, 7), FeatureLevel(1, 24), FeatureLevel(2, 24)), 2),
    Feature("group.version", (FeatureLevel(0, 7), FeatureLevel(1, 22)), 1),
    Feature("eligible.leader.replicas.version",
            (FeatureLevel(0, 7), FeatureLevel(1, 26, {METADATA_VERSION: 23})), 1),
    Feature("share.version", (FeatureLevel(0, 7), FeatureLevel(1, 28), FeatureLevel(2, 31)), 2),
    Feature("streams.version", (FeatureLevel(0, 7), FeatureLevel(1, 29)), 1),
]}


def supported_features() -> dict[str, tuple[int, int]]:
    """Kafka's ``BrokerFeatures.defaultSupportedFeatures(false)``: name -> (min, max) level."""
    out = {METADATA_VERSION: (MV_MINIMUM, MV_LATEST_PRODUCTION)}
    for f in FEATURES.values():
        if f.latest_production > 0:
            out[f.name] = (f.minimum, f.latest_production)
    return out


SUPPORTED_FEATURES: dict[str, tuple[int, int]] = supported_features()


def bootstrap_levels(metadata_version: int = MV_LATEST_PRODUCTION) -> dict[str, int]:
    """The levels ``kafka-storage.sh format`` finalizes for a new cluster (kraft.version stays 0
    with a static voter set; a level 0 is not written)."""
    levels = {METADATA_VERSION: metadata_version}
    for f in FEATURES.values():
        if f.name != KRAFT_VERSION:
            levels[f.name] = f.default_level(metadata_version)
    return {name: level for name, level in levels.items() if level > 0}


@dataclass(frozen=True, slots=True)
class KRaftVersionUpgrade:
    """A planned kraft.version upgrade (written as Raft control records, not a FeatureLevelRecord)."""

    level: int


# FeatureUpdate.UpgradeType codes.
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3


class FeatureUpdateError(Exception):
    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_UPDATE_VERSION) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _invalid(feature: str, version: int, message: str) -> FeatureUpdateError:
    return FeatureUpdateError(f"Invalid update version {version} for feature {feature}. {message}")


def metadata_changed(a: int, b: int) -> bool:
    """Kafka's ``MetadataVersion.checkIfMetadataChanged``: did any level in (low, high] change records?"""
    low, high = min(a, b), max(a, b)
    return any(METADATA_CHANGED.get(v, False) for v in range(low + 1, high + 1))


def plan_feature_updates(node_id: int, finalized: dict[str, int], updates: list[tuple[str, int, int]],
                         cluster_support: Callable[[str, int], str | None] | None = None,
                         ) -> list[mr.FeatureLevelRecord | KRaftVersionUpgrade]:
    """Check ``updates`` ((feature, new level, upgrade type) in request order) against the
    ``finalized`` levels; return the FeatureLevelRecords (and a :class:`KRaftVersionUpgrade`) that
    apply them all, or raise FeatureUpdateError for the first that fails (then nothing is applied).
    ``cluster_support(feature, level)``: why another node cannot run the level (None: all can;
    kbroker.controller.feature_support), asked after this controller's own range."""
    proposed = dict(finalized)
    for name, level, _ in updates:
        proposed[name] = level
    supported = SUPPORTED_FEATURES
    records: list[mr.FeatureLevelRecord | KRaftVersionUpgrade] = []
    for name, new, upgrade_type in updates:
        if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
            raise _invalid(name, new, "The controller does not support the given upgrade type.")
        current = finalized.get(name, 0)
        if new < 0:
            raise _invalid(name, new, "A feature version cannot be less than 0.")
        lo, hi = supported.get(name, (0, 0))
        if not lo <= new <= hi:
            reason = "does not support this feature." if hi == 0 else f"only supports versions {_range_text(lo, hi)}"
            raise _invalid(name, new, f"Local controller {node_id} {reason}")
        elsewhere = cluster_support(name, new) if cluster_support is not None else None
        if elsewhere is not None:
            raise _invalid(name, new, elsewhere)
        if new < current and upgrade_type == UPGRADE:
            raise _invalid(name, new, "Can't downgrade the version of this feature without setting the "
                                      "upgrade type to either safe or unsafe downgrade.")
        if new > current and upgrade_type != UPGRADE:
            raise _invalid(name, new, "Can't downgrade to a newer version.")
        if name == METADATA_VERSION:
            if new < current and metadata_changed(current, new):
                detail = ("Unsafe metadata downgrade is not supported in this version."
                          if upgrade_type == UNSAFE_DOWNGRADE else
                          "Refusing to perform the requested downgrade because it might delete metadata information.")
                raise FeatureUpdateError(
                    f"Unsupported metadata.version downgrade from {current} to {new}. {detail}")
            records.append(mr.FeatureLevelRecord(name=name, feature_level=new))
        elif name == KRAFT_VERSION:
            if new < current:
                raise _invalid(name, new, "Can't downgrade the version of this feature.")
            if new > current:
                # Not a FeatureLevelRecord: Kafka upgrades kraft.version in the Raft layer, with
                # KRaftVersionRecord and VotersRecord control records (KIP-853).
                records.append(KRaftVersionUpgrade(new))
        else:
            feature = FEATURES.get(name)
            if feature is None:
                raise _invalid(name, new, f"Feature {name} not found.")
            fl = feature.level(new)
            if fl is None:
                raise _invalid(name, new, f"No feature:{name} with feature level {new}")
            mv = proposed.get(METADATA_VERSION)
            if new >= 1 and (mv is None or mv < MV_MINIMUM):
                raise _invalid(name, new, f"{name} could not be set to {new} because it depends on "
                                          f"metadata.version={MV_MINIMUM} (3.3-IV3)")
            for dep, dep_level in fl.dependencies.items():
                have = proposed.get(dep)
                if have is None or have < dep_level:
                    raise _invalid(name, new, f"{name} could not be set to {new} because it depends on "
                                              f"{dep} level {dep_level}")
            records.append(mr.FeatureLevelRecord(name=name, feature_level=new))
    return records
