"""The test controls' broker (one a module, with the HTTP control endpoint), the fixture that clears
faults, pause, trace and disk-full after every test, the HTTP, topic-name and Metadata helpers, and a
classic group member joined, synced and heartbeating on the wire
(moved from test_control)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


@pytest.fixture(scope="module", name="broker")
def broker_fixture():
    with BrokerThread(control=True) as b:
        yield b


@pytest.fixture(autouse=True, name="_no_faults")
def _no_faults_fixture(broker):
    yield
    broker.clear_faults()
    broker.resume()
    broker.stop_trace()
    broker.set_disk_full(False)


def http(broker, method: str, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(broker.control_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def metadata(wire: Wire, name: str):
    Req = REQUESTS[3]
    return wire.call(3, 12, topics=[Req.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False,
                     include_topic_authorized_operations=False)


# -- the manual clock ----------------------------------------------------------------------------


def _join_and_sync(wire: Wire, group: str, session_ms: int) -> tuple[str, int]:
    J, S = REQUESTS[11], REQUESTS[14]

    def join(member_id: str):
        return wire.call(J(group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=60000,
                           member_id=member_id, group_instance_id=None, protocol_type="consumer",
                           protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"m")]), 5)

    resp = join("")
    if resp.error_code == E.MEMBER_ID_REQUIRED:
        resp = join(resp.member_id)
    assert resp.error_code == E.NONE
    member, generation = resp.member_id, resp.generation_id
    sync = wire.call(S(group_id=group, generation_id=generation, member_id=member, group_instance_id=None,
                       protocol_type="consumer", protocol_name="range",
                       assignments=[S.SyncGroupRequestAssignment(member_id=member, assignment=b"a")]), 3)
    assert sync.error_code == E.NONE
    return member, generation


def _heartbeat(wire: Wire, group: str, member: str, generation: int) -> int:
    return wire.call(12, 3, group_id=group, generation_id=generation, member_id=member,
                     group_instance_id=None).error_code
