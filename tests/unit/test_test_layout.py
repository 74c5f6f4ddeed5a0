"""The test suite's own layout rules (issue 14): helpers live in helper modules, never in a test
module another one imports; the ``slow`` marker leaves a quick loop of the rest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if any(part in {"node_modules", "target", ".venv"} for part in path.parts):
            continue
        for module in _imported_modules(path):
            if module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == [], "move shared helpers into a helper module:\n" + "\n".join(offenders)


def _collected(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}


def test_not_slow_leaves_out_clusters_and_jvms_and_keeps_the_rest() -> None:
    files = _collected("-m", "not slow", "tests/cluster", "tests/unit/test_mypy.py", "tests/unit/test_config.py",
                       "tests/log/test_log_config.py")
    assert files == {"tests/unit/test_config.py", "tests/log/test_log_config.py"}
    assert _collected("-m", "slow", "tests/unit/test_mypy.py", "tests/unit/test_config.py") == {
        "tests/unit/test_mypy.py"}
