"""BrokerRegistration (key 62), v0-4, on the controller listener only.

A broker announces itself (id, incarnation, listeners, supported features, rack, log
directories) to the active controller, which answers its broker epoch once the
RegisterBrokerRecord is committed. The checks, errors and records are Kafka 4.4's
ClusterControlManager.registerBroker (kbroker.controller.cluster_control): INCONSISTENT_CLUSTER_ID,
DUPLICATE_BROKER_REGISTRATION while another incarnation's session is live, UNSUPPORTED_VERSION for
a finalized feature level outside the broker's range, INVALID_REGISTRATION for missing or reused
log directories or no metadata.version. v3 adds PreviousBrokerEpoch (clean-shutdown detection).
"""

from __future__ import annotations

from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.controller.cluster_runtime import cluster_control_for, next_write_offset, now_ms, write


@api(62, 0, 4, listeners=(CONTROLLER_LISTENER,))
async def handle_broker_registration(ctx, request):
    controller = ctx.broker.controller
    cc = cluster_control_for(ctx.broker)
    async with cc.lock:
        response, records = cc.register_broker(controller.image, request, ctx.api_version, now_ms(),
                                               next_write_offset(controller))
        if records:
            await write(controller, records)
    return response
