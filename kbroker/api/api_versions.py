"""ApiVersions (key 18), v0-4.

Built from the handler registry, so only implemented APIs are advertised. Produce is advertised
from v0 although only v3+ is served, as Kafka 4.x does: librdkafka before 2.11.1 disables
compression unless the Produce range contains v0. v3+ requests carry the client software name and
version, which must match Kafka's pattern or get INVALID_REQUEST (and no API list). An ApiVersions request at a
version we do not know is answered with a v0 body (see :func:`unsupported_version_response`).
v3+ responses carry the supported and finalized features in tagged fields.
"""

from __future__ import annotations

import re

from kbroker.api.registry import HANDLERS, api
from kbroker.controller.quorum import SUPPORTED_FEATURES
from protocol.errors import ErrorCode
from protocol.messages.api_versions import ApiVersionsResponse

# Minimums advertised below what is served, for clients that gate features on them.
ADVERTISED_MIN = {0: 0}

_SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


def _api_keys() -> list[ApiVersionsResponse.ApiVersion]:
    return [
        ApiVersionsResponse.ApiVersion(
            api_key=key, min_version=ADVERTISED_MIN.get(key, h.min_version), max_version=h.max_version
        )
        for key, h in sorted(HANDLERS.items())
    ]


def unsupported_version_response() -> ApiVersionsResponse:
    h = HANDLERS[18]
    return ApiVersionsResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=h.min_version, max_version=h.max_version)],
    )


@api(18, 0, 4)
def handle_api_versions(ctx, request) -> ApiVersionsResponse:
    if ctx.api_version >= 3:
        name, version = request.client_software_name, request.client_software_version
        if not _SOFTWARE_RE.fullmatch(name or "") or not _SOFTWARE_RE.fullmatch(version or ""):
            return ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST, api_keys=[])  # as Kafka
        ctx.connection.client_software = (name, version)
    response = ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=_api_keys())
    if ctx.api_version >= 3:
        image = ctx.broker.image
        response.supported_features = [
            ApiVersionsResponse.SupportedFeatureKey(name=name, min_version=lo, max_version=hi)
            for name, (lo, hi, _) in sorted(SUPPORTED_FEATURES.items())
        ]
        response.finalized_features_epoch = image.offset
        response.finalized_features = [
            ApiVersionsResponse.FinalizedFeatureKey(name=name, max_version_level=level, min_version_level=level)
            for name, level in sorted(image.features.items())
        ]
    return response
