"""Each API handler sees only the services it declares, and the broker provides them (issue 14).

A handler is typed on ``RequestContext[S]`` (``HandlerContext[S]`` on the controller listener), ``S``
a small Protocol of the services it uses. kbroker/wiring/handler_services.py lists every handler as
one given a context on the Broker, which mypy accepts only when the Broker provides each handler's
services. Here: those lists cover the registry, a Broker has every member of every handler's
services at run time, and mypy refuses a handler that reaches a service it did not declare, takes
another API's request or answers another API's response.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Protocol

import pytest

from kbroker.api import load_handlers
from kbroker.api.registry import BROKER_LISTENER, CONTROLLER_LISTENER, handlers_for
from kbroker.broker import Broker
from kbroker.config import BrokerConfig
from kbroker.wiring import handler_services
from kbroker_protocol.messages import REQUESTS, RESPONSES

ROOT = Path(__file__).resolve().parents[2]
_CONTEXT = re.compile(r"^(RequestContext|HandlerContext)\[(\w+)\]$")
# Protocols a handler must not be typed on: the broker as a whole
_WHOLE = {"BrokerServices", "ControlledBroker", "ServerHost", "Broker", "Any", "object"}


def _registered(listener: str) -> dict[Any, int]:
    load_handlers()
    return {entry.handler: key for key, entry in handlers_for(listener).items()}


def _services(fn: Any) -> type:
    """The Protocol ``fn``'s context is typed on (its first parameter's annotation)."""
    first = next(iter(inspect.signature(fn).parameters.values()))
    match = _CONTEXT.match(str(first.annotation))
    assert match, f"{fn.__module__}.{fn.__name__}: context typed {first.annotation!r}"
    assert match[2] not in _WHOLE, f"{fn.__module__}.{fn.__name__} sees the whole broker ({match[2]})"
    services = fn.__globals__[match[2]]
    assert getattr(services, "_is_protocol", False), f"{match[2]} is not a Protocol"
    return services


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        names.update(getattr(cls, "__annotations__", {}))
        names.update(n for n in vars(cls) if not n.startswith("_"))
    return names


def _all_handlers() -> list[Any]:
    return [*handler_services.BROKER_LISTENER_HANDLERS, *handler_services.CONTROLLER_LISTENER_HANDLERS,
            *handler_services.ENVELOPE_HANDLERS]


def test_the_composition_root_lists_every_registered_handler() -> None:
    broker_side, controller_side = _registered(BROKER_LISTENER), _registered(CONTROLLER_LISTENER)
    assert set(handler_services.BROKER_LISTENER_HANDLERS) == set(broker_side)
    assert set(handler_services.CONTROLLER_LISTENER_HANDLERS) == set(controller_side)
    assert len(broker_side) > 70 and len(controller_side) >= 7


def test_each_handler_takes_its_apis_request() -> None:
    for listener in (BROKER_LISTENER, CONTROLLER_LISTENER):
        for fn, key in _registered(listener).items():
            request = list(inspect.signature(fn).parameters.values())[1]
            assert request.annotation == REQUESTS[key].__name__, (fn.__name__, request.annotation)
            assert RESPONSES[key].__name__ in str(inspect.signature(fn).return_annotation), fn.__name__


def test_the_broker_has_every_service_of_every_handler() -> None:
    broker = Broker(BrokerConfig({"node.id": "1"}))
    missing = {}
    for fn in _all_handlers():
        services = _services(fn)
        absent = sorted(name for name in _members(services)
                        if inspect.getattr_static(broker, name, missing) is missing)
        if absent:
            missing[f"{fn.__module__}.{fn.__name__}"] = absent
    assert missing == {}


def test_handlers_see_small_protocols() -> None:
    """Only Envelope sees the node the controller operations run in: it runs whichever forwarded
    operation its request holds, so it needs the union of what they use (``AllOperationsHost``:
    the intersection of the operations' Protocols). AllocateProducerIds and the
    reassignments on the controller listener see only what their operation uses (and, for
    AllocateProducerIds, the authorizer of its CLUSTER_ACTION check); every other
    handler's services are fewer, and the group APIs share one Protocol."""
    from kbroker.controller.operations.local import AllOperationsHost

    broadest = len(_members(AllOperationsHost))
    sizes = {fn.__name__: len(_members(_services(fn))) for fn in _all_handlers()}
    assert sizes["handle_envelope"] == broadest == max(sizes.values())  # (Fetch's services are as many)
    assert sorted(fn.__name__ for fn in _all_handlers() if AllOperationsHost in _services(fn).__mro__) == [
        "handle_envelope"]
    narrowed = {fn.__name__: _services(fn).__name__ for fn in _all_handlers() if fn.__name__ in (
        "handle_allocate_producer_ids", "handle_alter_partition_reassignments_on_controller",
        "handle_list_partition_reassignments_on_controller")}
    assert narrowed == {"handle_allocate_producer_ids": "ProducerIdAllocator",
                        "handle_alter_partition_reassignments_on_controller": "ReassignmentHost",
                        "handle_list_partition_reassignments_on_controller": "ReassignmentListing"}
    assert all(sizes[name] <= 3 for name in narrowed)
    assert sorted(sizes.values())[len(sizes) // 2] <= 4  # the median handler uses a few services
    groups = {_services(fn) for fn in handler_services.BROKER_LISTENER_HANDLERS
              if fn.__module__.rsplit(".", 1)[1] in ("heartbeat", "join_group", "sync_group", "leave_group")}
    assert [g.__name__ for g in groups] == ["GroupServices"]


_SNIPPETS = {
    "undeclared_service": ("""
        @api(HeartbeatRequest, HeartbeatResponse, 0, 4)
        def handle(ctx: RequestContext[GroupServices], request: HeartbeatRequest) -> HeartbeatResponse:
            ctx.broker.replica_manager.partition("t", 0)
            return HeartbeatResponse()
    """, '"GroupServices" has no attribute "replica_manager"'),
    "other_request": ("""
        @api(HeartbeatRequest, HeartbeatResponse, 0, 4)
        def handle(ctx: RequestContext[GroupServices], request: SyncGroupRequest) -> HeartbeatResponse:
            return HeartbeatResponse()
    """, "SyncGroupRequest], HeartbeatResponse]\"; expected"),
    "other_response": ("""
        @api(HeartbeatRequest, HeartbeatResponse, 0, 4)
        async def handle(ctx: RequestContext[GroupServices], request: HeartbeatRequest) -> SyncGroupResponse:
            return SyncGroupResponse()
    """, "Coroutine[Any, Any, SyncGroupResponse]]\"; expected"),
    "declared": ("""
        @api(HeartbeatRequest, HeartbeatResponse, 0, 4)
        async def handle(ctx: RequestContext[GroupServices], request: HeartbeatRequest) -> HeartbeatResponse:
            assert ctx.broker.group_coordinator is not None and ctx.broker.authorizer is not None
            return HeartbeatResponse()
    """, None),
}
_HEADER = """
    from __future__ import annotations

    from kbroker.api.context import RequestContext
    from kbroker.api.registry import api
    from kbroker.api.services import GroupServices
    from kbroker_protocol.messages.heartbeat import HeartbeatRequest, HeartbeatResponse
    from kbroker_protocol.messages.sync_group import SyncGroupRequest, SyncGroupResponse
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("handler_snippets")
    for name, (body, _expected) in _SNIPPETS.items():
        (folder / f"snippet_{name}.py").write_text(textwrap.dedent(_HEADER) + textwrap.dedent(body))
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".cache" / "mypy-snippets"),
         "--config-file", str(ROOT / "pyproject.toml"), "--strict", "--follow-imports=silent",
         "--no-error-summary", *sorted(str(p) for p in folder.iterdir())],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = out.stdout.splitlines()
    return {name: "\n".join(line for line in lines if f"snippet_{name}.py:" in line) for name in _SNIPPETS}


@pytest.mark.parametrize("name", sorted(_SNIPPETS))
def test_mypy_holds_a_handler_to_its_signature(mypy_output: dict[str, str], name: str) -> None:
    expected = _SNIPPETS[name][1]
    if expected is None:
        assert mypy_output[name] == ""
    else:
        assert expected in mypy_output[name], mypy_output[name]
