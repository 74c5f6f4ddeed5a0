"""ApiVersions (key 18), v0-5.

Built from the handler registry, so only implemented APIs are advertised, and a spec's unstable
newest version only with ``unstable.api.versions.enable=true`` (see registry.py). Produce is
advertised from v0 although only v3+ is served, as Kafka 4.x does: librdkafka before 2.11.1
disables compression unless the Produce range contains v0. v3+ requests carry the client software
name and version, which must match Kafka's pattern or get INVALID_REQUEST (and no API list). An
ApiVersions request at a version we do not know is answered with a v0 body (see
:func:`unsupported_version_response`).

v3+ responses carry the supported and finalized features (metadata log FeatureLevelRecords, epoch
= the offset of the last applied metadata record). Below v4 a supported feature whose minimum is 0
is left out, as Kafka does for older clients (KAFKA-17492).

v5 (KIP-1242) lets a client say which cluster and node it believes it is talking to: ClusterId and
NodeId must come together (else INVALID_REQUEST), and when they do not name this broker the answer
is REBOOTSTRAP_REQUIRED, in Kafka's order (unsupported version, invalid request, then mismatch).
"""

from __future__ import annotations

import re

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import HANDLERS, api
from kbroker.metadata.features import SUPPORTED_FEATURES
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse

# Minimums advertised below what is served, for clients that gate features on them.
ADVERTISED_MIN = {0: 0}

_SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


def api_keys(unstable_enabled: bool) -> list[ApiVersionsResponse.ApiVersion]:
    return [
        ApiVersionsResponse.ApiVersion(
            api_key=key, min_version=ADVERTISED_MIN.get(key, h.min_version), max_version=h.enabled_max(unstable_enabled)
        )
        for key, h in sorted(HANDLERS.items())
    ]


def unsupported_version_response() -> ApiVersionsResponse:
    h = HANDLERS[18]
    return ApiVersionsResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=h.min_version, max_version=h.max_version)],
    )


def _valid(version: int, request: ApiVersionsRequest) -> bool:
    """Kafka's ``ApiVersionsRequest.isValid``."""
    if version >= 5 and (request.cluster_id is None) != (request.node_id == -1):
        return False
    if version >= 3:
        return bool(_SOFTWARE_RE.fullmatch(request.client_software_name or "")
                    and _SOFTWARE_RE.fullmatch(request.client_software_version or ""))
    return True


@api(18, 0, 5)
def handle_api_versions(ctx: RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse:
    version = ctx.api_version
    broker = ctx.broker
    if not _valid(version, request):
        return ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST, api_keys=[])  # as Kafka
    if version >= 5 and request.cluster_id is not None and (
        request.cluster_id != broker.cluster_id or request.node_id != broker.node_id
    ):
        return ApiVersionsResponse(error_code=ErrorCode.REBOOTSTRAP_REQUIRED, api_keys=[])
    if version >= 3:
        ctx.connection.client_software = (request.client_software_name, request.client_software_version)
    response = ApiVersionsResponse(
        error_code=ErrorCode.NONE, api_keys=api_keys(broker.config["unstable.api.versions.enable"])
    )
    if version >= 3:
        image = broker.image
        response.supported_features = [
            ApiVersionsResponse.SupportedFeatureKey(name=name, min_version=lo, max_version=hi)
            for name, (lo, hi) in sorted(SUPPORTED_FEATURES.items())
            if version >= 4 or lo != 0
        ]
        response.finalized_features_epoch = image.offset
        response.finalized_features = [
            ApiVersionsResponse.FinalizedFeatureKey(name=name, max_version_level=level, min_version_level=level)
            for name, level in sorted(image.finalized_features().items())
            if level != 0
        ]
    return response


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(18)
def _api_versions_error(request: ApiVersionsRequest, version: int, code: int) -> ApiVersionsResponse:
    return ApiVersionsResponse(error_code=code, api_keys=[])
