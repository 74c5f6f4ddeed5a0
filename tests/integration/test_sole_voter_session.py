"""A formatted combined broker+controller node, the only voter of a static quorum, with a
CONTROLLER listener (Kafka's single-node KRaft setup: ``kafka-storage.sh format`` and
``process.roles=broker,controller``): its broker registers itself in-process and sends no
BrokerHeartbeat, so the controller's session timer renews that broker's session instead of
fencing it once ``broker.session.timeout.ms`` has passed (issue 22: Kafka's admin tools then found
no broker in the Metadata answer, "Timed out waiting for a node assignment")."""

from __future__ import annotations

import io

from wire import Wire

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.controller.cluster_runtime import fence_stale_brokers, now_ms
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread


def test_the_sole_voters_own_broker_stays_unfenced_past_its_session_timeout(tmp_path):
    port, cport = free_ports(2)
    data = tmp_path / "data"
    config = {
        "process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}", "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT", "log.dirs": str(data),
    }
    format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
    with BrokerThread(config, data_dir=str(data)) as b:
        assert b.broker is not None and b.broker.registered_locally
        # the controller's timer, a minute on (far past broker.session.timeout.ms, 9 s)
        assert b.call(fence_stale_brokers, b.broker, now_ms() + 60_000) == 0
        assert not b.broker.image.brokers[1].fenced
        w = Wire(f"127.0.0.1:{port}")
        try:
            meta = w.call(3, 12, topics=None)
            assert [(x.node_id, x.port) for x in meta.brokers] == [(1, port)]
        finally:
            w.close()
