"""DescribeClientQuotas (key 48), v0-1, as Kafka's KafkaApis and ClientQuotasImage.describe.

Needs DESCRIBE_CONFIGS on the cluster (else CLUSTER_AUTHORIZATION_FAILED). The filter's components
each name an entity type (``user``, ``client-id``, ``ip``) once, with a match type: EXACT (0, the
name given), DEFAULT (1, the ``<default>`` entity, no name) or SPECIFIED (2, any entity of that type,
no name). Entities matching every component are returned (with ``strict``, only those with no other
entity type); no components: all entities, or none when strict. A bad filter answers
INVALID_REQUEST (UNSUPPORTED_VERSION for an unknown entity type) with Kafka's message and no
entries. The quotas come from the metadata image (``image.client_quotas``).
"""

from __future__ import annotations

from collections.abc import Iterable

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.metadata.image import QuotaEntity
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, DESCRIBE_CONFIGS, authorized
from kbroker.security.quotas import CLIENT_ID, IP, USER
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_client_quotas import (
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)

EntryData = DescribeClientQuotasResponse.EntryData
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


class _FilterError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error(code: int, message: str | None) -> DescribeClientQuotasResponse:
    return DescribeClientQuotasResponse(throttle_time_ms=0, error_code=code, error_message=message, entries=None)


def parse_filter(components: Iterable[DescribeClientQuotasRequest.ComponentData]
                 ) -> tuple[dict[str, str | None], set[str]]:
    """(exact matches: type -> name or None for <default>, types that must be present)."""
    exact: dict[str, str | None] = {}
    typed: set[str] = set()
    for c in components:
        kind = c.entity_type
        if not kind:
            raise _FilterError(ErrorCode.INVALID_REQUEST, "Invalid empty entity type.")
        if kind in exact or kind in typed:
            raise _FilterError(ErrorCode.INVALID_REQUEST,
                               f"Entity type {kind} cannot appear more than once in the filter.")
        if kind not in (IP, USER, CLIENT_ID):
            raise _FilterError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {kind}")
        if c.match_type == MATCH_EXACT:
            if c.match is None:
                raise _FilterError(ErrorCode.INVALID_REQUEST,
                                   "Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[kind] = c.match
        elif c.match_type == MATCH_DEFAULT:
            if c.match is not None:
                raise _FilterError(ErrorCode.INVALID_REQUEST,
                                   "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[kind] = None
        elif c.match_type == MATCH_SPECIFIED:
            if c.match is not None:
                raise _FilterError(ErrorCode.INVALID_REQUEST,
                                   "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
            typed.add(kind)
        else:
            raise _FilterError(ErrorCode.INVALID_REQUEST, f"Unknown match type {c.match_type}")
    if (IP in exact or IP in typed) and ({USER, CLIENT_ID} & (set(exact) | typed)):
        raise _FilterError(ErrorCode.INVALID_REQUEST, "Invalid entity filter component combination. IP filter "
                           "component should not be used with user or clientId filter component.")
    return exact, typed


def matching(quotas: dict[QuotaEntity, dict[str, float]], exact: dict[str, str | None], typed: set[str],
             strict: bool) -> list[QuotaEntity]:
    """The image's entities the filter selects (ClientQuotasImage.matches)."""
    if not exact and not typed:
        return [] if strict else list(quotas)
    out = []
    for entity in quotas:
        names = dict(entity)
        if any(kind not in names or names[kind] != name for kind, name in exact.items()):
            continue
        if any(kind not in names for kind in typed):
            continue
        if strict and len(names) != len(exact) + len(typed):
            continue
        out.append(entity)
    return out


def _order(entity: QuotaEntity) -> tuple[tuple[str, bool, str], ...]:
    return tuple((kind, name is not None, name or "") for kind, name in entity)


@api(48, 0, 1)
def handle_describe_client_quotas(ctx: RequestContext, request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse:
    if not authorized(ctx, DESCRIBE_CONFIGS, CLUSTER, CLUSTER_NAME):
        # Kafka: Errors.CLUSTER_AUTHORIZATION_FAILED.exception through ApiError.fromThrowable: no message
        return _error(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
    try:
        exact, typed = parse_filter(request.components)
    except _FilterError as exc:
        return _error(exc.code, str(exc))
    quotas = ctx.broker.image.client_quotas
    entries = []
    for entity in sorted(matching(quotas, exact, typed, request.strict), key=_order):
        entries.append(EntryData(
            entity=[EntryData.EntityData(entity_type=kind, entity_name=name) for kind, name in entity],
            values=[EntryData.ValueData(key=k, value=v) for k, v in sorted(quotas[entity].items())]))
    return DescribeClientQuotasResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None,
                                        entries=entries)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(48)
def _describe_client_quotas_error(request: DescribeClientQuotasRequest, version: int, code: int) -> DescribeClientQuotasResponse:
    # Kafka: the top-level code, entries null; ApiError.fromThrowable leaves the message null for
    # UNKNOWN_SERVER_ERROR and for an exception carrying its error's default message.
    return DescribeClientQuotasResponse(error_code=code, error_message=None, entries=None)
