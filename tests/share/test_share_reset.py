"""The test controls' reset (kbroker.control) clears share groups, their state and group configs."""

from __future__ import annotations

import uuid

from share_wire import E, ShareClient, acquired, topic_id
from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS


def test_reset_clears_share_groups_state_and_group_configs():
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    with BrokerThread() as b:
        wire = Wire(b.bootstrap_servers)
        create_topic(wire, topic)
        Req = REQUESTS[44]
        wire.call(44, 1, validate_only=False, resources=[Req.AlterConfigsResource(
            resource_type=32, resource_name=group, configs=[Req.AlterConfigsResource.AlterableConfig(
                name="share.auto.offset.reset", config_operation=0, value="earliest")])])
        produce(wire, topic, 0, 2)
        c = ShareClient(wire, group)
        c.join([topic])
        assert acquired(c.fetch(topic_id(wire, topic))) == [(0, 1, 1)]
        b.reset()
        assert b.call(lambda: group not in b.broker.group_coordinator.groups)
        assert not any(b.call(lambda: list(b.broker.image.group_configs.values())))
        assert b.call(lambda: len(b.broker.share_coordinator.store.states)) == 0
        assert b.call(lambda: len(b.broker.connection_listeners)) == 1  # the old coordinator's is gone
        # Same names again: latest is the default once more.
        create_topic(wire, topic)
        produce(wire, topic, 0, 2)
        c2 = ShareClient(wire, group)
        c2.join([topic])
        first = c2.fetch(topic_id(wire, topic))
        assert first.error_code == E.NONE and first.responses == []
        wire.close()
