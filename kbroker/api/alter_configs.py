"""AlterConfigs (key 33, v0-2) and IncrementalAlterConfigs (key 44, v0-1).

Both change TOPIC configs and dynamic BROKER configs (this node's id, or "" for the cluster-wide
default) through ConfigRecords in the metadata log. AlterConfigs replaces a resource's whole set
of overrides; IncrementalAlterConfigs applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3, list
configs only) to single keys. ValidateOnly checks without committing. Broker keys that Kafka
marks read-only cannot be changed dynamically (INVALID_REQUEST), unknown topic keys and invalid
topic values give INVALID_CONFIG, invalid broker values INVALID_REQUEST (both as Kafka 4.4, with
its validators and messages), and a key named twice for a resource gives INVALID_REQUEST.
The handlers send the request to the controller (``ctx.broker.controller_client``), except the
BROKER resources that do not name this broker (or "" for the cluster default): those the receiving
broker answers itself, INVALID_REQUEST, as Kafka's ConfigAdminManager.preprocess (so a broker's
own configs are changed through that broker). kbroker/controller/operations/alter_configs.py
is the controller's side of both, each run alone among the
controller's operations (a resource's overrides are read and rewritten without another change
between).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kbroker.api.context import BrokerServices, RequestContext, requester
from kbroker.api.describe_configs import RESOURCE_BROKER, broker_resource_error
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.controller.operations.alter_configs import (
    CORDONED,
    AlterRequest,
    AlterResponse,
    NewConfigs,
    Reject,
    duplicates,
    incremented,
    replaced,
    validate_cordoned,
)
from kbroker.metadata.client import Requester
from kbroker.security.acls import ALTER_CONFIGS as ALTER_CONFIGS_OP
from kbroker.security.acls import config_refused as _refused
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kbroker_protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)


def _local_answers(broker: BrokerServices, request: AlterRequest, new_configs: NewConfigs | None = None,
                   ctx: RequestContext | None = None) -> dict[int, tuple[ErrorCode, str]]:
    """What the receiving broker answers itself before forwarding, as Kafka's
    ConfigAdminManager.preprocess: a BROKER resource must name this broker (or "" for the cluster
    default), and a new ``cordoned.log.dirs`` must name this broker's log dirs (its
    validateBrokerConfigChange); such a resource is never sent to the controller. Index in the
    request -> error. Kafka authorizes first: a principal without ALTER_CONFIGS on the cluster gets
    no check of its values here (its resource is forwarded and refused by the controller with
    CLUSTER_AUTHORIZATION_FAILED), so nothing about this broker's dirs is told to it."""
    out = {}
    for i, res in enumerate(request.resources):
        if res.resource_type == RESOURCE_BROKER and ctx is not None and _refused(
                ctx, ALTER_CONFIGS_OP, res.resource_type, res.resource_name) is not None:
            continue
        if res.resource_type == RESOURCE_BROKER and not duplicates(res.configs):
            problem = broker_resource_error(broker, res.resource_name)
            if problem:
                out[i] = problem
            elif new_configs is not None and any(c.name == CORDONED for c in res.configs):
                try:
                    new, changed = new_configs(broker, res, dict(broker.image.broker_configs.get(res.resource_name, {})))
                    if CORDONED in changed:
                        validate_cordoned(broker, res.resource_name, new, on_controller=False)
                except Reject as exc:
                    out[i] = (exc.code, exc.message or "")
    return out


async def _preprocess_and_forward(ctx: RequestContext, request: AlterRequest, response_cls: type[AlterResponse],
                                  send: Callable[[AlterRequest, int, Requester], Awaitable[AlterResponse]]) -> AlterResponse:
    """Answer `_local_answers` here, forward the other resources, and give the answers in the
    request's order (Kafka's ConfigAdminManager.reassembleIncrementalResponse)."""
    local = _local_answers(ctx.broker, request, replaced if response_cls is AlterConfigsResponse else incremented,
                           ctx)
    resources = request.resources
    forwarded = [res for i, res in enumerate(resources) if i not in local]
    answers = []
    if forwarded:
        request.resources = forwarded
        try:
            response = await send(request, ctx.api_version, requester(ctx))
        finally:
            request.resources = resources
        if local and response.responses is not None and len(response.responses) != len(forwarded):
            raise RuntimeError(f"the controller answered {len(response.responses)} of {len(forwarded)} resources")
        answers = list(response.responses or [])
        if not local:
            return response
    else:
        response = response_cls(throttle_time_ms=0, responses=[])
    out = []
    remote = iter(answers)
    for i, res in enumerate(resources):
        if i in local:
            code, message = local[i]
            out.append(response_cls.AlterConfigsResourceResponse(
                error_code=code, error_message=message, resource_type=res.resource_type,
                resource_name=res.resource_name))
        else:
            out.append(next(remote))
    response.responses = out
    return response


@api(33, 0, 2)
async def handle_alter_configs(ctx: RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse:
    return await _preprocess_and_forward(ctx, request, AlterConfigsResponse,
                                         ctx.broker.controller_client.alter_configs)


@api(44, 0, 1)
async def handle_incremental_alter_configs(ctx: RequestContext, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse:
    return await _preprocess_and_forward(ctx, request, IncrementalAlterConfigsResponse,
                                         ctx.broker.controller_client.incremental_alter_configs)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(33)
def _alter_configs_error(request: AlterConfigsRequest, version: int, code: int) -> AlterConfigsResponse:
    R = AlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])


@refusal(44)
def _incremental_alter_configs_error(
    request: IncrementalAlterConfigsRequest, version: int, code: int
) -> IncrementalAlterConfigsResponse:
    R = IncrementalAlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])
