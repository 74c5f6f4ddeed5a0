"""Each Protocol declares only what its functions use (issue 14): no Protocol of the operations, the API
layer or topic creation declares a member that the functions typed on it never use, directly or by
handing the node to a function typed on another Protocol; each handler's Protocol (and each function's
of the controller-listener modules: ``kbroker.api.controller_apis``, ``controller_registration``,
``raft_voters``, ``envelope``) is exactly what it uses, itself or through the functions it hands the
node to. The walk of the source is operation_uses_walk.py; test_operation_hosts.py checks the
operations' Protocols against the node.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import ModuleType

from kbroker.controller.operations.local import OPERATIONS, AllOperationsHost
from kbroker.wiring import handler_services
from tests.unit.operation_uses_walk import _HANDLER_MODULES, _effective, _index, _members, _uses


def test_no_protocol_declares_what_its_functions_never_use() -> None:
    """A Protocol's every member is used by some function typed on it (read, or handed on to a
    function that declares it), in the operations' modules, the API layer's (every handler's
    services) and topic creation's; and every function handing the node on hands it to one
    whose Protocol is known."""
    used: dict[type, set[str]] = {}
    unresolved: list[str] = []
    for (module, _name), uses in _index().items():
        for use in uses:
            used.setdefault(use.protocol, set()).update(use.used)
            unresolved += [f"{module}.{call}" for call in use.unresolved]
    assert unresolved == []
    # (what runs any operation holds their intersection: test_the_node_of_the_operations_is_...)
    del used[AllOperationsHost]
    unused = {p.__qualname__: sorted(_members(p) - found) for p, found in used.items() if _members(p) - found}
    assert unused == {}
    assert len(used) > 70  # (the walk found the Protocols)


def test_each_handler_and_operation_declares_exactly_what_it_uses() -> None:
    """Every API handler (``kbroker.wiring.handler_services`` lists them), every operation of the
    controller and every function of the controller-listener modules (their ``install``,
    Envelope): its Protocol is exactly what it uses, itself or through the functions it hands the
    node to, so that its signature lists its dependencies (``install`` the union of the handlers'
    it adds; Envelope's, every operation's, ``AllOperationsHost``)."""
    handlers = {(fn.__module__, fn.__name__) for fn in [
        *handler_services.BROKER_LISTENER_HANDLERS, *handler_services.CONTROLLER_LISTENER_HANDLERS,
        *handler_services.ENVELOPE_HANDLERS, *OPERATIONS.values()]}
    modules = {m.__name__ for m in _HANDLER_MODULES}
    index = _index()
    checked: set[tuple[str, str]] = set()
    mismatched: dict[str, tuple[list[str], list[str]]] = {}
    for key, uses in index.items():
        if key not in handlers and key[0] not in modules:
            continue
        for use in uses:
            checked.add(key)
            declared, members = _members(use.protocol), _effective(use, index)
            if declared != members:
                mismatched[".".join(key)] = (sorted(declared - members), sorted(members - declared))
    assert mismatched == {}
    assert handlers <= checked, sorted(handlers - checked)
    for name in ("controller_apis.install", "controller_apis.describe_cluster", "envelope.envelope",
                 "envelope.handle_envelope", "controller_registration.install", "raft_voters.install"):
        assert ("kbroker.api." + name).rsplit(".", 1) in [list(k) for k in checked], name


def test_the_uses_walk_sees_a_member_declared_and_never_used(tmp_path: Path) -> None:
    """The checks above are not vacuous: a member nothing uses is found, one the node is handed to
    a function for counts as used, and so does one a context's broker gives."""
    source = textwrap.dedent("""
        from __future__ import annotations

        from typing import Protocol

        from kbroker.api.context import RequestContext
        from kbroker.api.controller_listener import connection_authorized


        class Reading(Protocol):
            @property
            def config(self) -> object: ...


        class Wide(Reading, Protocol):
            @property
            def authorizer(self) -> object: ...

            @property
            def log_manager(self) -> object: ...


        def read(broker: Reading) -> object:
            return broker.config


        def handler(broker: Wide) -> object:
            return read(broker), connection_authorized(broker, 1)


        def in_context(ctx: RequestContext[Wide]) -> object:
            return read(ctx.broker)


        def handed_on(ctx: RequestContext[Wide]) -> object:
            return in_context(ctx)
    """)
    path = tmp_path / "fake_handler.py"
    path.write_text(source)
    module = ModuleType("fake_handler")
    module.__file__ = str(path)
    sys.modules["fake_handler"] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
        found = {use.name: use for use in _uses(module)}
        uses = {name: (use.protocol.__name__, use.used, use.unresolved) for name, use in found.items()}
    finally:
        del sys.modules["fake_handler"]
    assert uses["handler"] == ("Wide", {"config", "authorizer"}, [])
    assert uses["in_context"] == ("Wide", {"config"}, [])
    assert _members(module.Wide) - uses["handler"][1] == {"log_manager"}
    # handing the node to a function of the same Protocol: that function's uses, not its Protocol's
    assert uses["handed_on"] == ("Wide", set(), []) and found["handed_on"].same == {("fake_handler", "in_context")}
    index = {("fake_handler", name): [use] for name, use in found.items()}
    assert _effective(found["handed_on"], index) == {"config"}
