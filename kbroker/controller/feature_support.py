"""Whether the cluster's nodes support a new finalized feature level (Kafka 4.4's
``FeatureControlManager.reasonNotSupported``), checked by UpdateFeatures after the local controller:

- every registered broker's supported range of the feature (its BrokerRegistration; a feature it
  does not name is ``0-0``): "Broker <id> does not support this feature." when its range ends at
  0, else "Broker <id> only supports versions <range>";
- from metadata.version 3.7-IV0 (controller registrations) every registered controller's range
  likewise ("Controller <id> ..."), and every id of the static quorum must have registered
  ("controller <id> has not registered, and may not support this feature"); before it, controllers
  cannot be verified (Kafka notes it in its log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from kbroker.metadata.features import METADATA_VERSION

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage

log = logging.getLogger(__name__)

MV_CONTROLLER_REGISTRATION = 15  # IBP_3_7_IV0


def _range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _reason(new: int, what: str, lo: int, hi: int) -> str | None:
    if lo <= new <= hi:
        return None
    return f"{what} does not support this feature." if hi == 0 else f"{what} only supports versions {_range_text(lo, hi)}"


def static_quorum_ids(raft: object) -> list[int]:
    """The voter ids of ``controller.quorum.voters`` (Kafka's QuorumFeatures.quorumNodeIds: none for
    a dynamic quorum)."""
    voters = getattr(raft, "initial_voters", None)
    if voters is None or isinstance(voters, Mapping):
        return []
    return sorted(voters)


def cluster_support(image: MetadataImage, node_id: int, quorum_ids: Iterable[int]) -> Callable[[str, int], str | None]:
    """``reason(feature, new level)``: why a node of the cluster cannot run it (None: all can)."""

    def reason(name: str, new: int) -> str | None:
        for broker_id, reg in sorted(image.brokers.items()):
            lo, hi = reg.supported_features.get(name, (0, 0))
            found = _reason(new, f"Broker {broker_id}", lo, hi)
            if found is not None:
                return found
        if image.features.get(METADATA_VERSION, 0) < MV_CONTROLLER_REGISTRATION:
            log.info("Verified that %d broker(s) supported changing %s to feature level %d. Note: unable to "
                     "verify controller support in the current MetadataVersion.", len(image.brokers), name, new)
            return None
        found_ids = {node_id}
        for controller_id, record in sorted(image.controllers.items()):
            if controller_id == node_id:
                continue  # checked locally
            ranges = {f.name: (f.min_supported_version, f.max_supported_version) for f in record.features or ()}
            lo, hi = ranges.get(name, (0, 0))
            found = _reason(new, f"Controller {controller_id}", lo, hi)
            if found is not None:
                return found
            found_ids.add(controller_id)
        for quorum_id in quorum_ids:
            if quorum_id not in found_ids:
                return f"controller {quorum_id} has not registered, and may not support this feature"
        log.info("Verified that %d broker(s) and %d controller(s) supported changing %s to feature level %d.",
                 len(image.brokers), len(found_ids), name, new)
        return None

    return reason
