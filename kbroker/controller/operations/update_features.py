"""The controller's side of UpdateFeatures (key 57).

Changes finalized feature levels (``kafka-features.sh upgrade/downgrade``, Admin.updateFeatures).
A Kafka broker forwards this to the controller; here the built-in controller checks the whole
request as Kafka's ``FeatureControlManager.updateFeatures`` does (see
kbroker/metadata/features.py) and writes one FeatureLevelRecord per feature to the metadata log
atomically, or nothing. A failure is one top-level INVALID_UPDATE_VERSION naming the first feature
that failed ("The update failed for all features since ..."), with no per-feature results. On
success v0-1 list each feature with error NONE (message "NONE", as Kafka's ``Errors.message()``);
v2 drops the per-feature results. ValidateOnly (v1+) checks without writing. As in Kafka's
controller, the upgrade type is read from UpgradeType (v1+; at v0 its default, UPGRADE). A
kraft.version upgrade (0 to 1, as ``upgrade --release-version`` asks) is written as Kafka's Raft
layer writes it: KRaftVersionRecord and VotersRecord control records naming this single voter.
The broker's handler is kbroker/api/update_features.py.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import ControllerHolder, local_controller, operation_subject
from kbroker.metadata.client import Requester
from kbroker.metadata.features import FeatureUpdateError
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.security.acls import Authorizer


class Configured(Protocol):
    """A node as :func:`metadata_directory_id` reads it: its configuration."""

    @property
    def config(self) -> BrokerConfig: ...


class FeaturesHost(ControllerHolder, Configured, Protocol):
    """UpdateFeatures as it uses the node: its controller, the authorizer, its configuration (the
    metadata log's directory id) and the endpoints a kraft.version upgrade names."""

    @property
    def authorizer(self) -> Authorizer: ...

    def advertised_endpoints(self) -> list[tuple[str, str, int]]: ...


Result = UpdateFeaturesResponse.UpdatableFeatureResult


def metadata_directory_id(broker: Configured) -> uuid.UUID | None:
    """The directory id (meta.properties) of the metadata log's directory: the voter's directory id."""
    meta_dir = broker.config["metadata.log.dir"] or broker.config.log_dirs[0]
    try:
        text = (Path(meta_dir) / "meta.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("directory.id="):
            raw = line.split("=", 1)[1].strip()
            try:
                return uuid.UUID(bytes=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            except ValueError:
                return None
    return None


async def update_features(broker: FeaturesHost, request: UpdateFeaturesRequest, version: int, requester: Requester | None = None) -> UpdateFeaturesResponse:
    """The controller's side of UpdateFeatures (Kafka's FeatureControlManager.updateFeatures)."""
    # Kafka's ControllerApis: ALTER on the cluster, for the forwarded principal
    if not authorized(operation_subject(broker, requester), ALTER, CLUSTER, CLUSTER_NAME):
        return update_features_error(request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    updates = [(u.feature, u.max_version_level, u.upgrade_type if version >= 1 else 1)
               for u in request.feature_updates]
    assert broker.controller is not None
    try:
        controller = local_controller(broker)
        async with controller.exclusive():
            await controller.update_features(
                updates, validate_only=version >= 1 and request.validate_only,
                voter_endpoints=broker.advertised_endpoints(), directory_id=metadata_directory_id(broker))
    except FeatureUpdateError as exc:
        return UpdateFeaturesResponse(
            throttle_time_ms=0, error_code=exc.code, results=[],
            error_message=f"The update failed for all features since the following feature had an error: "
                          f"{exc.message}",
        )
    results = [Result(feature=u.feature, error_code=ErrorCode.NONE, error_message="NONE")
               for u in request.feature_updates] if version <= 1 else []
    return UpdateFeaturesResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, results=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


def update_features_error(request: UpdateFeaturesRequest, version: int, code: int) -> UpdateFeaturesResponse:
    # UpdateFeaturesResponse.createWithErrors: ApiError.fromThrowable leaves the message null for
    # UNKNOWN_SERVER_ERROR, and no per-feature results.
    return UpdateFeaturesResponse(error_code=code, error_message=None, results=[])
