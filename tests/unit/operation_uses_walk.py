"""The source walk of test_operation_uses: what each function of the operations, the API layer and
topic creation uses of the node (directly, or by handing the node to a function typed on another
Protocol), the Protocol it is given the node as, and the members of a Protocol (moved from
test_operation_hosts)."""

from __future__ import annotations

import ast
import asyncio
import builtins
import functools
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator, MutableMapping
from collections.abc import Callable as CallableABC
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, Protocol, TypeVar

from kbroker.api import (
    controller_apis,
    controller_listener,
    controller_registration,
    envelope,
    load_handlers,
    raft_voters,
)
from kbroker.controller.operations import delegation_tokens
from kbroker.controller.operations.local import OPERATIONS
from kbroker.replication import topics

_BROAD = {"AllOperationsHost", "Any", "object", "Broker"}


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        names.update(getattr(cls, "__annotations__", {}))
        names.update(n for n in vars(cls) if not n.startswith("_"))
    return names


def _host_protocol(fn: Any) -> type:
    """The Protocol ``fn``'s first parameter (the node) is typed on."""
    first = next(iter(inspect.signature(fn).parameters.values()))
    name = str(first.annotation)
    assert name not in _BROAD, f"{fn.__module__}.{fn.__name__} sees the whole node ({name})"
    protocol = fn.__globals__[name]
    assert getattr(protocol, "_is_protocol", False), f"{fn.__module__}.{fn.__name__}: {name} is not a Protocol"
    return protocol


def _operations() -> list[Any]:
    """Every operation of the table, and the controller's token expiry (a service on the node)."""
    return [*OPERATIONS.values(), delegation_tokens.TokenExpiry.__init__]


def _modules() -> list[ModuleType]:
    return sorted({sys.modules[fn.__module__] for fn in _operations()}, key=lambda m: m.__name__)


# -- what each function uses of the node, against what its Protocol declares --------------------

# the controller-listener handlers' modules: each function's Protocol must be exactly what it uses
_HANDLER_MODULES = (controller_apis, controller_registration, raft_voters, envelope)

_CONTEXTS = ("RequestContext", "HandlerContext", "OperationSubject")

_SUBSCRIPT = re.compile(r"^(\w+)\[(\w+)\]$")


def _protocol_in(namespace: dict[str, Any], name: str) -> type | None:
    found = namespace.get(name)
    return found if isinstance(found, type) and getattr(found, "_is_protocol", False) else None


def _node_params(fn: ast.FunctionDef | ast.AsyncFunctionDef, namespace: dict[str, Any]
                 ) -> list[tuple[str, bool, type]]:
    """(parameter, through a context, Protocol) for each parameter of the function that is the node
    (named ``broker`` or ``host``) typed on a Protocol ``P`` (or ``P | None``), or a context of one
    (``ctx: RequestContext[P]``...)."""
    found = []
    for arg in [*fn.args.args, *fn.args.kwonlyargs]:
        annotation = arg.annotation
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.right, ast.Constant):
            annotation = annotation.left  # ``P | None``
        if arg.arg in ("broker", "host") and isinstance(annotation, ast.Name):
            protocol = _protocol_in(namespace, annotation.id)
            if protocol is not None:
                found.append((arg.arg, False, protocol))
        if (arg.arg == "ctx" and isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
                and annotation.value.id in _CONTEXTS and isinstance(annotation.slice, ast.Name)):
            protocol = _protocol_in(namespace, annotation.slice.id)
            if protocol is not None:
                found.append((arg.arg, True, protocol))
    return found


@functools.cache
def _namespace(module_name: str) -> dict[str, Any]:
    """A module's names, and those it imports for type checking or in its functions."""
    module = sys.modules[module_name]
    names = dict(vars(module))
    for node in ast.walk(ast.parse(Path(module.__file__ or "").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.col_offset > 0:
            source = importlib.import_module(node.module)
            for alias in node.names:
                names.setdefault(alias.asname or alias.name, getattr(source, alias.name))
    return names


Handed = tuple[type | None, set[str]]

"""The Protocol a function is given the node as (None: ``object``, a mapping's key...) and its members."""


def _annotation_members(annotation: Any, namespace: dict[str, Any], through_context: bool) -> Handed | None:
    """The node's members a parameter annotated ``annotation`` (in ``namespace``) reaches: a
    Protocol's; a context's broker's when the context itself is handed on; None: not known."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    text = text.removesuffix(" | None")
    if text == "object":
        return None, set()
    match = _SUBSCRIPT.match(text)
    if match and match[1] in _CONTEXTS:
        if match[2] == "object":  # a context whose broker is not read (``api.context.requester``)
            return None, set()
        protocol = _protocol_in(namespace, match[2])
        return None if protocol is None else (protocol, _members(protocol))
    protocol = _protocol_in(namespace, text)
    if protocol is None:
        return None
    if not through_context:
        return protocol, _members(protocol)
    broker = inspect.getattr_static(protocol, "broker", None)  # a context Protocol (``acls.AuthContext``)
    if not isinstance(broker, property) or broker.fget is None:
        return None
    return _annotation_members(broker.fget.__annotations__["return"], _namespace(broker.fget.__module__),
                               through_context=False)


def _callee_members(callee: Any, position: int | str, through_context: bool) -> Handed | None:
    if callee is None:
        return None
    if getattr(callee, "__name__", "") in ("operation_subject", "OperationSubject"):
        # the subject's broker is what ``authorized`` reads (the authorizer); the functions given
        # the subject are typed ``OperationSubject[P]`` and walked themselves
        return None, {"authorizer"}
    try:
        parameters = list(inspect.signature(callee).parameters.values())
    except (TypeError, ValueError):
        return None
    if isinstance(position, str):
        parameter = next((p for p in parameters if p.name == position), None)
    else:
        parameter = parameters[position] if position < len(parameters) else None
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    annotation = parameter.annotation
    if isinstance(annotation, TypeVar):
        return None
    return _annotation_members(annotation, _namespace(callee.__module__), through_context)


def _resolve(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    """What a called name (``f``, or ``module.f``) is in ``namespace``; None: not known."""
    if isinstance(expr, ast.Name):
        return namespace.get(expr.id, getattr(builtins, expr.id, None))
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        owner = namespace.get(expr.value.id)
        if isinstance(owner, MutableMapping):  # the node as a key (a registry of brokers)
            return _KEYED
        return getattr(owner, expr.attr, None) if isinstance(owner, ModuleType) else None
    return None


def _keyed() -> None:
    """Stands for a mapping's method given the node as a key: it reads nothing of it."""


_KEYED = _keyed


def _callable_parameter_members(root: ast.AST, name: str, position: int, namespace: dict[str, Any]
                                ) -> Handed | None:
    """The members of the Protocol at ``position`` of a parameter ``name`` of the function ``root``
    typed ``Callable[[P, ...], ...]`` (the node handed to a function the caller is given)."""
    if not isinstance(root, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    for arg in [*root.args.args, *root.args.kwonlyargs]:
        annotation = arg.annotation
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.right, ast.Constant):
            annotation = annotation.left  # ``Callable[...] | None``
        alias = namespace.get(annotation.id) if arg.arg == name and isinstance(annotation, ast.Name) else None
        if alias is not None and getattr(alias, "__origin__", None) is CallableABC:  # ``NewConfigs = Callable[...]``
            parameters_ = alias.__args__[:-1]
            if position < len(parameters_) and getattr(parameters_[position], "_is_protocol", False):
                return parameters_[position], _members(parameters_[position])
        if (arg.arg == name and isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
                and annotation.value.id == "Callable" and isinstance(annotation.slice, ast.Tuple)
                and isinstance(annotation.slice.elts[0], ast.List)):
            parameters = annotation.slice.elts[0].elts
            parameter = parameters[position] if position < len(parameters) else None
            if isinstance(parameter, ast.Name):
                protocol = _protocol_in(namespace, parameter.id)
                return None if protocol is None else (protocol, _members(protocol))
    return None


def _uses_in(root: ast.AST, is_node: Callable[[ast.expr], bool], context: str | None, own: type,
             namespace: dict[str, Any]) -> tuple[set[str], set[tuple[str, str]], list[str]]:
    """The node's members read under ``root`` (``is_node``: an expression that is the node; a
    name it is assigned to, ``broker = ctx.broker``, is too), and those of the parameters it hands
    the node, or its context (the name ``context``), to; apart, the functions typed on its own
    Protocol ``own`` it hands the node to (module, name); and the calls not known."""
    aliases = {t.id for sub in ast.walk(root) if isinstance(sub, ast.Assign) and is_node(sub.value)
               for t in sub.targets if isinstance(t, ast.Name)}
    aliases |= {t.id for sub in ast.walk(root) if isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Tuple)
                for target in sub.targets if isinstance(target, ast.Tuple)
                for t, v in zip(target.elts, sub.value.elts, strict=False) if isinstance(t, ast.Name) and is_node(v)}
    # a subject built on the node (``ctx = operation_subject(broker, requester)``) is a context of it
    def is_subject(expr: ast.expr) -> bool:
        return (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and bool(expr.args)
                and expr.func.id in ("operation_subject", "OperationSubject") and is_node(expr.args[0]))

    contexts = {t.id for sub in ast.walk(root) if isinstance(sub, ast.Assign) and is_subject(sub.value)
                for t in sub.targets if isinstance(t, ast.Name)}
    contexts |= set() if context is None else {context}
    if aliases or contexts - {context}:
        direct = is_node

        def is_node(expr: ast.expr) -> bool:
            return (direct(expr) or (isinstance(expr, ast.Name) and expr.id in aliases)
                    or (isinstance(expr, ast.Attribute) and expr.attr == "broker"
                        and isinstance(expr.value, ast.Name) and expr.value.id in contexts))

    used: set[str] = set()
    same: set[tuple[str, str]] = set()
    unresolved: list[str] = []
    for sub in ast.walk(root):
        if isinstance(sub, ast.Attribute) and is_node(sub.value):
            used.add(sub.attr)
        if not isinstance(sub, ast.Call):
            continue
        given: list[tuple[int | str, ast.expr]] = [*enumerate(sub.args)]
        given += [(k.arg, k.value) for k in sub.keywords if k.arg is not None]
        for position, arg in given:
            through_context = (isinstance(arg, ast.Name) and arg.id in contexts) or is_subject(arg)
            if not (is_node(arg) or through_context):
                continue
            callee = _resolve(sub.func, namespace)
            if callee in (asyncio.to_thread, functools.partial) and isinstance(position, int) and position > 0:
                first = sub.args[0]  # to_thread(fn, *args), partial(fn, *args): fn is given the node
                callee, position = namespace.get(first.id) if isinstance(first, ast.Name) else None, position - 1
            if callee is getattr and position == 0 and len(sub.args) > 1 and isinstance(sub.args[1], ast.Constant):
                used.add(str(sub.args[1].value))  # getattr(node, "member", default)
                continue
            handed = (None, set()) if callee is _KEYED else _callee_members(callee, position, through_context)
            if handed is None and isinstance(sub.func, ast.Name) and isinstance(position, int):
                # a function the caller is given, typed ``Callable[[P, ...], ...]``: it may use all of P
                handed = _callable_parameter_members(root, sub.func.id, position, namespace)
                callee = None
            if handed is None:
                unresolved.append(ast.unparse(sub))
            elif handed[0] is own and callee is not None:
                same.add((callee.__module__, callee.__name__))
            else:
                used |= handed[1]
    return used, same, unresolved


class Use(NamedTuple):
    """What a function (or a class given the node) does with the node: ``used``, the members it
    reads or hands to a function typed on another Protocol; ``same``, the functions (module, name)
    typed on its own Protocol too that it hands the node to (whose own uses count for the Protocol)."""

    name: str
    protocol: type
    used: set[str]
    same: set[tuple[str, str]]
    unresolved: list[str]


def _uses(module: ModuleType) -> Iterator[Use]:
    """(function, Protocol, members used, unresolved calls) for every function of ``module`` whose
    node parameter is typed on a Protocol (the node's members it reads, and those of the Protocol
    of every parameter it hands the node or its context to), and every class given the node in
    ``__init__`` (what its methods do with ``self.<the attribute it is kept in>``)."""
    tree = ast.parse(Path(module.__file__ or "").read_text())
    namespace = _namespace(module.__name__)
    for fn in ast.walk(tree):
        if isinstance(fn, ast.ClassDef):
            init = next((f for f in fn.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            params = [] if init is None else _node_params(init, namespace)
            if init is None or not params or params[0][1]:
                continue
            found = params[0]
            kept = {t.attr for st in init.body if isinstance(st, ast.Assign) and isinstance(st.value, ast.Name)
                    and st.value.id == found[0] for t in st.targets if isinstance(t, ast.Attribute)}

            def is_kept(expr: ast.expr, kept: set[str] = kept) -> bool:
                return (isinstance(expr, ast.Attribute) and expr.attr in kept
                        and isinstance(expr.value, ast.Name) and expr.value.id == "self")

            def is_param(expr: ast.expr, name: str = found[0]) -> bool:
                return isinstance(expr, ast.Name) and expr.id == name

            used, same, unresolved = _uses_in(fn, is_kept, None, found[2], namespace)
            in_init, same_in_init, unresolved_in_init = _uses_in(init, is_param, None, found[2], namespace)
            yield Use(fn.name, found[2], used | in_init, same | same_in_init,
                      [f"{fn.name}: {call}" for call in unresolved + unresolved_in_init])
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.name == "__init__":
            continue
        for name, through_context, protocol in _node_params(fn, namespace):

            def is_node(expr: ast.expr, name: str = name, through_context: bool = through_context) -> bool:
                if through_context:
                    return (isinstance(expr, ast.Attribute) and expr.attr == "broker"
                            and isinstance(expr.value, ast.Name) and expr.value.id == name)
                return isinstance(expr, ast.Name) and expr.id == name

            used, same, unresolved = _uses_in(fn, is_node, name if through_context else None, protocol, namespace)
            yield Use(fn.name, protocol, used, same, [f"{fn.name}: {call}" for call in unresolved])


def _walked_modules() -> list[ModuleType]:
    """The operations' modules, every module of the API layer, and the broker's side of topic
    creation (what the handlers and coordinators share)."""
    load_handlers()
    api_modules = {sys.modules[name] for name in list(sys.modules)
                   if name.startswith("kbroker.api.") and getattr(sys.modules[name], "__file__", None)}
    return sorted({*_modules(), *_HANDLER_MODULES, controller_listener, topics, *api_modules},
                  key=lambda m: m.__name__)


@functools.cache
def _index() -> dict[tuple[str, str], list[Use]]:
    """Every walked function's (and class's) uses, by (module, name)."""
    index: dict[tuple[str, str], list[Use]] = {}
    for module in _walked_modules():
        for use in _uses(module):
            index.setdefault((module.__name__, use.name), []).append(use)
    return index


def _effective(use: Use, index: dict[tuple[str, str], list[Use]], seen: frozenset[tuple[str, str]] = frozenset()
               ) -> set[str]:
    """What ``use``'s function uses of the node, with what the functions of its own Protocol it
    hands the node to use (one not walked: all of the Protocol, e.g. ``LocalControllerClient``)."""
    members = set(use.used)
    for key in use.same - seen:
        callees = [u for u in index.get(key, []) if u.protocol is use.protocol]
        if not callees:
            members |= _members(use.protocol)
        for callee in callees:
            members |= _effective(callee, index, seen | {key})
    return members
