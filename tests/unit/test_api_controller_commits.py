"""Issue 14: the broker side reaches the controller only through the async controller client
(``broker.controller_client``) and awaits its answer; no module outside ``kbroker/controller``
commits metadata records itself with the controller's synchronous ``commit``, and no request
handler nor coordinator uses a synchronous topic creation. What the controller writes for its own
node (the sole voter's cordoned dirs, the test control plane's reset and leader re-election) is
in the controller layer (``kbroker/controller/node_writes.py``), as controller operations."""

from __future__ import annotations

import ast
from pathlib import Path

KBROKER = Path(__file__).resolve().parents[2] / "kbroker"
API = KBROKER / "api"
CONTROLLER = KBROKER / "controller"
# Helpers that committed synchronously (removed by issue 14): none may come back.
SYNCHRONOUS_CREATION = {"commit_created", "request_creation"}
COORDINATORS = [*sorted((KBROKER / "coordinator").glob("*.py")), KBROKER / "delayed.py",
                KBROKER / "delayed_scheduler.py"]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _controller_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to an expression naming a controller (``c = broker.controller``)."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            if any("controller" in name for name in _names(node.value)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                aliases |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.NamedExpr) and any("controller" in name for name in _names(node.value)):
            aliases.add(node.target.id)
    return aliases


def offences(source: str, filename: str) -> list[str]:
    """The synchronous controller commits and topic creations in ``source``."""
    found = []
    tree = ast.parse(source, filename)
    aliases = _controller_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
            receiver = _names(node.func.value)
            if any("controller" in name for name in receiver) or receiver & aliases:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node.func)}()")
        if isinstance(node, ast.ImportFrom) and node.module == "kbroker.replication.topics":
            for alias in node.names:
                if alias.name in SYNCHRONOUS_CREATION:
                    found.append(f"{filename}:{node.lineno}: imports {alias.name}")
    return found


def broker_side_modules() -> list[Path]:
    """Every module of kbroker but the controller layer's."""
    return [p for p in sorted(KBROKER.rglob("*.py")) if CONTROLLER not in p.parents]


def test_the_guard_finds_a_synchronous_commit_and_creation() -> None:
    source = ("from kbroker.replication.topics import commit_created\n"
              "def handle(ctx):\n    ctx.broker.controller.commit([])\n"
              "def reset(broker):\n    c = broker.controller\n    c.commit([])\n"
              "def elect(quorum_controller):\n    quorum_controller.commit([])\n")
    assert sorted(offences(source, "x.py")) == ["x.py:1: imports commit_created",
                                                "x.py:3: ctx.broker.controller.commit()", "x.py:6: c.commit()",
                                                "x.py:8: quorum_controller.commit()"]
    assert offences("def handle(ctx):\n    ctx.transaction.commit()\n    member.commit({})\n", "y.py") == []


def test_the_guard_reads_every_broker_side_module() -> None:
    modules = {p.relative_to(KBROKER).as_posix() for p in broker_side_modules()}
    assert {"api/create_topics.py", "replication/topics.py", "control/plane.py", "control/state.py",
            "wiring/cordoned.py", "coordinator/share_dlq.py", "broker.py"} <= modules
    assert not any(m.startswith("controller/") for m in modules)


def test_no_broker_side_module_commits_metadata_synchronously() -> None:
    found = [o for path in broker_side_modules()
             for o in offences(path.read_text(), path.relative_to(KBROKER).as_posix())]
    assert found == []


def test_no_handler_commits_metadata_synchronously() -> None:
    found = [o for path in sorted(API.glob("*.py")) for o in offences(path.read_text(), path.name)]
    assert found == []


def test_no_coordinator_commits_its_internal_topic_synchronously() -> None:
    """The coordinators' internal topics and the share groups' dead-letter topics go through the
    controller client (a CreateTopics to the active controller), never a commit of their own."""
    found = [o for path in COORDINATORS for o in offences(path.read_text(), path.name)]
    assert found == []
