"""The group protocol tests' broker (short session bounds, no initial rebalance delay; one a module),
its wire, group and topic fixtures, a v5 OffsetFetch and the coordinator's group of an id (moved
from test_groups_protocol)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from tests.integration.groups_protocol_helpers import (
    create_topic,
)

GROUP_CONFIG = {
    "group.min.session.timeout.ms": "500",
    "group.max.session.timeout.ms": "60000",
    "group.initial.rebalance.delay.ms": "0",
}

_ids = itertools.count(1)


def fetch_v5(wire, group, topic, partitions):
    resp = wire.call(OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=partitions)]), 5)
    assert resp.error_code == ErrorCode.NONE
    return {p.partition_index: (p.committed_offset, p.metadata, p.error_code) for t in resp.topics
            for p in t.partitions}


def group_of(broker, group_id):
    return broker.call(lambda: broker.broker.group_coordinator.groups.get(group_id))


@pytest.fixture(scope="module", name="gbroker")
def gbroker_fixture():
    with BrokerThread(config=GROUP_CONFIG) as b:
        yield b


@pytest.fixture(name="wire")
def wire_fixture(gbroker):
    w = Wire(gbroker.bootstrap_servers)
    yield w
    w.close()


@pytest.fixture(name="group")
def group_fixture() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture(name="topic")
def topic_fixture(gbroker) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    create_topic(gbroker, name, 4)
    return name
