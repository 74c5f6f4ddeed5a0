"""A request whose handler raises is answered like Kafka answers it (``getErrorResponse``), and the
connection goes on serving: for every API and version kbroker serves, with the handler failing
synchronously and from its coroutine.

Each case replaces the registry entry's handler in an in-process broker, sends a request carrying
keys (topics, partitions, groups, transactions, resources ...), and checks that the response
decodes, that every error code Kafka sets in it is UNKNOWN_SERVER_ERROR (the error code fields
present at that version are found by walking Kafka's JSON spec), that the request's keys come back,
and that a following ApiVersions on the same connection is answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from wire import Wire

from kbroker.api import error_response as error_response_module
from kbroker.api import load_handlers
from kbroker.api.error_response import BUILDERS
from kbroker.api.registry import HANDLERS
from kbroker.server import connection as connection_module
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.interpreter import Schema, attr_name, field_versions, in_range, load_specs
from kbroker_protocol.messages import RESPONSES
from tests.integration.error_response_cases import CASES, USE, _q

load_handlers()

SPECS = load_specs()

# Error code fields that Kafka's getErrorResponse leaves at NONE (or that are not errors of the
# request): Metadata's top-level code (Kafka flags the requested topics instead) and CreateTopics'
# per-topic config error (a tagged field about describing configs).
KAFKA_LEAVES_NONE = {3: {"error_code"}, 19: {"topics.topic_config_error_code"}}

# Responses with no error code field Kafka fills: DescribeLogDirs before v3 (no top-level code,
# and Kafka answers with no results).
NO_ERROR_FIELD = {(35, 1), (35, 2)}


def _error_codes(schema: Schema, fields: list[dict], obj: Any, version: int, path: str = "") -> list[tuple]:
    """Every error code field of ``obj`` that exists at ``version``, as ``(path, value)``."""
    out: list[tuple] = []
    for f in fields:
        if not in_range(field_versions(f), version):
            continue
        name = attr_name(f["name"])
        value = getattr(obj, name)
        t = f["type"]
        if t == "int16" and name.endswith("error_code"):
            out.append((path + name, value))
        elif t.startswith("[]") and (t[2:][:1].isupper()) and value:
            for item in value:
                out += _error_codes(schema, schema.struct_fields(f), item, version, f"{path}{name}.")
        elif t[:1].isupper() and value is not None:
            out += _error_codes(schema, schema.struct_fields(f), value, version, f"{path}{name}.")
    return out


def _versions() -> list[tuple[int, int]]:
    # The versions served by default (a spec's unstable newest version is not, see registry.py).
    return [(key, v) for key in sorted(HANDLERS) for v in range(HANDLERS[key].min_version,
                                                                 HANDLERS[key].enabled_max(False) + 1)]


def _failing(mode: str) -> Callable:
    if mode == "sync":
        def handler(ctx: Any, body: Any) -> Any:
            raise RuntimeError("handler failure injected by the test")
        return handler

    async def coroutine(ctx: Any, body: Any) -> Any:
        for _ in range(3):
            await asyncio.sleep(0)  # yield to the loop: the failure comes from a later step
        raise RuntimeError("handler failure injected by the test")
    return coroutine


def _break(monkeypatch: pytest.MonkeyPatch, key: int, mode: str = "sync") -> None:
    monkeypatch.setitem(HANDLERS, key, dataclasses.replace(HANDLERS[key], handler=_failing(mode)))


def _api_versions_answered(wire: Wire) -> None:
    resp = wire.call(18, 3, client_software_name="error-test", client_software_version="1")
    assert resp.error_code == ErrorCode.NONE
    assert resp.api_keys


def _broker_still_serves(bootstrap: str) -> None:
    """A new connection is answered: closing one connection harmed nobody else."""
    fresh = Wire(bootstrap)
    try:
        _api_versions_answered(fresh)
    finally:
        fresh.close()


def test_every_served_api_has_a_case_and_a_builder() -> None:
    assert set(HANDLERS) <= set(CASES)
    assert set(HANDLERS) <= set(BUILDERS)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("key", "version"), _versions(), ids=lambda x: str(x))
def test_failing_handler_is_answered_like_kafka(wire, monkeypatch, key, version, mode) -> None:
    make, got, expected = CASES[key]
    _break(monkeypatch, key, mode)
    resp = wire.call(make(version), version)  # decodes with the generated codec, checks correlation id
    assert type(resp) is RESPONSES[key]

    schema = Schema(SPECS[RESPONSES[key].__name__])
    codes = _error_codes(schema, schema.spec["fields"], resp, version)
    exempt = KAFKA_LEAVES_NONE.get(key, set())
    flagged = [(path, code) for path, code in codes if path not in exempt]
    assert bool(flagged) != ((key, version) in NO_ERROR_FIELD), f"error codes of {resp!r}: {codes}"
    assert all(code == USE for _path, code in flagged), flagged
    assert all(code == ErrorCode.NONE for path, code in codes if path in exempt)
    assert got(resp, version) == expected(version)
    if "throttle_time_ms" in type(resp)._FIELDS:
        assert resp.throttle_time_ms == 0

    monkeypatch.undo()  # the failing API may be ApiVersions itself
    _api_versions_answered(wire)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_error_response_keeps_its_place_among_pipelined_requests(wire, monkeypatch, mode) -> None:
    _break(monkeypatch, 3, mode)
    wire.send(_q(18)(client_software_name="error-test", client_software_version="1"), 3)
    wire.send(_q(3)(topics=[_q(3).MetadataRequestTopic(name="t1")], allow_auto_topic_creation=False), 12)
    wire.send(_q(18)(client_software_name="error-test", client_software_version="1"), 3)
    wire.send(_q(3)(topics=[_q(3).MetadataRequestTopic(name="t2")], allow_auto_topic_creation=False), 12)
    # Wire.receive checks each correlation id against the order the requests were sent in
    first, failed, second, failed_again = (wire.receive() for _ in range(4))
    assert first.error_code == second.error_code == ErrorCode.NONE
    assert [(t.name, t.error_code) for t in failed.topics] == [("t1", USE)]
    assert [(t.name, t.error_code) for t in failed_again.topics] == [("t2", USE)]


def test_other_connections_are_unaffected(bootstrap, wire, monkeypatch) -> None:
    other = Wire(bootstrap)
    try:
        _break(monkeypatch, 16)
        assert wire.call(16, 4).error_code == USE
        _api_versions_answered(other)
        assert other.call(16, 4).error_code == USE
    finally:
        other.close()


def _closed_by_broker(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_produce_with_acks_0_closes_the_connection(bootstrap, wire, monkeypatch) -> None:
    # Kafka's ProduceRequest.getErrorResponse is null for acks=0: no response can be sent, so
    # the connection is closed (the producer learns of the failure that way).
    _break(monkeypatch, 0)
    request = _q(0)(acks=0, timeout_ms=1000, topic_data=[_q(0).TopicProduceData(name="t1", partition_data=[
        _q(0).TopicProduceData.PartitionProduceData(index=0, records=None)])])
    wire.send(request, 9)
    assert _closed_by_broker(wire.sock)
    _broker_still_serves(bootstrap)


def test_unbuildable_error_response_closes_the_connection(bootstrap, wire, monkeypatch) -> None:
    def broken_builder(api_key: int, api_version: int, request: Any, exc: BaseException) -> Any:
        raise ValueError("cannot build")

    _break(monkeypatch, 16)
    monkeypatch.setattr(connection_module, "error_response", broken_builder)
    wire.send(_q(16)(), 4)
    assert _closed_by_broker(wire.sock)
    _broker_still_serves(bootstrap)


def test_unencodable_error_response_closes_the_connection(bootstrap, wire, monkeypatch) -> None:
    _break(monkeypatch, 16)
    monkeypatch.setitem(error_response_module.BUILDERS, 16, lambda request, version, code: object())
    wire.send(_q(16)(), 4)
    assert _closed_by_broker(wire.sock)
    _broker_still_serves(bootstrap)


def test_malformed_request_still_closes_the_connection(wire) -> None:
    # protocol errors (bad bytes) are not handler failures: the connection is closed as before
    payload = struct.pack(">hhi", 3, 12, 99) + b"\xff"
    wire.sock.sendall(struct.pack(">i", len(payload)) + payload)
    assert _closed_by_broker(wire.sock)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_protocol_error_from_a_handler_still_closes_the_connection(wire, monkeypatch, mode) -> None:
    async def coroutine(ctx: Any, body: Any) -> Any:
        await asyncio.sleep(0)
        raise ProtocolError("bad bytes inside the request")

    def handler(ctx: Any, body: Any) -> Any:
        raise ProtocolError("bad bytes inside the request")

    monkeypatch.setitem(HANDLERS, 16, dataclasses.replace(HANDLERS[16], handler=handler if mode == "sync"
                                                          else coroutine))
    wire.send(_q(16)(), 4)
    assert _closed_by_broker(wire.sock)


def test_kafka_python_admin_gets_the_error(bootstrap, monkeypatch) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import UnknownError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        _break(monkeypatch, 16)
        with pytest.raises(UnknownError):
            admin.list_groups()
        monkeypatch.undo()
        assert isinstance(admin.list_groups(), list)  # the same client, served again
    finally:
        admin.close()


def test_confluent_admin_gets_the_error(bootstrap, monkeypatch) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    _break(monkeypatch, 16)
    result = admin.list_consumer_groups(request_timeout=10).result(timeout=20)
    assert [e.code() for e in result.errors] == [KafkaError.UNKNOWN]
    monkeypatch.undo()
    assert admin.list_consumer_groups(request_timeout=10).result(timeout=20).errors == []
