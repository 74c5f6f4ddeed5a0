"""UnregisterBroker (key 64), v0, on the controller listener.

Removes a broker's registration (``kafka-cluster.sh unregister``): it leaves every ISR and ELR and
an UnregisterBrokerRecord is committed, as Kafka 4.4's ReplicationControlManager.unregisterBroker;
an unknown id gets BROKER_ID_NOT_REGISTERED. Kafka's brokers also accept it and forward it to the
controller; on kbroker's broker listener it is not served until forwarding reaches it.
"""

from __future__ import annotations

from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.controller.cluster_runtime import cluster_control_for, now_ms, write


@api(64, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_unregister_broker(ctx, request):
    controller = ctx.broker.controller
    cc = cluster_control_for(ctx.broker)
    async with cc.lock:
        response, records = cc.unregister_broker(controller.image, request, now_ms())
        if records:
            await write(controller, records)
    return response
