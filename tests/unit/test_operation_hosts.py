"""Each controller operation sees only what it declares of the node, and the node provides it (issue 14).

An operation (``kbroker.controller.operations``: the controller's side of a forwarded API) is typed
on a small Protocol of its module (``create_topics.CreateTopicsHost``, ``quorum.DescribeQuorumHost``...).
``local.OPERATIONS`` is typed on ``local.AllOperationsHost``, the intersection of those Protocols
(what Envelope and the local controller client hold), so mypy accepts the table only when that
intersection includes every operation's Protocol, and the node only where it provides it. Here: every
operation declares a Protocol smaller than the intersection; the intersection is exactly the
operations' Protocols; a Broker has every member of each at run time; no operation reaches a member
of the node its Protocol does not declare (read from the source, as mypy would refuse it); and mypy
refuses the table when an operation declares something the node lacks. What each function uses,
against what its Protocol declares: test_operation_uses.py.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from kbroker.broker import Broker
from kbroker.config import BrokerConfig
from kbroker.controller.operations import delegation_tokens
from kbroker.controller.operations.local import OPERATIONS, AllOperationsHost
from kbroker.metadata.client import FORWARDED_APIS
from tests.unit.operation_uses_walk import _host_protocol, _members, _modules

ROOT = Path(__file__).resolve().parents[2]


def _first_host_param(fn: Any) -> Any:
    params = list(inspect.signature(fn).parameters.values())
    return params[1] if params and params[0].name == "self" else params[0]


def test_the_table_holds_every_forwarded_api() -> None:
    assert set(OPERATIONS) == set(FORWARDED_APIS)


def test_every_operation_declares_a_protocol_smaller_than_the_node() -> None:
    broadest = len(_members(AllOperationsHost))
    sizes = {}
    for fn in OPERATIONS.values():
        protocol = _host_protocol(fn)
        assert AllOperationsHost not in protocol.__mro__, f"{fn.__name__}: {protocol.__name__} extends AllOperationsHost"
        sizes[f"{fn.__module__}.{fn.__name__}"] = len(_members(protocol))
    assert max(sizes.values()) < broadest, sizes
    assert sorted(sizes.values())[len(sizes) // 2] <= 4, sizes  # the median operation uses a few members
    expiry = delegation_tokens.TokenExpiry.__init__
    assert str(_first_host_param(expiry).annotation) == "TokenExpiryHost"
    assert _members(delegation_tokens.TokenExpiryHost) == {"controller", "delegation_tokens"}


def test_the_node_of_the_operations_is_exactly_the_intersection_of_their_protocols() -> None:
    """``AllOperationsHost`` (what Envelope and the local controller client hold) names each
    operation's Protocol as a base, and nothing else: no member of its own, no Protocol of no
    operation."""
    protocols = {_host_protocol(fn) for fn in OPERATIONS.values()}
    assert set(AllOperationsHost.__bases__) - {Protocol} == protocols
    assert not {n for n in vars(AllOperationsHost) if not n.startswith("_")}
    assert _members(AllOperationsHost) == set().union(*(_members(p) for p in protocols))


def test_the_broker_has_every_member_of_every_operations_protocol() -> None:
    broker = Broker(BrokerConfig({"node.id": "1"}))
    missing: dict[str, list[str]] = {}
    protocols = {_host_protocol(fn) for fn in OPERATIONS.values()} | {delegation_tokens.TokenExpiryHost}
    for protocol in protocols:
        absent = sorted(n for n in _members(protocol) if inspect.getattr_static(broker, n, missing) is missing)
        if absent:
            missing[protocol.__qualname__] = absent
    assert missing == {}


def _protocol_param(fn: ast.FunctionDef | ast.AsyncFunctionDef, module: ModuleType) -> tuple[str, str] | None:
    """(parameter, Protocol name) of the function's node parameter (the first, after ``self``)
    when it is typed on a Protocol of the module."""
    args = [a for a in fn.args.args if a.arg != "self"]
    if not args or not isinstance(args[0].annotation, ast.Name):
        return None
    if not getattr(getattr(module, args[0].annotation.id, None), "_is_protocol", False):
        return None
    return args[0].arg, args[0].annotation.id


def _reached(module: ModuleType) -> list[tuple[str, str, str]]:
    """(function, Protocol, member) for every ``node.member`` in the module's functions whose node
    parameter is typed on a Protocol, and every ``self.host.member`` of a class given its node in
    ``__init__`` (the token expiry)."""
    tree = ast.parse(Path(module.__file__ or "").read_text())
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and fn.name != "__init__":
            found = _protocol_param(fn, module)
            if found is not None:
                out += [(fn.name, found[1], sub.attr) for sub in ast.walk(fn) if isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name) and sub.value.id == found[0]]
        if isinstance(fn, ast.ClassDef):
            init = next((f for f in fn.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            found = None if init is None else _protocol_param(init, module)
            if init is None or found is None:
                continue
            kept = {t.attr for st in init.body if isinstance(st, ast.Assign) and isinstance(st.value, ast.Name)
                    and st.value.id == found[0] for t in st.targets if isinstance(t, ast.Attribute)}
            out += [(fn.name, found[1], sub.attr) for sub in ast.walk(fn) if isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Attribute) and sub.value.attr in kept
                    and isinstance(sub.value.value, ast.Name) and sub.value.value.id == "self"]
    return out


def test_no_operation_reaches_beyond_its_protocol() -> None:
    outside = []
    checked = 0
    for module in _modules():
        for fn_name, protocol_name, member in _reached(module):
            checked += 1
            if member not in _members(getattr(module, protocol_name)):
                outside.append(f"{module.__name__}.{fn_name}: {protocol_name} has no {member!r}")
    assert outside == []
    assert checked > 40  # (the walk found the operations' uses of the node)


def test_the_source_walk_sees_a_member_outside_the_protocol(tmp_path: Path) -> None:
    """The check above is not vacuous: an operation reaching beyond its Protocol is found."""
    source = textwrap.dedent("""
        from typing import Protocol

        class SmallHost(Protocol):
            @property
            def authorizer(self) -> object: ...

        async def operation(broker: SmallHost, request: object, version: int, requester: object) -> object:
            return broker.authorizer, broker.log_manager
    """)
    path = tmp_path / "fake_operation.py"
    path.write_text(source)
    module = ModuleType("fake_operation")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    reached = _reached(module)
    assert ("operation", "SmallHost", "log_manager") in reached
    assert "log_manager" not in _members(module.SmallHost)


_SNIPPET = """
    from __future__ import annotations

    from typing import Any, Protocol

    from kbroker.controller.operations.local import Operation


    class WantsMore(Protocol):
        @property
        def not_on_the_node(self) -> int: ...


    async def operation(broker: WantsMore, request: Any, version: int, requester: Any) -> Any:
        return broker.not_on_the_node


    TABLE: dict[int, Operation] = {0: operation}
"""


def test_mypy_refuses_an_operation_whose_protocol_the_node_does_not_provide(tmp_path: Path) -> None:
    path = tmp_path / "snippet_operation.py"
    path.write_text(textwrap.dedent(_SNIPPET))
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".cache" / "mypy-snippets"),
         "--config-file", str(ROOT / "pyproject.toml"), "--strict", "--follow-imports=silent",
         "--no-error-summary", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in out.stdout.splitlines() if "snippet_operation.py:" in line]
    assert len(errors) == 1 and "[dict-item]" in errors[0] and "WantsMore" in errors[0], out.stdout
