"""Issue 14: request handlers reach the controller only through the async controller client
(``broker.controller_client``) and await its answer; none commits metadata records itself with
the controller's synchronous ``commit`` nor creates topics through the synchronous helpers of
``kbroker.replication.topics`` that do (``create_topic``, ``commit_created``...)."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "kbroker" / "api"
SYNCHRONOUS_CREATION = {"create_topic", "commit_created", "request_creation"}
COORDINATORS = [*sorted((API.parent / "coordinator").glob("*.py")), API.parent / "delayed.py",
                API.parent / "delayed_scheduler.py"]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def offences(source: str, filename: str) -> list[str]:
    """The synchronous controller commits and topic creations in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
            if any("controller" in name for name in _names(node.func.value)):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node.func)}()")
        if isinstance(node, ast.ImportFrom) and node.module == "kbroker.replication.topics":
            for alias in node.names:
                if alias.name in SYNCHRONOUS_CREATION:
                    found.append(f"{filename}:{node.lineno}: imports {alias.name}")
    return found


def test_the_guard_finds_a_synchronous_commit_and_creation() -> None:
    source = ("from kbroker.replication.topics import create_topic\n"
              "def handle(ctx):\n    ctx.broker.controller.commit([])\n")
    assert sorted(offences(source, "x.py")) == ["x.py:1: imports create_topic", "x.py:3: ctx.broker.controller.commit()"]
    assert offences("def handle(ctx):\n    ctx.transaction.commit()\n", "y.py") == []


def test_no_handler_commits_metadata_synchronously() -> None:
    found = [o for path in sorted(API.glob("*.py")) for o in offences(path.read_text(), path.name)]
    assert found == []


def test_no_coordinator_commits_its_internal_topic_synchronously() -> None:
    """The coordinators' internal topics go through the controller client
    (``ensure_internal_topic``: a CreateTopics to the active controller), never a commit of their own."""
    found = [o for path in COORDINATORS for o in offences(path.read_text(), path.name)
             if "create_topic" not in o]  # (share_dlq's dead-letter topic: Metadata-style auto-creation)
    assert found == []
