#!/usr/bin/env python3
"""Check kbroker's import graph: no cycle between files, no import from a lower layer to a higher one.

Usage::

    .venv/bin/python scripts/check_imports.py [--include-type-only] [--quiet]

Layers, bottom up (issue 14): ``kbroker_protocol`` (the ``protocol/`` folder) → ``kbroker.log`` →
``kbroker.metadata`` (the image, loader, records, metadata log, the controller client a broker
uses) → ``kbroker.replication`` → ``kbroker.coordinator`` → ``kbroker.security`` →
``kbroker.controller`` (the active controller) → ``kbroker.controller.operations`` (the
controller's side of the forwarded admin APIs) → ``kbroker.api`` → ``kbroker.server`` →
everything else in ``kbroker`` (the composition root, CLI, testing). ``kbroker.raft`` sits beside
``kbroker.metadata``. Imports inside ``if TYPE_CHECKING:``
blocks count only with ``--include-type-only``. Prints every cycle (as a list of modules) and every
upward import, and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS: list[tuple[str, ...]] = [
    ("kbroker_protocol",),
    ("kbroker.log",),
    # what every node reads of the metadata (image, loader, records, the metadata log) and its
    # client of the active controller; the Raft layer beside it (its voter update talks to the
    # controller over the channel, the loader reads the Raft driver's commits)
    ("kbroker.metadata", "kbroker.raft"),
    ("kbroker.replication",),
    ("kbroker.coordinator",),
    ("kbroker.security",),
    # the active controller (QuorumController, replication and cluster control, placement): above
    # the broker's data path, which reaches it only through the metadata client and the image
    ("kbroker.controller",),
    # the controller's operations (the controller's side of the forwarded admin APIs): above what
    # they use (the image and controller, topic creation's logs, the coordinators' config checks,
    # authorization), below the API layer that forwards to them
    ("kbroker.controller.operations",),
    ("kbroker.api",),
    ("kbroker.server",),
]


def layer_of(module: str) -> int:
    # the longest prefix that names ``module`` or a package it lies in decides
    # (``kbroker.controller.operations`` sits above the rest of ``kbroker.controller``)
    matches = [(len(p), rank) for rank, prefixes in enumerate(LAYERS) for p in prefixes
               if module == p or module.startswith(p + ".")]
    if matches:
        return max(matches)[1]
    if module == "kbroker" or module.startswith("kbroker."):
        # Top-level helpers shared by every layer (config, errors) stay at the bottom of kbroker;
        # everything else is the composition root.
        if module in ("kbroker.config", "kbroker.errors") or module.startswith("kbroker.config."):
            return 1
        return len(LAYERS)
    return -1


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] == "protocol":  # the protocol/ folder installs as kbroker_protocol (setup.py)
        parts[0] = "kbroker_protocol"
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, module: str, modules: set[str], type_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        # The longest known module that ``name`` names or lies in.
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                if type_only:
                    visit(node.body)
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if (target := resolve(alias.name)) is not None:
                        found.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                for alias in node.names:
                    target = resolve(f"{stem}.{alias.name}") or resolve(stem)
                    if target is not None:
                        found.add(target)
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list) and child and isinstance(child[0], ast.stmt | ast.excepthandler):
                    visit([c for c in child if isinstance(c, ast.stmt)] if field != "handlers"
                          else [s for h in child for s in h.body])

    visit(tree.body)
    found.discard(module)
    return found


def graph(type_only: bool) -> dict[str, set[str]]:
    files = {module_name(p): p for root in ("protocol", "kbroker") for p in (REPO / root).rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, m, modules, type_only) for m, p in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (src, dst) for src, dsts in edges.items() for dst in dsts if layer_of(dst) > layer_of(src) >= 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--include-type-only", action="store_true", help="count TYPE_CHECKING imports")
    parser.add_argument("--quiet", action="store_true", help="print only the counts")
    args = parser.parse_args(argv)
    edges = graph(args.include_type_only)
    found_cycles, found_upward = cycles(edges), upward(edges)
    if not args.quiet:
        for component in found_cycles:
            print(f"cycle of {len(component)}: {' '.join(component)}")
        for src, dst in found_upward:
            print(f"upward import: {src} -> {dst}")
    files_in_cycles = sum(len(c) for c in found_cycles)
    print(f"{len(found_cycles)} cycles ({files_in_cycles} files), {len(found_upward)} upward imports")
    return 1 if found_cycles or found_upward else 0


if __name__ == "__main__":
    sys.exit(main())
