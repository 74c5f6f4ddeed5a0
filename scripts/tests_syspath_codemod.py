#!/usr/bin/env python3
"""Remove ``sys.path`` edits from the test tree (issue 14): helpers are importable one way, the
``pythonpath`` list of pyproject.toml's ``[tool.pytest.ini_options]``.

Usage::

    .venv/bin/python scripts/tests_syspath_codemod.py [PATH ...]   # default: tests/
    .venv/bin/ruff check --fix tests                               # then: unused imports, import order

What it rewrites, in every ``*.py`` under the paths:

- a statement ``sys.path.insert/append/extend/remove/pop(...)``: deleted;
- ``if ... sys.path ...:`` and ``for ...:`` blocks whose body only edits ``sys.path``: deleted;
- ``try: <imports> finally: <sys.path edits>``: replaced by the imports;
- a module-level ``NAME = <path expression>`` that nothing reads any more: deleted;
- a conftest.py left with nothing but its docstring: removed;
- ``# noqa: E402`` on the lines it touched no longer apply (imports are no longer after code):
  dropped from the file's imports (ruff reports any that is still needed).

A module that ``tests/unit/test_test_layout.py`` still flags afterwards needs a hand edit: a helper
script run as a subprocess gets ``PYTHONPATH`` in its environment or is run with ``-m``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EDITS = {"insert", "append", "extend", "remove", "pop"}


def _mentions_sys_path(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name)
               and n.value.id == "sys" for n in ast.walk(node))


def _is_edit(stmt: ast.stmt) -> bool:
    """``sys.path.<edit>(...)`` as a statement, or a block doing only that."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        return isinstance(func, ast.Attribute) and func.attr in EDITS and _mentions_sys_path(func.value)
    if isinstance(stmt, ast.If | ast.For) and not stmt.orelse:
        return all(_is_edit(s) for s in stmt.body)
    return False


def _span(stmt: ast.stmt) -> tuple[int, int]:
    assert stmt.end_lineno is not None
    return stmt.lineno, stmt.end_lineno


def rewrite(source: str) -> str:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    replace: dict[int, tuple[int, list[str]]] = {}  # first line -> (last line, new lines)
    unwrapped: set[str] = set()  # the module-level imports a try/finally held
    for node in ast.walk(tree):
        body, finalbody = getattr(node, "body", []), getattr(node, "finalbody", [])
        for stmt in (body if isinstance(body, list) else []) + finalbody:
            if _is_edit(stmt):
                first, last = _span(stmt)
                replace[first] = (last, [])
            elif (isinstance(stmt, ast.Try) and stmt.finalbody and not stmt.handlers and not stmt.orelse
                  and all(_is_edit(s) for s in stmt.finalbody)):
                first, last = _span(stmt)
                body_first, body_last = stmt.body[0].lineno, _span(stmt.body[-1])[1]
                indent = stmt.col_offset
                shift = stmt.body[0].col_offset - indent
                body = [line[shift:] if line[:shift].strip() == "" else line
                        for line in lines[body_first - 1:body_last]]
                replace[first] = (last, body)
                if node is tree:
                    unwrapped.update(ast.unparse(s) for s in stmt.body if isinstance(s, ast.Import | ast.ImportFrom))
    if not replace:
        return source
    out: list[str] = []
    skip_to = 0
    for number, line in enumerate(lines, 1):
        if number <= skip_to:
            continue
        if number in replace:
            skip_to, new = replace[number]
            out.extend(new)
            continue
        out.append(line)
    text = "".join(out)
    text = _hoist(_drop_unused_paths(text), unwrapped)
    text = re.sub(r"^((?:from|import) .*?)  # noqa: E402(?:, )?(.*)$",
                  lambda m: m[1] + (f"  # noqa: {m[2]}" if m[2] else ""), text, flags=re.M)
    return re.sub(r"\n{4,}", "\n\n\n", text)


def _hoist(source: str, imports: set[str]) -> str:
    """Move the unwrapped module-level ``imports`` that now follow other code (``E = ErrorCode``)
    up to the module's import block, where E402 wants them; ruff --fix then sorts the block."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = tree.body
    start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else 0
    first_code = next((i for i in range(start, len(body)) if not isinstance(body[i], ast.Import | ast.ImportFrom)), None)
    if first_code is None or first_code == start:
        return source
    late = [s for s in body[first_code:] if isinstance(s, ast.Import | ast.ImportFrom) and ast.unparse(s) in imports]
    if not late:
        return source
    moved = {n for s in late for n in range(s.lineno, _span(s)[1] + 1)}
    anchor = _span(body[first_code - 1])[1]  # the last line of the leading import block
    out = []
    for number, line in enumerate(lines, 1):
        if number not in moved:
            out.append(line)
        if number == anchor:
            out.extend(lines[n - 1] for n in sorted(moved))
    return "".join(out)


def _drop_unused_paths(source: str) -> str:
    """Module-level ``NAME = <expression built from Path/__file__/ROOT>`` that nothing reads."""
    while True:
        tree = ast.parse(source)
        read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        lines = source.splitlines(keepends=True)
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id not in read and stmt.targets[0].id not in {"__all__", "pytestmark"}):
                text = ast.get_source_segment(source, stmt.value) or ""
                if re.search(r"Path\(|__file__|ROOT|_HERE|parents\[", text):
                    first, last = _span(stmt)
                    source = "".join(lines[:first - 1] + lines[last:])
                    break
        else:
            return source


def _empty(source: str) -> bool:
    """Nothing left but a docstring and the imports the ``sys.path`` edit needed."""
    return all((isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
               or (isinstance(s, ast.ImportFrom) and s.module in {"__future__", "pathlib", "os"})
               or (isinstance(s, ast.Import) and all(a.name in {"sys", "os"} for a in s.names))
               for s in ast.parse(source).body)


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [REPO / "tests"]
    changed = 0
    for root in roots:
        for path in sorted(root.rglob("*.py") if root.is_dir() else [root]):
            source = path.read_text(encoding="utf-8")
            new = rewrite(source)
            if new == source:
                continue
            changed += 1
            if path.name == "conftest.py" and _empty(new):
                path.unlink()
                print(f"removed {path} (it only edited sys.path)")
            else:
                path.write_text(new, encoding="utf-8")
                print(f"rewrote {path}")
    print(f"{changed} file(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
