"""The controller client seam: handlers reach metadata only through ``ctx.broker.controller_client``;
the local client runs the controller's operations one at a time, correct when ``write`` awaits;
producer-id blocks come from AllocateProducerIds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.api.context import RequestContext
from kbroker.api.registry import HANDLERS
from kbroker.controller.operations.local import OPERATIONS, LocalControllerClient
from kbroker.metadata.client import FORWARDED_APIS, Requester
from kbroker.replication.producer_ids import ProducerIdManager, ProducerIdsUnavailable
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RESPONSES, RequestHeader
from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsResponse
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from tests.integration.waiting import async_wait_until

E = ErrorCode


@pytest.fixture
async def broker():
    embedded = EmbeddedBroker()
    await embedded.start()
    try:
        yield embedded.broker
    finally:
        await embedded.stop()


def context(broker: Any, api_key: int, version: int) -> RequestContext:
    # a SASL listener's connection: the delegation token APIs are refused on PLAINTEXT ones
    connection = SimpleNamespace(peer="10.1.2.3:5555", endpoint=None, client_software=None, principal="User:ANONYMOUS",
                                 security=SimpleNamespace(protocol="SASL_PLAINTEXT"))
    header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=7,
                           client_id="seam-test")
    return RequestContext(broker, connection, header)


async def call(broker: Any, request: Any, version: int) -> Any:
    return await HANDLERS[request.API_KEY].handler(context(broker, request.API_KEY, version), request)


def new_topic(name: str, partitions: int = 1) -> CreateTopicsRequest:
    T = CreateTopicsRequest.CreatableTopic
    return CreateTopicsRequest(topics=[T(name=name, num_partitions=partitions, replication_factor=-1,
                                         assignments=[], configs=[])], timeout_ms=5000, validate_only=False)


def test_every_forwarded_api_has_a_controller_operation():
    assert set(OPERATIONS) == set(FORWARDED_APIS)


def test_the_operations_are_all_there_without_the_api_layer():
    """The local client's table is written out in the controller's operations package: importing it
    alone (no handler module, in a fresh interpreter) gives every forwarded API its operation, and
    imports nothing of ``kbroker.api``."""
    code = textwrap.dedent("""
        import json, sys
        from kbroker.controller.operations.local import OPERATIONS
        print(json.dumps({"keys": sorted(OPERATIONS),
                          "api": sorted(m for m in sys.modules if m == "kbroker.api" or m.startswith("kbroker.api."))}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    seen = json.loads(out.stdout)
    assert seen == {"keys": sorted(FORWARDED_APIS), "api": []}


def canned(api_key: int) -> Any:
    """A response marked as the fake's: throttle time 123 (DescribeQuorum has none: error code 123)."""
    cls = RESPONSES[api_key]
    return cls(throttle_time_ms=123) if hasattr(cls(), "throttle_time_ms") else cls(error_code=123)


class RecordingClient:
    """A controller client that answers every forwarded API with a canned response."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, Requester | None]] = []

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        self.calls.append((api_key, version, requester))
        return canned(api_key)

    def __getattr__(self, name: str) -> Any:
        keys = {"create_topics": 19, "delete_topics": 20, "alter_configs": 33, "create_partitions": 37,
                "elect_leaders": 43, "incremental_alter_configs": 44, "update_features": 57}
        if name not in keys:
            raise AttributeError(name)

        async def op(request: Any, version: int, requester: Requester | None = None) -> Any:
            return await self.forward(keys[name], request, version, requester)

        return op


@pytest.mark.parametrize("api_key", sorted(FORWARDED_APIS))
async def test_handlers_answer_with_what_the_controller_client_returns(broker, api_key):
    recording = RecordingClient()
    broker.controller_client = recording
    before = broker.controller.log.log_end_offset
    entry = HANDLERS[api_key]
    version = entry.max_version
    request = REQUESTS[api_key]()
    if api_key in (33, 44):  # a request with nothing to forward is answered without the controller
        request.resources = [type(request).AlterConfigsResource(resource_type=2, resource_name="t", configs=[])]
    response = await call(broker, request, version)
    assert isinstance(response, RESPONSES[api_key]) and response == canned(api_key)
    assert [(k, v) for k, v, _ in recording.calls] == [(api_key, version)]
    requester = recording.calls[0][2]
    assert requester == Requester(client_id="seam-test", client_host="10.1.2.3")
    assert broker.controller.log.log_end_offset == before  # nothing written on this node


class SlowWrites:
    """Make the controller's `write` await (as a Raft commit does) until released."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self.original = controller.write
        self.waiting = 0
        self.release = asyncio.Event()
        controller.write = self.write

    async def write(self, records: list[Any], batch: bytes | None = None) -> int:
        self.waiting += 1
        await self.release.wait()
        return await self.original(records, batch)


async def test_concurrent_creations_of_one_topic_while_writes_await(broker):
    slow = SlowWrites(broker.controller)
    first = asyncio.ensure_future(call(broker, new_topic("same", 2), 7))
    await async_wait_until(lambda: slow.waiting == 1, 5, 0.001, message="the first write awaiting")
    second = asyncio.ensure_future(call(broker, new_topic("same", 3), 7))
    await asyncio.sleep(0)
    slow.release.set()
    a, b = await asyncio.gather(first, second)
    assert a.topics[0].error_code == E.NONE
    assert b.topics[0].error_code == E.TOPIC_ALREADY_EXISTS
    assert len(broker.image.topic("same").partitions) == 2


async def test_concurrent_partition_increases_are_serialized_while_writes_await(broker):
    assert (await call(broker, new_topic("grow", 1), 7)).topics[0].error_code == E.NONE
    slow = SlowWrites(broker.controller)
    T = CreatePartitionsRequest.CreatePartitionsTopic

    def grow(count: int) -> CreatePartitionsRequest:
        return CreatePartitionsRequest(topics=[T(name="grow", count=count, assignments=None)], timeout_ms=5000,
                                       validate_only=False)

    first = asyncio.ensure_future(call(broker, grow(3), 3))
    await async_wait_until(lambda: slow.waiting == 1, 5, 0.001, message="the first write awaiting")
    second = asyncio.ensure_future(call(broker, grow(3), 3))
    await asyncio.sleep(0)
    slow.release.set()
    a, b = await asyncio.gather(first, second)
    assert a.results[0].error_code == E.NONE
    # the second saw the first's partitions: no second set of partitions 1 and 2
    assert b.results[0].error_code == E.INVALID_PARTITIONS
    assert b.results[0].error_message == "Topic already has 3 partition(s)."
    assert sorted(broker.image.topic("grow").partitions) == [0, 1, 2]


async def test_concurrent_changes_of_one_config_both_apply_while_writes_await(broker):
    assert (await call(broker, new_topic("conf"), 7)).topics[0].error_code == E.NONE
    slow = SlowWrites(broker.controller)
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    C = R.AlterableConfig

    def change(operation: int, value: str) -> IncrementalAlterConfigsRequest:
        return IncrementalAlterConfigsRequest(validate_only=False, resources=[
            R(resource_type=2, resource_name="conf",
              configs=[C(name="cleanup.policy", config_operation=operation, value=value)])])

    first = asyncio.ensure_future(call(broker, change(2, "compact"), 1))  # APPEND: delete,compact
    await async_wait_until(lambda: slow.waiting == 1, 5, 0.001, message="the first write awaiting")
    second = asyncio.ensure_future(call(broker, change(3, "delete"), 1))  # SUBTRACT, from the first's result
    await asyncio.sleep(0)
    slow.release.set()
    for response in await asyncio.gather(first, second):
        assert response.responses[0].error_code == E.NONE
    assert broker.image.topic("conf").configs["cleanup.policy"] == "compact"


async def test_a_config_request_naming_only_other_brokers_is_answered_without_the_controller(broker):
    recording = RecordingClient()
    broker.controller_client = recording
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    request = IncrementalAlterConfigsRequest(validate_only=False, resources=[
        R(resource_type=4, resource_name="7", configs=[]), R(resource_type=4, resource_name="x", configs=[])])
    response = await call(broker, request, 1)
    assert recording.calls == []
    assert [(r.error_code, r.error_message) for r in response.responses] == [
        (E.INVALID_REQUEST, "Unexpected broker id, expected 1 or empty string, but received 7"),
        (E.INVALID_REQUEST, "Broker id must be an integer, but it is: x")]


async def test_local_allocate_producer_ids_checks_the_broker_epoch(broker):
    client = LocalControllerClient(broker)
    epoch = broker.image.brokers[broker.node_id].epoch
    first = await client.allocate_producer_ids(broker.node_id, epoch)
    second = await client.allocate_producer_ids(broker.node_id, epoch)
    assert first.error_code == second.error_code == E.NONE
    assert second.producer_id_start == first.producer_id_start + first.producer_id_len
    before = broker.controller.log.log_end_offset
    stale = await client.allocate_producer_ids(broker.node_id, epoch + 1)
    assert stale.error_code == E.STALE_BROKER_EPOCH
    assert stale.producer_id_len == 0
    unknown = await client.allocate_producer_ids(99, 0)
    assert unknown.error_code == E.STALE_BROKER_EPOCH
    assert broker.controller.log.log_end_offset == before  # refusals write nothing


class FakeBlocks:
    """A controller client handing out producer-id blocks of 10 (or an error)."""

    def __init__(self) -> None:
        self.next = 0
        self.calls: list[tuple[int, int]] = []
        self.error = E.NONE
        self.gate: asyncio.Event | None = None

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> AllocateProducerIdsResponse:
        self.calls.append((broker_id, broker_epoch))
        if self.gate is not None:
            await self.gate.wait()
        if self.error != E.NONE:
            return AllocateProducerIdsResponse(error_code=self.error, producer_id_start=-1, producer_id_len=0)
        start, self.next = self.next, self.next + 10
        return AllocateProducerIdsResponse(error_code=E.NONE, producer_id_start=start, producer_id_len=10)


def fake_host(client: FakeBlocks) -> Any:
    image = SimpleNamespace(brokers={4: SimpleNamespace(epoch=42)})
    return SimpleNamespace(node_id=4, image=image, controller_client=client)


async def test_producer_ids_come_from_blocks_prefetched_at_90_percent():
    blocks = FakeBlocks()
    manager = ProducerIdManager(fake_host(blocks))
    with pytest.raises(ProducerIdsUnavailable):
        manager.allocate()  # no block yet: COORDINATOR_LOAD_IN_PROGRESS, and a block is asked for
    await manager.ensure()
    assert blocks.calls == [(4, 42)]
    ids = [manager.allocate() for _ in range(8)]
    assert ids == list(range(8)) and len(blocks.calls) == 1
    manager.allocate()  # the 9th of 10: the next block is asked for
    await async_wait_until(lambda: manager._fetching is None, 5, 0.001, message="the next block fetched")
    assert len(blocks.calls) == 2
    assert [manager.allocate() for _ in range(3)] == [9, 10, 11]
    assert len(blocks.calls) == 2


async def test_producer_ids_unavailable_when_the_controller_refuses():
    blocks = FakeBlocks()
    blocks.error = E.STALE_BROKER_EPOCH
    manager = ProducerIdManager(fake_host(blocks))
    with pytest.raises(ProducerIdsUnavailable) as caught:
        await manager.ensure()
    assert caught.value.code == E.COORDINATOR_LOAD_IN_PROGRESS
    blocks.error = E.NONE
    await manager.ensure()
    assert manager.allocate() == 0


async def test_concurrent_waiters_share_one_block_request():
    blocks = FakeBlocks()
    blocks.gate = asyncio.Event()
    manager = ProducerIdManager(fake_host(blocks))
    waiters = [asyncio.ensure_future(manager.ensure()) for _ in range(5)]
    await async_wait_until(lambda: len(blocks.calls) == 1, 5, 0.001, message="one AllocateProducerIds sent")
    blocks.gate.set()
    await asyncio.gather(*waiters)
    assert len(blocks.calls) == 1
    assert sorted(manager.allocate() for _ in range(5)) == [0, 1, 2, 3, 4]


async def test_init_producer_id_hands_out_ids_from_the_controllers_blocks(broker):
    from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest

    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000, producer_id=-1,
                                    producer_epoch=-1)
    first = await call(broker, request, 5)
    second = await call(broker, request, 5)
    assert first.error_code == second.error_code == E.NONE
    assert second.producer_id == first.producer_id + 1
    assert broker.image.next_producer_id > first.producer_id  # the block is in the metadata log


async def test_init_producer_id_answers_coordinator_load_in_progress_without_a_block(broker):
    from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest

    broker.producer_ids = ProducerIdManager(fake_host(FakeBlocks()))
    broker.producer_ids.broker.controller_client.error = E.NOT_CONTROLLER
    response = await call(broker, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                                        producer_id=-1, producer_epoch=-1), 5)
    assert response.error_code == E.COORDINATOR_LOAD_IN_PROGRESS and response.producer_id == -1


class CreationRequests:
    """A controller client recording CreateTopics, answered when ``gate`` opens."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.gate = asyncio.Event()

    async def create_topics(self, request: Any, version: int, requester: Requester | None = None) -> Any:
        self.requests.append(request)
        await self.gate.wait()
        return RESPONSES[19](topics=[RESPONSES[19].CreatableTopicResult(name=t.name, error_code=E.NONE)
                                     for t in request.topics])


async def test_topics_a_broker_creates_go_to_the_active_controller_when_it_is_elsewhere(broker, monkeypatch):
    """create_topic (the share groups' dead-letter topics) and ensure_internal_topic (the
    coordinators') send a CreateTopics through the controller client and write nothing here."""
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import _INTERNAL, create_topic, ensure_internal_topic

    monkeypatch.setattr(broker.controller, "is_active", lambda: False)
    remote = CreationRequests()
    broker.controller_client = remote
    creation = asyncio.ensure_future(create_topic(broker, NewTopic("dlq.auto", configs={"x": "y"})))
    await async_wait_until(lambda: len(remote.requests) == 1, 5, 0.001, message="the first CreateTopics sent")
    sent = remote.requests[0].topics[0]
    assert (sent.name, sent.num_partitions, sent.replication_factor) == ("dlq.auto", -1, -1)
    assert [(c.name, c.value) for c in sent.configs] == [("x", "y")]
    assert not creation.done()  # awaits the controller's answer
    assert broker.image.topic("dlq.auto") is None  # nothing written here
    assert ensure_internal_topic(broker, "__consumer_offsets", 3, {"cleanup.policy": "compact"}) is False
    assert ensure_internal_topic(broker, "__consumer_offsets", 3, {"cleanup.policy": "compact"}) is False
    await async_wait_until(lambda: len(remote.requests) == 2, 5, 0.001, message="the second CreateTopics sent")
    offsets = remote.requests[1].topics[0]
    assert (offsets.num_partitions, [(c.name, c.value) for c in offsets.configs]) == (3, [("cleanup.policy",
                                                                                           "compact")])
    remote.gate.set()
    result = await creation
    assert (result.name, result.error) == ("dlq.auto", E.NONE)
    await async_wait_until(lambda: not _INTERNAL.get(broker), 5, 0.001, message="the creations answered")
    assert len(remote.requests) == 2  # the internal topic asked once while under way
    assert broker.image.topic("dlq.auto") is None and broker.image.topic("__consumer_offsets") is None


async def test_create_topic_answers_the_controllers_answer(broker):
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import create_topic

    refused = await create_topic(broker, NewTopic("__cluster_metadata"))
    assert refused.error == E.INVALID_REQUEST and "prohibited" in (refused.message or "")
    created = await create_topic(broker, NewTopic("made", 2, 1))
    assert created.error == E.NONE and len(broker.image.topic("made").partitions) == 2  # applied here
    assert (await create_topic(broker, NewTopic("made", 2, 1))).error == E.TOPIC_ALREADY_EXISTS
