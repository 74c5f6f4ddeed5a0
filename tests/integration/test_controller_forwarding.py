"""Forwarding to the controller, in-process with two kbroker nodes (no Raft).

Node A plays the active controller and serves Envelope and AllocateProducerIds (registered here for
the test: the composition root puts them on the controller listener). Node B's handlers use a
``RemoteControllerClient`` pointed at A, so a client's admin request sent to B is applied by A and
answered with A's result. A fake controller answering NOT_CONTROLLER, a proxy that loses A's
response, and an unknown controller exercise the channel's retries and deadline.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import pytest

from kbroker.api.envelope import error_response_for, handle_envelope
from kbroker.metadata.client import ControllerUnavailable, Requester
from kbroker.metadata.remote import serialize_principal
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.api import decode_request, decode_response, encode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsRequest
from kbroker_protocol.messages.api_versions import ApiVersionsResponse
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.delete_topics import DeleteTopicsRequest
from kbroker_protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.messages.produce import ProduceRequest
from tests.integration.controller_forwarding_helpers import address, forward_to, send

E = ErrorCode
_SIZE = struct.Struct(">i")


async def send_once(node: EmbeddedBroker, request: Any, version: int = 0) -> Any:
    """One request to ``node`` and its answer, without the channel's retries."""
    reader, writer = await asyncio.open_connection(*address(node))
    try:
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version, correlation_id=5,
                               client_id="raw")
        payload = encode_request(header, request)
        writer.write(_SIZE.pack(len(payload)) + payload)
        (size,) = _SIZE.unpack(await reader.readexactly(4))
        _header, body = decode_response(await reader.readexactly(size), request.API_KEY, version)
        return body
    finally:
        writer.close()


def new_topic(name: str, partitions: int = 1) -> CreateTopicsRequest:
    T = CreateTopicsRequest.CreatableTopic
    return CreateTopicsRequest(topics=[T(name=name, num_partitions=partitions, replication_factor=-1,
                                         assignments=[], configs=[])], timeout_ms=5000, validate_only=False)


def topic_records(node: EmbeddedBroker, name: str) -> list[Any]:
    seen: list[Any] = []
    node.broker.image.listeners.append(
        lambda record: seen.append(record) if type(record).__name__ == "TopicRecord" and record.name == name
        else None)
    return seen


async def test_admin_requests_sent_to_b_are_applied_by_a(nodes):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})

    created = await send(b, 19, new_topic("forwarded", 2))
    result = created.topics[0]
    assert result.error_code == E.NONE and result.num_partitions == 2
    topic = a.broker.image.topic("forwarded")
    assert topic is not None and result.topic_id == topic.topic_id
    assert b.broker.image.topic("forwarded") is None  # B learns it from the metadata log (not here)

    again = await send(b, 19, new_topic("forwarded", 2))
    assert again.topics[0].error_code == E.TOPIC_ALREADY_EXISTS
    assert again.topics[0].error_message == "Topic 'forwarded' already exists."

    T = CreatePartitionsRequest.CreatePartitionsTopic
    grown = await send(b, 37, CreatePartitionsRequest(topics=[T(name="forwarded", count=3, assignments=None)],
                                                      timeout_ms=5000, validate_only=False))
    assert grown.results[0].error_code == E.NONE
    assert sorted(a.broker.image.topic("forwarded").partitions) == [0, 1, 2]

    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    C = R.AlterableConfig
    altered = await send(b, 44, IncrementalAlterConfigsRequest(validate_only=False, resources=[
        R(resource_type=2, resource_name="forwarded", configs=[C(name="retention.ms", config_operation=0,
                                                                  value="3600000")])]))
    assert altered.responses[0].error_code == E.NONE
    assert a.broker.image.topic("forwarded").configs["retention.ms"] == "3600000"
    bad = await send(b, 44, IncrementalAlterConfigsRequest(validate_only=False, resources=[
        R(resource_type=2, resource_name="forwarded", configs=[C(name="no.such.key", config_operation=0,
                                                                  value="1")])]))
    assert bad.responses[0].error_code == E.INVALID_CONFIG

    T6 = DeleteTopicsRequest.DeleteTopicState
    deleted = await send(b, 20, DeleteTopicsRequest(topics=[T6(name="forwarded")], topic_names=[], timeout_ms=5000))
    assert deleted.responses[0].error_code == E.NONE
    assert a.broker.image.topic("forwarded") is None


async def test_producer_id_blocks_are_asked_of_a_directly(nodes):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})
    client = b.broker.controller_client
    epoch = a.broker.image.brokers[1].epoch
    block = await client.allocate_producer_ids(1, epoch)
    assert block.error_code == E.NONE and block.producer_id_len > 0
    assert a.broker.image.next_producer_id == block.producer_id_start + block.producer_id_len
    # B (node 2) is not registered with A's controller: A refuses, so B's InitProducerId cannot
    # hand out an id and says so (as Kafka's brokers do while no block is available)
    refused = await client.allocate_producer_ids(2, 0)
    assert refused.error_code == E.STALE_BROKER_EPOCH
    from kbroker.replication.producer_ids import ProducerIdManager

    b.broker.producer_ids = ProducerIdManager(b.broker)
    answer = await send(b, 22, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                                     producer_id=-1, producer_epoch=-1))
    assert answer.error_code == E.COORDINATOR_LOAD_IN_PROGRESS


class FakeController:
    """A node that answers ApiVersions, and NOT_CONTROLLER to every Envelope (then calls ``after``)."""

    def __init__(self, after: Callable[[], None], envelope_versions: tuple[int, int] | None = (0, 0)) -> None:
        self.after = after
        self.envelope_versions = envelope_versions
        self.envelopes = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = _SIZE.unpack(await reader.readexactly(4))
                header, _body = decode_request(await reader.readexactly(size))
                key = header.request_api_key
                if key == 18:
                    V = ApiVersionsResponse.ApiVersion
                    keys = [V(api_key=18, min_version=0, max_version=4)]
                    if self.envelope_versions is not None:
                        lo, hi = self.envelope_versions
                        keys.append(V(api_key=58, min_version=lo, max_version=hi))
                    body = ApiVersionsResponse(error_code=0, api_keys=keys)
                else:
                    self.envelopes += 1
                    body = EnvelopeResponse(response_data=None, error_code=E.NOT_CONTROLLER)
                    self.after()
                payload = b"".join(bytes(p) for p in encode_response(header.correlation_id, key,
                                                                       header.request_api_version, body))
                writer.write(_SIZE.pack(len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def test_not_controller_then_the_new_active_controller(nodes):
    a, b = nodes
    active = [7]
    fake = FakeController(after=lambda: active.__setitem__(0, 1))  # leadership moved to node 1
    fake_address = await fake.start()
    try:
        forward_to(b, lambda: active[0], {7: fake_address, 1: address(a)})
        created = await send(b, 19, new_topic("moved"))
        assert created.topics[0].error_code == E.NONE
        assert fake.envelopes == 1
        assert a.broker.image.topic("moved") is not None
    finally:
        fake.close()


async def test_a_controller_without_envelope_answers_unsupported_version(nodes):
    a, b = nodes
    fake = FakeController(after=lambda: None, envelope_versions=None)
    fake_address = await fake.start()
    try:
        forward_to(b, lambda: 7, {7: fake_address})
        answer = await send(b, 19, new_topic("unsent"))
    finally:
        fake.close()
    assert answer.topics[0].error_code == E.UNSUPPORTED_VERSION
    assert fake.envelopes == 0


class LosingProxy:
    """A TCP proxy to ``target`` that, the first time it sees an Envelope response, drops it and
    closes the connection (the controller applied the request; its answer is lost)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.lost = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        keys: dict[int, int] = {}
        try:
            while True:
                (size,) = _SIZE.unpack(await reader.readexactly(4))
                frame = await reader.readexactly(size)
                header, _ = decode_request(frame)
                keys[header.correlation_id] = header.request_api_key
                up_writer.write(_SIZE.pack(size) + frame)
                await up_writer.drain()
                (rsize,) = _SIZE.unpack(await up_reader.readexactly(4))
                response = await up_reader.readexactly(rsize)
                (correlation_id,) = _SIZE.unpack_from(response, 0)
                if keys[correlation_id] == 58 and self.lost == 0:
                    self.lost += 1
                    return  # the answer never arrives
                writer.write(_SIZE.pack(rsize) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            up_writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def test_a_lost_response_is_retried_and_applied_once(nodes):
    a, b = nodes
    proxy = LosingProxy(address(a))
    proxy_address = await proxy.start()
    created = topic_records(a, "once")
    try:
        forward_to(b, lambda: 1, {1: proxy_address})
        answer = await send(b, 19, new_topic("once", 2))
    finally:
        proxy.close()
    assert proxy.lost == 1
    # The retry reached the controller, which had applied the first attempt: the topic exists once
    # and the answer is the controller's to the repeat (documented in kbroker/metadata/channel.py)
    assert answer.topics[0].error_code == E.TOPIC_ALREADY_EXISTS
    assert len(created) == 1
    assert sorted(a.broker.image.topic("once").partitions) == [0, 1]


async def test_no_controller_in_time_answers_request_timed_out(nodes):
    a, b = nodes
    channel = forward_to(b, lambda: None, {1: address(a)}, timeout_ms=200)
    answer = await send(b, 19, new_topic("nowhere"))
    assert answer.topics[0].error_code == E.REQUEST_TIMED_OUT
    assert a.broker.image.topic("nowhere") is None
    with pytest.raises(ControllerUnavailable):
        await channel.send(67, AllocateProducerIdsRequest(broker_id=2, broker_epoch=0))


def envelope(inner: Any, version: int, principal: bytes | None = None, client: bytes = b"\x7f\x00\x00\x01") -> Any:
    header = RequestHeader(request_api_key=inner.API_KEY, request_api_version=version, correlation_id=99,
                           client_id="inner")
    return EnvelopeRequest(request_data=encode_request(header, inner),
                           request_principal=serialize_principal("User", "alice") if principal is None else principal,
                           client_host_address=client)


async def test_envelope_errors(nodes, monkeypatch):
    a, _b = nodes
    bad_principal = await send_once(a, envelope(new_topic("x"), 7, principal=b"\x00\x07junk"))
    assert bad_principal.error_code == E.PRINCIPAL_DESERIALIZATION_FAILURE and bad_principal.response_data is None
    bad_address = await send_once(a, envelope(new_topic("x"), 7, client=b"\x01\x02\x03"))
    assert bad_address.error_code == E.INVALID_REQUEST
    produce = await send_once(a, envelope(ProduceRequest(acks=1, timeout_ms=1000, topic_data=[]), 9))
    assert produce.error_code == E.INVALID_REQUEST
    garbage = EnvelopeRequest(request_data=b"\x00\x13\x00\x07\x00", request_principal=serialize_principal("User", "a"),
                              client_host_address=b"\x7f\x00\x00\x01")
    assert (await send_once(a, garbage)).error_code == E.INVALID_REQUEST
    assert a.broker.image.topic("x") is None
    monkeypatch.setattr(a.broker.controller, "is_active", lambda: False)
    inactive = await send_once(a, envelope(new_topic("x"), 7))
    assert inactive.error_code == E.NOT_CONTROLLER and a.broker.image.topic("x") is None
    ids = await send_once(a, AllocateProducerIdsRequest(broker_id=1, broker_epoch=a.broker.image.brokers[1].epoch))
    assert ids.error_code == E.NOT_CONTROLLER


async def test_inner_not_controller_becomes_the_envelopes_error(nodes, monkeypatch):
    a, _b = nodes
    from kbroker.controller.operations import local as client_module

    async def not_controller(host: Any, request: Any, version: int, requester: Any = None) -> Any:
        return error_response_for(19, request, version, E.NOT_CONTROLLER)

    monkeypatch.setitem(client_module.OPERATIONS, 19, not_controller)
    answer = await handle_envelope(type("Ctx", (), {"broker": a.broker, "peer": "test"})(), envelope(new_topic("y"), 7))
    assert answer.error_code == E.NOT_CONTROLLER and answer.response_data is None


async def test_leadership_lost_during_the_write_becomes_not_controller(nodes, monkeypatch):
    a, _b = nodes
    from kbroker.controller.quorum import ControllerError

    async def lost(records: Any, batch: Any = None) -> int:
        raise ControllerError(E.NOT_CONTROLLER, "no longer the leader")

    monkeypatch.setattr(a.broker.controller, "write", lost)
    answer = await send_once(a, envelope(new_topic("z"), 7))
    assert answer.error_code == E.NOT_CONTROLLER and answer.response_data is None
    assert a.broker.image.topic("z") is None


async def test_the_inner_request_carries_the_clients_identity(nodes, monkeypatch):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})
    from kbroker.controller.operations import local as client_module

    seen: list[Requester | None] = []
    original = client_module.LocalControllerClient.forward

    async def spy(self: Any, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        seen.append(requester)
        return await original(self, api_key, request, version, requester)

    monkeypatch.setattr(client_module.LocalControllerClient, "forward", spy)
    await send(b, 19, new_topic("who"))
    assert seen == [Requester(client_id="admin", client_host="127.0.0.1", principal_type="User",
                              principal_name="ANONYMOUS")]


async def test_broker_configs_are_checked_by_the_receiving_broker(nodes):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    C = R.AlterableConfig
    setting = [C(name="log.retention.ms", config_operation=0, value="7200000")]
    answer = await send(b, 44, IncrementalAlterConfigsRequest(validate_only=False, resources=[
        R(resource_type=4, resource_name="1", configs=setting),  # A's id, sent to B: B refuses it
        R(resource_type=4, resource_name="2", configs=setting),  # B's own: forwarded, A writes it
        R(resource_type=2, resource_name="missing", configs=setting),
    ]))
    assert [(r.resource_name, r.error_code) for r in answer.responses] == [
        ("1", E.INVALID_REQUEST), ("2", E.NONE), ("missing", E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert answer.responses[0].error_message == "Unexpected broker id, expected 2 or empty string, but received 1"
    assert a.broker.image.broker_configs.get("2") == {"log.retention.ms": "7200000"}
    assert "1" not in a.broker.image.broker_configs
