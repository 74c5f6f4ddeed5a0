"""AlterClientQuotas (key 49), v0-1, as Kafka's ControllerApis and ClientQuotaControlManager.

Forwarded to the active controller (an Envelope from other brokers), which needs ALTER_CONFIGS on
the cluster (else every entry answers CLUSTER_AUTHORIZATION_FAILED) and checks each entry as Kafka
does, answering INVALID_REQUEST with Kafka's message: entity types ``user``, ``client-id`` (alone
or together) or ``ip`` (alone, a valid address or resolvable host), a name that is not empty (None
is the ``<default>`` entity), known keys for the entity (``producer_byte_rate``,
``consumer_byte_rate``, ``request_percentage``, ``controller_mutation_rate``; for ip
``connection_creation_rate``), values above 0 and integral for the LONG/INT keys, each key once per
entry and each entity once per request. Valid entries change the quotas with ClientQuotaRecords
(a value unchanged, or the removal of an unset key, writes nothing), all in one metadata batch,
unless ``validate_only``.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.metadata.client import ALTER_CLIENT_QUOTAS
from kbroker_protocol.errors import default_message
from kbroker_protocol.messages.alter_client_quotas import AlterClientQuotasRequest, AlterClientQuotasResponse


@api(49, 0, 1)
async def handle_alter_client_quotas(ctx: RequestContext, request: AlterClientQuotasRequest) -> AlterClientQuotasResponse:
    response = await ctx.broker.controller_client.forward(ALTER_CLIENT_QUOTAS, request, ctx.api_version, requester(ctx))
    return response_as(response, AlterClientQuotasResponse)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(49)
def _alter_client_quotas_error(request: AlterClientQuotasRequest, version: int, code: int) -> AlterClientQuotasResponse:
    # Kafka: one entry per entry of the request, its entity echoed, the error's message.
    R = AlterClientQuotasResponse
    return R(entries=[R.EntryData(error_code=code, error_message=default_message(code) if code else None,
                                  entity=[R.EntryData.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
                                          for e in entry.entity])
                      for entry in request.entries])
